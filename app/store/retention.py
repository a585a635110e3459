"""Retention: what is older than `retention_days` is pruned, in small batches, so the
database (and every scrape and listing over it) holds recent history, not all of it.

Order follows the references: finished executions with their steps, attempts,
escalations, actions and attachments; then incidents no execution or attachment still
points at; then each old event's stored payload; and audit rows, kept as long as the
executions they speak of. The event rows themselves (source,
delivery id, type, time: about 150 bytes each) stay as the dedup keys until
`dedup_retention_days`, so a delivery redelivered after its incidents were pruned is
still a duplicate, and cost nothing on the hot path: the unique index that tells
duplicates today is the same one. Only then are they deleted.

Each batch is its own short transaction, so webhooks and workers never wait long behind
it; replicas may prune at once (a row deleted twice is a row deleted once).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, exists, select, update
from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.models import (
    FINAL,
    ActionRow,
    Attachment,
    AttemptRow,
    AuditRow,
    EscalationRow,
    Event,
    Execution,
    IncidentRow,
    OutputChunk,
    StepRow,
)

BATCH = 500


@dataclass(frozen=True)
class Pruned:
    executions: int
    incidents: int
    payloads: int
    events: int
    audit: int


def prune(
    *, db: Database, now: datetime, keep_days: float, dedup_days: float, batch: int = BATCH
) -> Pruned:
    """Prune everything past its retention; answers how many of each went."""
    cutoff = now - timedelta(days=keep_days)
    dedup_cutoff = now - timedelta(days=max(dedup_days, keep_days))
    finished = select(Execution.id).where(
        Execution.status.in_(FINAL), Execution.finished_at < cutoff
    )
    # Through the events' time index: an index per incident row would cost every alert
    # of a large group another write.
    unreferenced = (
        select(IncidentRow.id)
        .join(Event, Event.id == IncidentRow.event_id)
        .where(
            Event.received_at < cutoff,
            ~exists().where(Execution.incident_id == IncidentRow.id),
            ~exists().where(Attachment.incident_id == IncidentRow.id),
        )
    )
    with_payload = select(Event.id).where(Event.received_at < cutoff, Event.payload.is_not(None))
    forgotten = select(Event.id).where(
        Event.received_at < dedup_cutoff, ~exists().where(IncidentRow.event_id == Event.id)
    )
    return Pruned(
        executions=_in_batches(db, finished, batch, _drop_executions),
        incidents=_in_batches(
            db,
            unreferenced,
            batch,
            lambda session, ids: session.execute(
                delete(IncidentRow).where(IncidentRow.id.in_(ids))
            ),
        ),
        payloads=_in_batches(
            db,
            with_payload,
            batch,
            lambda session, ids: session.execute(
                update(Event).where(Event.id.in_(ids)).values(payload=None)
            ),
        ),
        events=_in_batches(
            db,
            forgotten,
            batch,
            lambda session, ids: session.execute(delete(Event).where(Event.id.in_(ids))),
        ),
        audit=_in_batches(
            db,
            select(AuditRow.id).where(AuditRow.at < cutoff),
            batch,
            lambda session, ids: session.execute(delete(AuditRow).where(AuditRow.id.in_(ids))),
        ),
    )


def _in_batches(
    db: Database, chosen: Select[Any], batch: int, act: Callable[[Session, list[Any]], object]
) -> int:
    """`act` on the ids `chosen` selects, `batch` at a time, each batch one transaction."""
    total = 0
    while True:
        with db.write() as session:
            ids = list(session.scalars(chosen.limit(batch)))
            if ids:
                act(session, ids)
        total += len(ids)
        if len(ids) < batch:
            return total


def _drop_executions(session: Session, ids: list[Any]) -> None:
    steps = select(StepRow.id).where(StepRow.execution_id.in_(ids))
    session.execute(delete(AttemptRow).where(AttemptRow.step_id.in_(steps)))
    for table in (OutputChunk, StepRow, EscalationRow, ActionRow, Attachment):
        session.execute(delete(table).where(table.execution_id.in_(ids)))
    session.execute(delete(Execution).where(Execution.id.in_(ids)))
