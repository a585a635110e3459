"""An execution as the API and escalations show it (DESIGN.md's JSON shape)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.redaction import redact
from app.store.models import Attachment, Execution, StepRow
from app.views import (
    ActionView,
    AttachedView,
    AttemptView,
    EscalationView,
    ExecutionSummary,
    ExecutionView,
    StepView,
)


def _step_view(step: StepRow) -> StepView:
    return StepView(
        kind=step.kind,
        id=step.ref,
        phase=step.phase,
        when=step.when,
        status=step.status,
        attempts=step.attempts,
        rc=step.rc,
        output_tail=step.output_tail,
        started_at=step.started_at,
        finished_at=step.finished_at,
        error=step.error,
        detail=step.detail,
        outputs=step.outputs,
        spec=step.spec,
        attempt_log=[
            AttemptView(
                number=a.number,
                status=a.status,
                rc=a.rc,
                output_tail=a.output_tail,
                error=a.error,
                detail=a.detail,
                started_at=a.started_at,
                finished_at=a.finished_at,
                duration_s=round((a.finished_at - a.started_at).total_seconds(), 3),
            )
            for a in step.attempt_rows
        ],
    )


def runbook_secrets(execution: Execution) -> list[str]:
    """The rendered values of the runbook's `secret_vars`, longest first: the value under
    each such name anywhere in a step's stored spec, whatever the step's kind (a name
    that also means something else is masked there too: masking more is safe)."""
    names = set(execution.runbook_spec.get("secret_vars") or [])
    values = {str(v) for step in execution.steps for v in _named(step.spec, names)}
    return sorted((v for v in values if len(v) >= 4), key=len, reverse=True)


def _named(value: Any, names: set[str]) -> Iterator[Any]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in names and isinstance(item, str | int | float):
                yield item
            else:
                yield from _named(item, names)
    elif isinstance(value, list):
        for item in value:
            yield from _named(item, names)


def masked_values(execution: Execution, configured: Iterable[str] = ()) -> list[str]:
    """What is masked wherever the execution is shown: its runbook's secret values and
    the `configured` ones (the service's secrets), longest first."""
    return sorted({*runbook_secrets(execution), *configured}, key=len, reverse=True)


def execution_view(execution: Execution, configured: Iterable[str] = ()) -> ExecutionView:
    """The execution as people see it, with the runbook's secret values and the
    `configured` ones (the service's secrets) masked."""
    view = _unmasked_view(execution)
    secrets = masked_values(execution, configured)
    if not secrets:
        return view
    return ExecutionView.model_validate_json(redact(view.model_dump_json(), secrets))


def _unmasked_view(execution: Execution) -> ExecutionView:
    return ExecutionView(
        id=execution.id,
        runbook=execution.runbook,
        status=execution.status,
        trigger=execution.trigger,
        incident=execution.incident.document,
        concurrency_key=execution.concurrency_key,
        guard=execution.guard,
        mode=execution.mode,
        mode_reason=execution.mode_reason,
        targets=list(execution.targets or []),
        error=execution.error,
        verify=execution.verify,
        deadline_at=execution.deadline_at,
        resolved_at=execution.resolved_at,
        cancel_requested=execution.cancel_requested,
        worker=execution.claimed_by,
        steps=[_step_view(step) for step in execution.steps],
        escalations=[
            EscalationView(
                id=e.id,
                target=e.target,
                reason=e.reason,
                status=e.status,
                attempts=e.attempts,
                last_error=e.last_error,
                delivered_at=e.delivered_at,
            )
            for e in execution.escalations
        ],
        actions=[
            ActionView(action=a.action, by=a.by, reason=a.reason, at=a.at)
            for a in execution.actions
        ],  # fmt: skip
        attached=[
            AttachedView(
                incident_id=a.incident_id,
                status=a.incident.status,
                attached_at=a.attached_at,
                event_type=a.incident.data.get("event_type"),
                phase=a.incident.data.get("phase"),
                occurrence=a.incident.occurrence or a.incident.fingerprint,
            )
            for a in execution.attachments
        ],
        created_at=execution.created_at,
        started_at=execution.started_at,
        finished_at=execution.finished_at,
    )


def execution_summaries(session: Session, executions: list[Execution]) -> list[ExecutionSummary]:
    """One line per execution. Attachments are counted for the whole page in one query:
    loading each execution's (a storm's can be thousands) made a page of 100 take 101."""
    page = [e.id for e in executions]
    query = (
        select(Attachment.execution_id, func.count())
        .where(Attachment.execution_id.in_(page))
        .group_by(Attachment.execution_id)
    )
    counts: dict[str, int] = dict(session.execute(query).all())
    return [_summary(e, counts.get(e.id, 0)) for e in executions]


def _summary(execution: Execution, attached: int) -> ExecutionSummary:
    data = execution.incident.document
    return ExecutionSummary(
        id=execution.id,
        runbook=execution.runbook,
        status=execution.status,
        trigger=execution.trigger,
        source=execution.incident.source,
        fingerprint=str(data.get("fingerprint", "")),
        title=str(data.get("title", "")),
        severity=data.get("severity"),
        guard=execution.guard,
        mode=execution.mode,
        attached=attached,
        error=execution.error,
        created_at=execution.created_at,
        finished_at=execution.finished_at,
    )
