"""The configuration: one YAML file, overridden by REMEDIATOR_* environment variables.

`settings` holds the whole model (`Settings`: every key, its default and what it means),
`sections` its parts (sources, targets, tokens, engines, git hosting), `trust` the
automation-trust models that runbooks share (mode, breaker, budgets, freezes), and
`loading` how a file becomes Settings.
"""
