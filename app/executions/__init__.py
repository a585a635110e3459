"""An execution's life after ingest: run (claim → steps → final status), escalate
(delivery to the targets), verify, and what humans do to it (actions)."""
