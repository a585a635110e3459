"""Loopback stand-ins for the platforms and engines the service calls (AWX, HCP
Terraform, GitHub and GitLab pipelines and code hosts, a git HTTP server, PagerDuty):
each checks every request against the published contract and answers as the real one
would, errors, rate limits and slowness included."""
