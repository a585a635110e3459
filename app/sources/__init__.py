"""Incident platforms in: one module per platform behind the `Source` protocol."""
