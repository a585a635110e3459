"""Escalation: tell the incident platform and the on-call human what automation could not do."""
