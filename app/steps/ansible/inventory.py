"""The hosts and groups of an Ansible inventory: for checking the names an incident put
into a step's `limit` (app.fields.sinks), and for telling which hosts a batched run's member
asked for. Read with `ansible-inventory --list`, so every
format Ansible reads (INI, YAML, a directory, a script, a plugin) is read the same way;
a plain file's names are kept until the file changes, since a run costs half a second.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from app.errors import ExecutorError

_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Listing:
    """An inventory's hosts, and each group with every host in it (its children's too)."""

    hosts: frozenset[str]
    groups: dict[str, frozenset[str]]

    @property
    def names(self) -> frozenset[str]:
        return self.hosts | frozenset(self.groups)

    def hosts_of(self, names: Iterable[str]) -> frozenset[str]:
        """The hosts that these host and group names stand for."""
        found: set[str] = set()
        for name in names:
            found.update(self.groups.get(name, {name} if name in self.hosts else ()))
        return frozenset(found)


def inventory_listing(inventory: Path | None, *, env: dict[str, str]) -> Listing:
    """The inventory's hosts and groups (Ansible's default inventory when None)."""
    if inventory is None or not inventory.is_file() or inventory.stat().st_mode & 0o111:
        return _read(inventory, env)  # a directory or a script may answer differently
    stat = inventory.stat()
    return _file_names(str(inventory), stat.st_mtime_ns, stat.st_size, tuple(sorted(env.items())))


@lru_cache(maxsize=64)
def _file_names(path: str, _mtime_ns: int, _size: int, env: tuple[tuple[str, str], ...]) -> Listing:
    """A plain file's names, kept while its mtime and size (part of the key) stay."""
    return _read(Path(path), dict(env))


def _read(inventory: Path | None, env: dict[str, str]) -> Listing:
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
    bodies = {
        str(group): body if isinstance(body, dict) else {}
        for group, body in listing.items()
        if group != "_meta"
    }
    hosts: set[str] = set((listing.get("_meta") or {}).get("hostvars") or {})
    for body in bodies.values():
        hosts.update(str(host) for host in body.get("hosts") or [])

    def members(group: str, seen: frozenset[str]) -> frozenset[str]:
        body = bodies.get(group, {})
        found = {str(host) for host in body.get("hosts") or []}
        for child in body.get("children") or []:
            if child not in seen:  # a cycle ansible-inventory let through is not followed
                found |= members(str(child), seen | {child})
        return frozenset(found)

    groups = {group: members(group, frozenset({group})) for group in bodies}
    groups["all"] = frozenset(hosts)  # every host is in `all`, listed under it or not
    return Listing(frozenset(hosts), groups)
