"""Durable state: events, incidents, executions, steps, attempts, escalations, actions,
leases, the audit, trust (pause, breakers) and versions; the schema's migrations; the
group-commit writer. Persistence only: it knows no step kind, runbook or platform."""
