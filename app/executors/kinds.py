"""The step kinds this service runs. Adding one: its module (a StepKind and its
Executor, see app.executors.base) and one line here."""

from __future__ import annotations

from typing import Any

from app.config import Settings
from app.errors import ConfigError
from app.executors.ansible import AnsibleKind
from app.executors.awx import AwxKind
from app.executors.base import Executor, StepKind
from app.executors.pipeline import PipelineKind
from app.executors.terraform import TerraformKind
from app.executors.terraform_cloud import TerraformCloudKind
from app.store.db import Database

KINDS: dict[str, StepKind[Any]] = {
    kind.name: kind
    for kind in (AnsibleKind(), TerraformKind(), AwxKind(), PipelineKind(), TerraformCloudKind())
}


def step_kinds() -> dict[str, StepKind[Any]]:
    """The registry, read at each use (a test may add a kind to it)."""
    return KINDS


def build_executors(settings: Settings, db: Database) -> dict[str, Executor]:
    """One executor per kind whose engine is configured, built once at start."""
    known = {engine for kind in step_kinds().values() for engine in kind.engines}
    unknown = sorted(set(settings.executors) - known)
    if unknown:
        raise ConfigError(
            f"executors: no step kind drives {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known)) or 'none'})"
        )
    built = {name: kind.executor(settings, db) for name, kind in step_kinds().items()}
    return {name: executor for name, executor in built.items() if executor is not None}
