"""Paths named in runbooks stay inside the directory they are relative to."""

from __future__ import annotations

from pathlib import Path


def inside(base: Path, relative: str) -> Path | None:
    """`base/relative` resolved (links followed), or None when it would leave `base`."""
    if not relative or "\x00" in relative or Path(relative).is_absolute():
        return None
    root = base.resolve()
    target = (root / relative).resolve()
    return target if target.is_relative_to(root) else None
