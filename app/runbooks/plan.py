"""A runbook rendered for one incident: the concurrency key and the exact steps to run.

Rendering happens when the incident arrives, so what is stored is what will run (a later
runbook reload does not change queued work) and a template error is known at once. A step
whose templates read earlier steps' outputs cannot be: it is stored as written and
rendered just before it runs (app.executions.prepare), from the context stored with its
execution, through the same sinks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import ValidationError

from app.errors import TemplateError
from app.fields.templating import render_text
from app.incident import Incident
from app.runbooks.decisions import reads_steps
from app.runbooks.models import Runbook, Step
from app.steps.registry import step_kinds

# Which part of the runbook a step is: what looks first (`diagnose`), its steps, or what
# runs when one of them failed.
Phase = Literal["diagnose", "steps", "on_failure"]


@dataclass(frozen=True)
class PlannedStep:
    kind: str
    spec: dict[str, Any]
    timeout_s: float
    idempotent: bool = False
    id: str | None = None
    when: str | None = None
    continue_on_failure: bool = False
    phase: Phase = "steps"
    # `spec` is as written, rendered just before the step runs (it reads earlier steps).
    deferred: bool = False


@dataclass(frozen=True)
class Plan:
    runbook: Runbook
    concurrency_key: str | None
    guard_key: str
    incident_key: str
    steps: list[PlannedStep] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    error: str | None = None
    # When the platform says the incident began (see Incident.started_at).
    started_at: datetime | None = None
    # What its steps act on (hosts, workdirs, workspaces), as the executors resolve it:
    # what the budgets count (set once the executors are at hand, `with_targets`).
    targets: tuple[str, ...] = ()
    # What templates saw when the incident arrived, kept with the execution when a step
    # is decided (`when`) or rendered (it reads earlier steps) only just before it runs.
    context: dict[str, Any] | None = None


def template_context(runbook: Runbook, incident: Incident) -> dict[str, Any]:
    return {
        "incident": incident.template_context(),
        "runbook": {"name": runbook.name, "description": runbook.description},
    }


def deferred(step: Step) -> bool:
    """Whether the step reads earlier steps, so is rendered only just before it runs."""
    return any(reads_steps(source) for _, source in step.kind_of.templates(step.spec))


def render_later(kind: str, written: dict[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """A deferred step's spec (stored as written) rendered now, with `context` holding
    what earlier steps found. TemplateError or SinkError as for any rendering."""
    step_kind = step_kinds()[kind]
    try:
        spec = step_kind.spec_model.model_validate(written)
    except ValidationError as exc:  # stored by this version, from a runbook that loaded
        raise TemplateError(f"its stored spec no longer validates: {exc}") from exc
    return step_kind.render(spec, context)


def _render_step(step: Step, context: dict[str, Any], phase: Phase) -> PlannedStep:
    kind, later = step.kind_of, deferred(step)
    spec = step.spec.model_dump(mode="json") if later else kind.render(step.spec, context)
    return PlannedStep(
        kind=step.kind, spec=spec, timeout_s=kind.timeout_s(step.spec),
        idempotent=step.idempotent, id=step.id, when=step.when,
        continue_on_failure=step.continue_on_failure, phase=phase, deferred=later,
    )  # fmt: skip


def _render_verify(runbook: Runbook, context: dict[str, Any]) -> dict[str, Any] | None:
    if runbook.verify is None:
        return None
    spec = runbook.verify.model_dump(mode="json", exclude_none=True)
    if runbook.verify.http is not None:
        spec["http"]["url"] = render_text(runbook.verify.http.url, context, "url")
    return spec


def plan(runbook: Runbook, incident: Incident) -> Plan:
    context = template_context(runbook, incident)
    incident_key = f"{incident.source}:{incident.fingerprint}"
    try:
        key = render_text(runbook.concurrency, context) if runbook.concurrency else None
        looks = runbook.diagnose.steps if runbook.diagnose is not None else []
        steps = [_render_step(step, context, "diagnose") for step in looks]
        steps += [_render_step(step, context, "steps") for step in runbook.steps]
        steps += [_render_step(step, context, "on_failure") for step in runbook.on_failure]
        verify = _render_verify(runbook, context)
    except TemplateError as exc:
        guard = f"fingerprint:{incident.fingerprint}"
        return Plan(runbook, None, guard, incident_key, error=f"template: {exc}",
                    started_at=incident.started_at)  # fmt: skip
    guard = f"key:{key}" if key else f"fingerprint:{incident.fingerprint}"
    later = any(step.deferred or step.when for step in steps) or bool(
        runbook.diagnose and runbook.diagnose.headline
    )
    return Plan(runbook, key, guard, incident_key, steps, verify, started_at=incident.started_at,
                context=context if later else None)  # fmt: skip
