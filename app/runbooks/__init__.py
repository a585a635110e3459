"""Runbooks: the SRE's YAML, validated, matched against incidents and rendered."""
