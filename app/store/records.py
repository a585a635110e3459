"""Writing what happened: events, executions, attempts, final states and the escalations
they owe. Each function works inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, exists, func, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, object_session

from app.executors.base import StepResult
from app.incident import Incident
from app.runbooks.plan import Plan
from app.sources.base import Delivery
from app.store.models import (
    OPEN,
    Attachment,
    AttemptRow,
    Base,
    EscalationRow,
    Event,
    Execution,
    IncidentRow,
    StepRow,
    new_id,
)
from app.store.versions import record_applied_versions

ESCALATE_ON = frozenset({"failed", "timed_out", "refused", "interrupted", "rejected"})


def find_event(*, session: Session, source: str, delivery_id: str) -> Event | None:
    return session.scalars(
        select(Event).where(Event.source == source, Event.delivery_id == delivery_id)
    ).first()


# Built once: a statement made per call costs a cache-key walk on every delivery.
_INSERT_EVENT = insert(Base.metadata.tables[Event.__tablename__])
_INSERT_INCIDENT = insert(Base.metadata.tables[IncidentRow.__tablename__])


def add_event(*, session: Session, source: str, delivery: Delivery, received_at: datetime) -> str:
    """The event row for one delivery; its id. Written straight away (not at the next
    flush, and past the ORM: its unit of work was the larger part of ingest's cost), so a
    delivery id seen before fails here with IntegrityError."""
    event_id = new_id()
    session.connection().execute(
        _INSERT_EVENT,
        {
            "id": event_id, "source": source, "delivery_id": delivery.delivery_id,
            "event_type": delivery.event_type, "received_at": received_at,
            "incident_count": len(delivery.incidents), "payload": delivery.shared,
        },
    )  # fmt: skip
    return event_id


# Held by the incident's own columns; `IncidentRow.document` puts them back.
_IN_COLUMNS = ("source", "fingerprint", "status", "received_at", "delivery_id", "occurrence")


def _lean(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in document.items()
        if key not in _IN_COLUMNS and value is not None and value != {}
    }


def add_incidents(*, session: Session, event_id: str, incidents: list[Incident]) -> list[str]:
    """The incident rows of one delivery, in one statement (a group of thousands of
    alerts is one round trip, not thousands); their ids."""
    rows = [
        {
            "id": new_id(), "event_id": event_id, "source": incident.source,
            "fingerprint": incident.fingerprint, "status": incident.status,
            # Most occurrences are the fingerprint itself: stored empty, read back as it.
            "occurrence": "" if incident.occurrence == incident.fingerprint
            else incident.occurrence,
            "received_at": incident.received_at,
            "data": _lean(incident.stored()),
        }
        for incident in incidents
    ]  # fmt: skip
    if rows:
        session.connection().execute(_INSERT_INCIDENT, rows)
    return [str(row["id"]) for row in rows]


def _newest_per_key(
    session: Session,
    *,
    columns: tuple[Any, ...],
    key: InstrumentedAttribute[Any],
    at: InstrumentedAttribute[Any],
    keys: list[str],
    equal: dict[str, Any] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """`columns` of the newest row (by `at`) for each of `keys`, among the rows whose
    other columns equal `equal`: one index walk per key, 500 keys per query, so a group
    of thousands of alerts takes a few round trips, not thousands."""
    newer = aliased(key.class_)
    same = equal or {}
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(*columns).where(
                key.in_(keys[start : start + 500]),
                *(getattr(key.class_, name) == value for name, value in same.items()),
                ~exists().where(
                    getattr(newer, key.key) == key,
                    getattr(newer, at.key) > at,
                    *(getattr(newer, name) == value for name, value in same.items()),
                ),
            )
        )
        yield from (tuple(row) for row in rows)


def in_their_occurrences(*, session: Session, incidents: list[Incident]) -> list[Incident]:
    """Each incident placed in its occurrence, against the latest one stored for its
    fingerprint: an `opened` event of an occurrence that is still open (a repeat, a
    re-sent group) is `updated`; an `updated` or `resolved` event belongs to the latest
    occurrence. Once that occurrence resolved, the next `opened` (or an `updated` saying it
    is active again) starts a new one."""
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    for source in {incident.source for incident in incidents}:
        fingerprints = sorted({i.fingerprint for i in incidents if i.source == source})
        for fingerprint, status, occurrence in _newest_per_key(
            session,
            columns=(IncidentRow.fingerprint, IncidentRow.status, IncidentRow.occurrence),
            key=IncidentRow.fingerprint,
            at=IncidentRow.received_at,
            keys=fingerprints,
            equal={"source": source},
        ):
            latest[(source, fingerprint)] = (status, occurrence or fingerprint)
    return [
        _placed(incident, latest.get((incident.source, incident.fingerprint)))
        for incident in incidents
    ]


def _placed(incident: Incident, latest: tuple[str, str] | None) -> Incident:
    if latest is None:
        return incident
    status, occurrence = latest
    if incident.phase == "opened":
        if status == "firing" and occurrence == incident.occurrence:
            return incident.model_copy(update={"phase": "updated"})
        return incident
    if incident.phase == "updated" and status == "resolved":
        # Active again after it resolved (a Rootly incident set back to started): reopened.
        return incident.model_copy(update={"phase": "opened"})
    return incident.model_copy(update={"occurrence": occurrence})


def latest_executions(*, session: Session, incident_keys: list[str]) -> dict[str, str]:
    """The newest execution's id, open or finished, for each incident key
    (`source:fingerprint`) that has one."""
    return {
        str(incident_key): str(execution_id)
        for incident_key, execution_id in _newest_per_key(
            session,
            columns=(Execution.incident_key, Execution.id),
            key=Execution.incident_key,
            at=Execution.created_at,
            keys=sorted(set(incident_keys)),
        )
    }


def incident_is_live(*, session: Session, source: str, fingerprint: str) -> bool:
    """The platform's incident with this fingerprint was seen, and last seen firing."""
    latest = _newest_per_key(
        session,
        columns=(IncidentRow.status,),
        key=IncidentRow.fingerprint,
        at=IncidentRow.received_at,
        keys=[fingerprint],
        equal={"source": source},
    )
    return any(status == "firing" for (status,) in latest)


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str
    # The refusal already made in this guard's window, if any: later alerts fold into it
    # (one row, one page per storm), and only a first refusal is escalated.
    earlier: Execution | None = None

    @property
    def escalate(self) -> bool:
        return self.earlier is None


def open_execution(*, session: Session, runbook: str, incident_key: str) -> Execution | None:
    """The execution of `runbook` for this incident that has not ended yet, if any."""
    return session.scalars(
        select(Execution).where(
            Execution.runbook == runbook,
            Execution.incident_key == incident_key,
            Execution.status.in_(OPEN),
        )
    ).first()


def _runs(runbook: str, since: datetime) -> Select[Execution]:
    """Runs (not refusals) of `runbook` created since `since`."""
    return select(Execution).where(
        Execution.runbook == runbook,
        Execution.created_at >= since,
        Execution.status != "refused",
    )


def _refused(runbook: str, guard: str, since: datetime) -> Select[Any]:
    return (
        select(Execution)
        .where(
            Execution.runbook == runbook,
            Execution.guard == guard,
            Execution.created_at >= since,
            Execution.status == "refused",
        )
        .limit(1)
    )


def _cooldown(*, session: Session, plan: Plan, now: datetime) -> Refusal | None:
    """Refused while the last run for this key is younger than the cooldown; only the
    first refusal after that run is escalated (one page per storm, not one per alert)."""
    runbook = plan.runbook
    if not runbook.cooldown:
        return None
    since = now - timedelta(seconds=runbook.cooldown)
    previous = session.scalars(
        _runs(runbook.name, since)
        .where(Execution.guard_key == plan.guard_key)
        .order_by(Execution.created_at.desc())
        .limit(1)
    ).first()
    if previous is None:
        return None
    already = session.scalars(
        _refused(runbook.name, "cooldown", previous.created_at).where(
            Execution.guard_key == plan.guard_key
        )
    ).first()
    reason = (
        f"cooldown: {runbook.name} already ran for {plan.guard_key} at "
        f"{previous.created_at.isoformat()} (execution {previous.id}); "
        f"cooldown is {runbook.cooldown:g}s"
    )
    return Refusal("cooldown", reason, already)


def _rate_limit(*, session: Session, plan: Plan, now: datetime) -> Refusal | None:
    """Refused once the runbook ran `max_runs.count` times (any key) within `per`;
    the first refusal in that window is escalated."""
    limit = plan.runbook.max_runs
    if limit is None:
        return None
    since = now - timedelta(seconds=limit.per)
    runs = session.scalar(
        select(func.count()).select_from(_runs(plan.runbook.name, since).subquery())
    )
    if (runs or 0) < limit.count:
        return None
    already = session.scalars(_refused(plan.runbook.name, "rate_limit", since)).first()
    reason = (
        f"rate limit: {plan.runbook.name} ran {runs} time(s) in the last {limit.per:g}s; "
        f"max_runs is {limit.count} per {limit.per:g}s"
    )
    return Refusal("rate_limit", reason, already)


def add_execution(
    *,
    session: Session,
    plan: Plan,
    incident_id: str,
    escalate_to: list[str],
    now: datetime,
    trigger: str = "webhook",
) -> tuple[Execution, bool]:
    """The execution this plan leads to, and whether it is an existing one that the
    incident was attached to: a repeat of an incident whose remediation is open, or an
    alert that a guard already refused in this window (a storm makes one refusal).

    A new one is queued (or waiting_approval), or ends at once, with its escalations:
    refused by a guard, or failed when a template did not render. The caller holds
    `lock_names` on the runbook so that replicas see each other's runs.
    """
    runbook = plan.runbook
    current = open_execution(session=session, runbook=runbook.name, incident_key=plan.incident_key)
    if current is not None:
        attach(session=session, execution_id=current.id, incident_id=incident_id, now=now)
        return current, True
    # Before the new row exists: autoflush would otherwise count it as its own previous run.
    refusal = None
    if plan.error is None:
        refusal = _cooldown(session=session, plan=plan, now=now) or _rate_limit(
            session=session, plan=plan, now=now
        )
    if refusal is not None and refusal.earlier is not None:
        attach(session=session, execution_id=refusal.earlier.id, incident_id=incident_id, now=now)
        return refusal.earlier, True
    execution = Execution(
        runbook=runbook.name,
        runbook_spec=runbook.model_dump(mode="json", by_alias=True),
        incident_id=incident_id,
        trigger=trigger,
        status="queued",
        concurrency_key=plan.concurrency_key,
        guard_key=plan.guard_key,
        incident_key=plan.incident_key,
        escalate_to=escalate_to,
        verify=plan.verify,
        created_at=now,
    )
    session.add(execution)
    for position, step in enumerate(plan.steps):
        execution.steps.append(
            StepRow(position=position, kind=step.kind, spec=step.spec, idempotent=step.idempotent)
        )
    if plan.error is not None:
        finish_execution(execution=execution, status="failed", error=plan.error, now=now)
    elif refusal is not None:
        execution.guard = refusal.guard
        finish_execution(
            execution=execution,
            status="refused",
            error=refusal.reason,
            now=now,
            escalate=refusal.escalate,
        )
    elif runbook.approval.required:
        execution.status = "waiting_approval"
        execution.deadline_at = now + timedelta(seconds=runbook.approval_timeout)
        _owe_escalations(execution, "waiting_approval", now)
    return execution, False


def attach(*, session: Session, execution_id: str, incident_id: str, now: datetime) -> None:
    """Record a later event of the incident on an execution: its history shows it."""
    # Added by id, not through `execution.attachments`: appending to the collection loads
    # every earlier attachment first, which made each alert of a storm slower than the last.
    session.add(Attachment(execution_id=execution_id, incident_id=incident_id, attached_at=now))


def note_resolution(*, session: Session, incident_key: str, now: datetime) -> list[str]:
    """A resolved incident arrived: open executions for it learn so, and those waiting
    for it to resolve (`verify.resolved_within`) succeed. Answers the ones that did."""
    succeeded = []
    for execution in session.scalars(
        select(Execution).where(Execution.incident_key == incident_key, Execution.status.in_(OPEN))
    ):
        execution.resolved_at = execution.resolved_at or now
        if execution.status == "verifying" and _awaits_resolution(execution):
            finish_execution(execution=execution, status="succeeded", error=None, now=now)
            succeeded.append(execution.id)
    return succeeded


def _awaits_resolution(execution: Execution) -> bool:
    return bool(execution.verify and "resolved_within" in execution.verify)


def finish_execution(
    *,
    execution: Execution,
    status: str,
    error: str | None,
    now: datetime,
    escalate: bool = True,
    reason: str | None = None,
) -> None:
    """The final state and, in the same transaction, the escalations it owes (for
    `reason`, by default the status itself)."""
    execution.status = status
    execution.error = error
    execution.finished_at = now
    execution.claimed_by = None
    execution.lease_expires_at = None
    for step in execution.steps:
        if step.status == "pending":
            step.status = "skipped"
    execution.deadline_at = None
    execution.next_check_at = None
    session = object_session(execution)
    if status == "succeeded" and session is not None:
        record_applied_versions(session=session, execution=execution, now=now)
    if escalate and status in ESCALATE_ON:
        _owe_escalations(execution, reason or status, now)


def _owe_escalations(execution: Execution, reason: str, now: datetime) -> None:
    for target in execution.escalate_to:
        execution.escalations.append(
            EscalationRow(target=target, reason=reason, next_attempt_at=now, created_at=now)
        )


def start_verification(execution: Execution, now: datetime) -> str:
    """Every step succeeded: succeeded now, or `verifying` until the runbook's check
    passes. Verifying executions belong to no worker; the verifier looks after them."""
    verify, awaits = execution.verify, _awaits_resolution(execution)
    if not verify or (awaits and execution.resolved_at is not None):
        finish_execution(execution=execution, status="succeeded", error=None, now=now)
        return "succeeded"
    within = verify["resolved_within"] if awaits else verify["http"]["within"]
    execution.status = "verifying"
    execution.claimed_by = execution.lease_expires_at = None
    execution.deadline_at = now + timedelta(seconds=float(within))
    execution.next_check_at = None if awaits else now
    return "verifying"


def record_attempt(*, session: Session, step_id: int, number: int, result: StepResult) -> None:
    step = session.get_one(StepRow, step_id)
    step.attempts = number
    step.rc = result.rc
    step.output_tail = result.output_tail
    step.error = result.error
    step.detail = result.detail
    session.add(
        AttemptRow(
            step_id=step_id,
            number=number,
            status=result.status,
            rc=result.rc,
            output_tail=result.output_tail,
            error=result.error,
            detail=result.detail,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )
    )
