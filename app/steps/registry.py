"""The step kinds this service runs. Adding one: its module (a StepKind and its
Executor, see app.steps.base) and one line here."""

from __future__ import annotations

from typing import Any

from app.config.settings import Settings
from app.errors import ConfigError
from app.gitops.records import Records
from app.steps.ansible.kind import AnsibleKind
from app.steps.awx import AwxKind
from app.steps.base import Executor, StepKind
from app.steps.http import HttpKind
from app.steps.kubernetes.kind import KubernetesKind
from app.steps.pipeline.kind import PipelineKind
from app.steps.terraform.kind import TerraformKind
from app.steps.terraform_cloud import TerraformCloudKind

KINDS: dict[str, StepKind[Any]] = {
    kind.name: kind
    for kind in (
        AnsibleKind(),
        TerraformKind(),
        AwxKind(),
        PipelineKind(),
        TerraformCloudKind(),
        HttpKind(),
        KubernetesKind(),
    )
}


def step_kinds() -> dict[str, StepKind[Any]]:
    """The registry, read at each use (a test may add a kind to it)."""
    return KINDS


def build_executors(settings: Settings, records: Records) -> dict[str, Executor]:
    """One executor per kind whose engine is configured, built once at start."""
    known = {engine for kind in step_kinds().values() for engine in kind.engines}
    unknown = sorted(set(settings.engines) - known)
    if unknown:
        raise ConfigError(
            f"engines: no step kind drives {', '.join(unknown)} (known: "
            f"{', '.join(sorted(known)) or 'none'})"
        )
    built = {name: kind.executor(settings, records) for name, kind in step_kinds().items()}
    return {name: executor for name, executor in built.items() if executor is not None}
