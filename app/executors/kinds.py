"""The step kinds this service runs. Adding one: its module (a StepKind and its
Executor, see app.executors.base) and one line here."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.executors.ansible import AnsibleKind
from app.executors.base import Executor, StepKind
from app.executors.terraform import TerraformKind
from app.store.db import Database

KINDS: dict[str, StepKind[Any]] = {kind.name: kind for kind in (AnsibleKind(), TerraformKind())}


def step_kinds() -> dict[str, StepKind[Any]]:
    """The registry, read at each use (a test may add a kind to it)."""
    return KINDS


def build_executors(settings: Settings, db: Database) -> dict[str, Executor]:
    """One executor per kind, built once at start."""
    return {name: kind.executor(settings, db) for name, kind in step_kinds().items()}
