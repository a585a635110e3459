"""What happened to each stored incident, read back in arrival order: the executions it
started (with their rendered steps) and the open ones it was folded into. A backtest
replays it; `events export` writes it out. Read-only, in pages, so a month of a busy
service is read in bounded memory."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from app.store.models import Attachment, Execution, IncidentRow, StepRow


@dataclass(frozen=True)
class StoredStep:
    kind: str
    spec: dict[str, Any]
    status: str


@dataclass(frozen=True)
class StoredOutcome:
    """An execution the incident started (`attached` False) or was folded into."""

    execution_id: str
    runbook: str
    runbook_spec: dict[str, Any]
    status: str
    guard: str | None
    guard_key: str
    trigger: str
    attached: bool
    error: str | None
    created_at: datetime
    steps: tuple[StoredStep, ...]


@dataclass(frozen=True)
class StoredIncident:
    id: str
    received_at: datetime
    document: dict[str, Any]
    outcomes: tuple[StoredOutcome, ...]


def stored_history(
    session: Session,
    *,
    since: datetime,
    until: datetime,
    source: str | None = None,
    page: int = 2000,
) -> Iterator[StoredIncident]:
    """Incidents received in [since, until), oldest first, with what became of them."""
    after: tuple[datetime, str] | None = None
    while True:
        query = (
            select(IncidentRow)
            .where(IncidentRow.received_at >= since, IncidentRow.received_at < until)
            .order_by(IncidentRow.received_at, IncidentRow.id)
            .limit(page)
        )
        if source is not None:
            query = query.where(IncidentRow.source == source)
        if after is not None:
            query = query.where(tuple_(IncidentRow.received_at, IncidentRow.id) > after)
        rows = list(session.scalars(query))
        if not rows:
            return
        outcomes = _outcomes(session, [row.id for row in rows])
        for row in rows:
            yield StoredIncident(
                row.id, row.received_at, row.document, tuple(outcomes.get(row.id, ()))
            )
        after = (rows[-1].received_at, rows[-1].id)


# The columns an outcome needs: the execution's steps, attempts and escalations are not.
_EXECUTION = (
    Execution.id, Execution.runbook, Execution.runbook_spec, Execution.status, Execution.guard,
    Execution.guard_key, Execution.trigger, Execution.error, Execution.created_at,
)  # fmt: skip


def _outcomes(session: Session, incident_ids: list[str]) -> dict[str, list[StoredOutcome]]:
    started = session.execute(
        select(Execution.incident_id, *_EXECUTION).where(Execution.incident_id.in_(incident_ids))
    ).all()
    folded = session.execute(
        select(Attachment.incident_id, *_EXECUTION)
        .join(Execution, Execution.id == Attachment.execution_id)
        .where(Attachment.incident_id.in_(incident_ids))
    ).all()
    steps = _steps(session, [row.id for row in started])
    found: dict[str, list[StoredOutcome]] = {}
    for attached, rows in ((False, started), (True, folded)):
        for row in rows:
            found.setdefault(row.incident_id, []).append(
                StoredOutcome(
                    execution_id=row.id,
                    runbook=row.runbook,
                    runbook_spec=row.runbook_spec,
                    status=row.status,
                    guard=row.guard,
                    guard_key=row.guard_key,
                    trigger=row.trigger,
                    attached=attached,
                    error=row.error,
                    created_at=row.created_at,
                    # An attached incident rendered nothing of its own.
                    steps=() if attached else steps.get(row.id, ()),
                )  # fmt: skip
            )
    return found


def _steps(session: Session, execution_ids: list[str]) -> dict[str, tuple[StoredStep, ...]]:
    found: dict[str, list[StoredStep]] = {}
    for execution_id, kind, spec, status in session.execute(
        select(StepRow.execution_id, StepRow.kind, StepRow.spec, StepRow.status)
        .where(StepRow.execution_id.in_(execution_ids))
        .order_by(StepRow.execution_id, StepRow.position)
    ):
        found.setdefault(execution_id, []).append(StoredStep(kind, spec, status))
    return {key: tuple(value) for key, value in found.items()}
