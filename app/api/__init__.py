"""HTTP: the webhooks platforms call, the operator API (executions, runbooks,
automation, audit, stats), Slack's interactions, the page, health and metrics; who is
calling (`auth`) and the one place errors become answers (`errors`)."""
