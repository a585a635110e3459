"""HTTP: webhooks in, executions out, health."""
