"""Retention: what is older than `retention_days` is pruned, in small batches, so the
database (and every scrape and listing over it) holds recent history, not all of it.

Order follows the references: finished executions with their steps, attempts,
escalations, actions and attachments; then incidents no execution or attachment still
points at; then each old event's stored payload. The event rows themselves (source,
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

from sqlalchemy import delete, exists, select, update

from app.store.db import Database
from app.store.models import (
    FINAL,
    ActionRow,
    Attachment,
    AttemptRow,
    EscalationRow,
    Event,
    Execution,
    IncidentRow,
    StepRow,
)

BATCH = 500


@dataclass(frozen=True)
class Pruned:
    executions: int
    incidents: int
    payloads: int
    events: int


def prune(
    *, db: Database, now: datetime, keep_days: float, dedup_days: float, batch: int = BATCH
) -> Pruned:
    """Prune everything past its retention; answers how many of each went."""
    cutoff = now - timedelta(days=keep_days)
    dedup_cutoff = now - timedelta(days=max(dedup_days, keep_days))
    return Pruned(
        executions=_in_batches(lambda: _executions(db, cutoff, batch), batch),
        incidents=_in_batches(lambda: _incidents(db, cutoff, batch), batch),
        payloads=_in_batches(lambda: _payloads(db, cutoff, batch), batch),
        events=_in_batches(lambda: _events(db, dedup_cutoff, batch), batch),
    )


def _in_batches(step: Callable[[], int], batch: int) -> int:
    total = 0
    while True:
        done = step()
        total += done
        if done < batch:
            return total


def _executions(db: Database, cutoff: datetime, batch: int) -> int:
    with db.write() as session:
        ids = list(
            session.scalars(
                select(Execution.id)
                .where(Execution.status.in_(FINAL), Execution.finished_at < cutoff)
                .limit(batch)
            )
        )
        if not ids:
            return 0
        steps = select(StepRow.id).where(StepRow.execution_id.in_(ids))
        session.execute(delete(AttemptRow).where(AttemptRow.step_id.in_(steps)))
        for table in (StepRow, EscalationRow, ActionRow, Attachment):
            session.execute(delete(table).where(table.execution_id.in_(ids)))
        session.execute(delete(Execution).where(Execution.id.in_(ids)))
        return len(ids)


def _incidents(db: Database, cutoff: datetime, batch: int) -> int:
    with db.write() as session:
        ids = list(
            session.scalars(
                # Through the events' time index: an index per incident row would cost
                # every alert of a large group another write.
                select(IncidentRow.id)
                .join(Event, Event.id == IncidentRow.event_id)
                .where(
                    Event.received_at < cutoff,
                    ~exists().where(Execution.incident_id == IncidentRow.id),
                    ~exists().where(Attachment.incident_id == IncidentRow.id),
                )
                .limit(batch)
            )
        )
        if ids:
            session.execute(delete(IncidentRow).where(IncidentRow.id.in_(ids)))
        return len(ids)


def _payloads(db: Database, cutoff: datetime, batch: int) -> int:
    with db.write() as session:
        ids = list(
            session.scalars(
                select(Event.id)
                .where(Event.received_at < cutoff, Event.payload.is_not(None))
                .limit(batch)
            )
        )
        if ids:
            session.execute(update(Event).where(Event.id.in_(ids)).values(payload=None))
        return len(ids)


def _events(db: Database, cutoff: datetime, batch: int) -> int:
    with db.write() as session:
        ids = list(
            session.scalars(
                select(Event.id)
                .where(
                    Event.received_at < cutoff,
                    ~exists().where(IncidentRow.event_id == Event.id),
                )
                .limit(batch)
            )
        )
        if ids:
            session.execute(delete(Event).where(Event.id.in_(ids)))
        return len(ids)
