"""The host and group names of an Ansible inventory, for checking the names an incident
put into a step's `limit` (app.sinks). Read with `ansible-inventory --list`, so every
format Ansible reads (INI, YAML, a directory, a script, a plugin) is read the same way;
a plain file's names are kept until the file changes, since a run costs half a second.
"""

from __future__ import annotations

import json
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.errors import ExecutorError

_TIMEOUT_S = 60.0


def inventory_names(inventory: Path | None, *, env: dict[str, str]) -> frozenset[str]:
    """Every host and group the inventory defines (Ansible's default one when None)."""
    if inventory is None or not inventory.is_file() or inventory.stat().st_mode & 0o111:
        return _read(inventory, env)  # a directory or a script may answer differently
    stat = inventory.stat()
    return _file_names(str(inventory), stat.st_mtime_ns, stat.st_size, tuple(sorted(env.items())))


@lru_cache(maxsize=64)
def _file_names(
    path: str, _mtime_ns: int, _size: int, env: tuple[tuple[str, str], ...]
) -> frozenset[str]:
    """A plain file's names, kept while its mtime and size (part of the key) stay."""
    return _read(Path(path), dict(env))


def _read(inventory: Path | None, env: dict[str, str]) -> frozenset[str]:
    argv = ["ansible-inventory", "--list"] + (["-i", str(inventory)] if inventory else [])
    try:
        done = subprocess.run(argv, capture_output=True, timeout=_TIMEOUT_S, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ExecutorError(f"ansible-inventory could not read the inventory: {exc}") from exc
    if done.returncode != 0:
        why = done.stderr.decode(errors="replace").strip().splitlines()
        raise ExecutorError(f"ansible-inventory: {why[-1] if why else done.returncode}")
    try:
        listing: dict[str, Any] = json.loads(done.stdout)
    except ValueError as exc:
        raise ExecutorError(f"ansible-inventory answered no JSON: {exc}") from exc
    names: set[str] = set((listing.get("_meta") or {}).get("hostvars") or {})
    for group, body in listing.items():
        if group == "_meta":
            continue
        names.add(group)
        if isinstance(body, dict):
            names.update(str(host) for host in body.get("hosts") or [])
    return frozenset(names)
