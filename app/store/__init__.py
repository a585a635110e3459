"""Durable state: events, incidents, executions, steps, attempts, escalations."""
