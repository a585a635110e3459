"""The environment a step's processes get: the minimum, never the service's own.

The service holds API tokens, webhook secrets and database passwords in its environment.
A playbook or terraform run gets `PATH`, `HOME`, `LANG`, `LC_*` and `TMPDIR` (so tools
find themselves, their config and their locale), the names the config lists in
`step_env` (cloud credentials a team means its playbooks to use, say), and what the
executor itself sets. A secret reaches a step only when a runbook passes it on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

BASE = ("PATH", "HOME", "LANG", "TMPDIR")


def step_environment(passed: Iterable[str], **own: str) -> dict[str, str]:
    """The base names and `passed` that are set here, the `LC_*` ones, then `own`."""
    names = set(BASE) | set(passed)
    env = {
        name: value for name, value in os.environ.items() if name in names or name.startswith("LC_")
    }
    return env | own


def without_inherited(env: Mapping[str, str], kept: Iterable[str]) -> dict[str, str]:
    """`env` less what it took unchanged from this process's environment, except `kept`:
    for tools (ansible-runner) that start from a copy of `os.environ` and add their own."""
    keep = set(kept)
    return {
        name: value
        for name, value in env.items()
        if name in keep or name.startswith("LC_") or os.environ.get(name) != value
    }
