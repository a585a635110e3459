"""An execution's life after ingest: decide its mode (`trust`), run it (claim → steps →
final status, batched or alone, local or followed remotely), verify, escalate (delivery
to the targets), what humans do to it (`actions`), and the store-backed records the step
kinds are handed (`records`)."""
