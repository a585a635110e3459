"""remediator: webhook-driven automated remediation."""

__version__ = "0.1.0"
