"""Writing what happened: events, executions, attempts, final states and the escalations
they owe. Each function works inside the caller's transaction."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.executors.base import StepResult
from app.incident import Incident
from app.runbooks.plan import Plan
from app.store.models import AttemptRow, EscalationRow, Event, Execution, IncidentRow, StepRow

ESCALATE_ON = frozenset({"failed", "timed_out", "refused", "interrupted"})


def find_event(*, session: Session, source: str, delivery_id: str) -> Event | None:
    return session.scalars(
        select(Event).where(Event.source == source, Event.delivery_id == delivery_id)
    ).first()


def add_incident(*, session: Session, event_id: str, incident: Incident) -> IncidentRow:
    row = IncidentRow(
        event_id=event_id,
        source=incident.source,
        fingerprint=incident.fingerprint,
        status=incident.status,
        received_at=incident.received_at,
        data=incident.model_dump(mode="json"),
    )
    session.add(row)
    return row


def last_run(
    *, session: Session, runbook: str, guard_key: str, since: datetime
) -> Execution | None:
    """The newest run (not a refusal) of `runbook` for `guard_key` created since `since`."""
    return session.scalars(
        select(Execution)
        .where(
            Execution.runbook == runbook,
            Execution.guard_key == guard_key,
            Execution.created_at >= since,
            Execution.status != "refused",
        )
        .order_by(Execution.created_at.desc())
        .limit(1)
    ).first()


def refused_since(*, session: Session, runbook: str, guard_key: str, since: datetime) -> bool:
    return (
        session.scalars(
            select(Execution.id)
            .where(
                Execution.runbook == runbook,
                Execution.guard_key == guard_key,
                Execution.created_at >= since,
                Execution.status == "refused",
            )
            .limit(1)
        ).first()
        is not None
    )


def add_execution(
    *,
    session: Session,
    plan: Plan,
    incident_row: IncidentRow,
    escalate_to: list[str],
    now: datetime,
    trigger: str = "webhook",
) -> Execution:
    """A queued execution for the plan; refused (cooldown) or failed (template) right away
    when it cannot run, with its escalations."""
    runbook = plan.runbook
    # Before the new row exists: autoflush would otherwise make it its own previous run.
    refusal = _cooldown(session=session, plan=plan, now=now) if plan.error is None else None
    execution = Execution(
        runbook=runbook.name,
        runbook_spec=runbook.model_dump(mode="json", by_alias=True),
        incident=incident_row,
        trigger=trigger,
        status="queued",
        concurrency_key=plan.concurrency_key,
        guard_key=plan.guard_key,
        escalate_to=escalate_to,
        created_at=now,
    )
    session.add(execution)
    for position, step in enumerate(plan.steps):
        execution.steps.append(StepRow(position=position, kind=step.kind, spec=step.spec))
    if plan.error is not None:
        finish_execution(execution=execution, status="failed", error=plan.error, now=now)
    elif refusal is not None:
        reason, escalate = refusal
        finish_execution(
            execution=execution, status="refused", error=reason, now=now, escalate=escalate
        )
    return execution


def _cooldown(*, session: Session, plan: Plan, now: datetime) -> tuple[str, bool] | None:
    """Why the cooldown refuses this run, and whether to escalate the refusal (only the
    first in a cooldown window, not one per alert of a storm); None when it may run."""
    runbook = plan.runbook
    if not runbook.cooldown:
        return None
    since = now - timedelta(seconds=runbook.cooldown)
    previous = last_run(
        session=session, runbook=runbook.name, guard_key=plan.guard_key, since=since
    )
    if previous is None:
        return None
    already = refused_since(
        session=session, runbook=runbook.name, guard_key=plan.guard_key, since=previous.created_at
    )
    reason = (
        f"cooldown: {runbook.name} already ran for {plan.guard_key} at "
        f"{previous.created_at.isoformat()} (execution {previous.id}); "
        f"cooldown is {runbook.cooldown:g}s"
    )
    return reason, not already


def finish_execution(
    *,
    execution: Execution,
    status: str,
    error: str | None,
    now: datetime,
    escalate: bool = True,
) -> None:
    """The final state and, in the same transaction, the escalations it owes."""
    execution.status = status
    execution.error = error
    execution.finished_at = now
    execution.claimed_by = None
    execution.lease_expires_at = None
    for step in execution.steps:
        if step.status == "pending":
            step.status = "skipped"
    if escalate and status in ESCALATE_ON:
        for target in execution.escalate_to:
            execution.escalations.append(
                EscalationRow(target=target, reason=status, next_attempt_at=now, created_at=now)
            )


def record_attempt(*, session: Session, step_id: int, number: int, result: StepResult) -> None:
    step = session.get_one(StepRow, step_id)
    step.attempts = number
    step.rc = result.rc
    step.output_tail = result.output_tail
    step.error = result.error
    session.add(
        AttemptRow(
            step_id=step_id,
            number=number,
            status=result.status,
            rc=result.rc,
            output_tail=result.output_tail,
            error=result.error,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )
    )
