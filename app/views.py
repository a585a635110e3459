"""What one execution is, as the API answers it, the page shows it and every escalation
target tells it: plain models the store fills and the notifiers read, so neither imports
the other."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class AttemptView(BaseModel):
    number: int
    status: str
    rc: int | None
    output_tail: str
    error: str | None
    detail: dict[str, Any] | None = None
    started_at: datetime
    finished_at: datetime
    duration_s: float


class StepView(BaseModel):
    kind: str
    # The runbook's name for it (`steps.<id>` in later steps), if it gave one.
    id: str | None = None
    # `steps`, or `on_failure`: run because a step failed.
    phase: str = "steps"
    # Run only when this is true (decided just before it would run; when false, `skipped`
    # with the expression and the values it saw in `detail`).
    when: str | None = None
    status: str
    attempts: int
    rc: int | None
    output_tail: str
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    # What the last attempt found (terraform: the version and the plan summary).
    detail: dict[str, Any] | None = None
    # What the step found, by name (a play's set_stats, terraform's outputs): data.
    outputs: dict[str, Any] | None = None
    spec: dict[str, Any]
    attempt_log: list[AttemptView]


class EscalationView(BaseModel):
    id: str
    target: str
    reason: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: datetime | None


class ActionView(BaseModel):
    action: str
    by: str
    reason: str
    at: datetime


class AttachedView(BaseModel):
    """A later webhook for the same incident, folded into this execution."""

    incident_id: str
    status: str
    attached_at: datetime
    # What the webhook said: its event type, and its place in the occurrence.
    event_type: str | None = None
    phase: str | None = None
    occurrence: str | None = None


class ExecutionView(BaseModel):
    id: str
    runbook: str
    status: str
    trigger: str
    incident: dict[str, Any]
    concurrency_key: str | None
    guard: str | None
    # auto | approve | shadow, and why (the runbook's own, or a pause, freeze, breaker).
    mode: str = "auto"
    mode_reason: str | None = None
    # What its steps act on, as the budgets count them.
    targets: list[str] = []
    error: str | None
    verify: dict[str, Any] | None
    deadline_at: datetime | None
    resolved_at: datetime | None
    cancel_requested: bool
    worker: str | None  # host:pid:thread of the worker running it now
    steps: list[StepView]
    escalations: list[EscalationView]
    actions: list[ActionView]
    attached: list[AttachedView]
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class ExecutionSummary(BaseModel):
    id: str
    runbook: str
    status: str
    trigger: str
    source: str
    fingerprint: str
    title: str
    severity: str | None
    guard: str | None
    mode: str = "auto"
    attached: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None
