"""Claiming work from the database: executions to run, escalations to deliver.

A claim is a lease: `claimed_by` + `lease_expires_at`, renewed by a heartbeat while the
work runs. A lease that expires means its worker died; `recover_expired` then decides
what is safe. On SQLite the `BEGIN IMMEDIATE` of every write transaction serialises
claims; on PostgreSQL `FOR NO KEY UPDATE SKIP LOCKED` lets claimers pass each other (`OF
executions`: the incident is joined in, and only the execution row is ours to lock). NO
KEY: every row that refers to an execution (an attachment, a step, an escalation) holds a
KEY SHARE lock on it until its transaction ends, which FOR UPDATE would count as taken;
under an alert storm's attachments a renewal then skipped the row until its lease ran out.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.store.models import HOLDS_KEY, EscalationRow, Execution


def _key_free() -> ColumnElement[bool]:
    """No other execution holds this one's concurrency key (or it has none)."""
    other = aliased(Execution)
    key_busy = exists().where(
        and_(
            other.concurrency_key == Execution.concurrency_key,
            other.status.in_(HOLDS_KEY),
        )
    )
    return ~(Execution.concurrency_key.is_not(None) & key_busy)


def _take(execution: Execution, worker_id: str, now: datetime, lease_s: float) -> None:
    execution.status = "running"
    execution.claimed_by = worker_id
    # Read the clock after the query, which waited for the previous holder of the key to
    # commit: `now` was taken before the wait.
    execution.started_at = execution.started_at or max(now, datetime.now(UTC))
    execution.lease_expires_at = now + timedelta(seconds=lease_s)


def claim_next_execution(
    *, session: Session, worker_id: str, now: datetime, lease_s: float
) -> Execution | None:
    """The oldest queued execution whose concurrency key is free (and whose batch window,
    if its runbook batches, is over), now `running` and ours."""
    candidate = session.scalars(
        select(Execution)
        .where(Execution.status == "queued")
        .where(or_(Execution.next_check_at.is_(None), Execution.next_check_at <= now))
        .where(_key_free())
        .order_by(Execution.created_at)
        .limit(1)
        .with_for_update(skip_locked=True, key_share=True, of=Execution)
    ).first()
    if candidate is None:
        return None
    _take(candidate, worker_id, now, lease_s)
    return candidate


def earliest_window(*, session: Session, now: datetime) -> datetime | None:
    """When the next queued execution held back by a batch's window may be claimed (a
    window already over is not waited for: what holds such an execution back is another,
    a concurrency key say, whose release wakes the workers)."""
    return session.scalar(
        select(func.min(Execution.next_check_at)).where(
            Execution.status == "queued", Execution.next_check_at > now
        )
    )


def claim_batch(
    *,
    session: Session,
    runbook: str,
    accept: Callable[[Execution], bool],
    count: int,
    worker_id: str,
    now: datetime,
    lease_s: float,
) -> list[Execution]:
    """Up to `count` more queued executions of `runbook` that `accept` says may join a
    batch, oldest first, each with its concurrency key free (and no two sharing one), now
    `running` and ours (those still in their window too: they join now)."""
    taken: list[Execution] = []
    keys: set[str] = set()
    candidates = session.scalars(
        select(Execution)
        .where(Execution.status == "queued", Execution.runbook == runbook)
        .where(_key_free())
        .order_by(Execution.created_at)
        .limit(count * 2)
        .with_for_update(skip_locked=True, key_share=True, of=Execution)
    )
    for candidate in candidates:
        key = candidate.concurrency_key
        if len(taken) == count or (key is not None and key in keys) or not accept(candidate):
            continue
        _take(candidate, worker_id, now, lease_s)
        taken.append(candidate)
        if key is not None:
            keys.add(key)
    return taken


def renew_leases(
    *, session: Session, worker_id: str, execution_ids: list[str], now: datetime, lease_s: float
) -> None:
    """Rows another transaction holds are left for the next renewal (a third of a lease
    later): that transaction is this replica's own worker recording a result, which may
    lock the same rows in another order, and a renewal that waited for them could
    deadlock with it (PostgreSQL aborted one in a soak: 13 members of a batch)."""
    if execution_ids:
        free = (
            select(Execution.id)
            .where(Execution.id.in_(execution_ids), Execution.claimed_by == worker_id)
            .order_by(Execution.id)
            .with_for_update(skip_locked=True, key_share=True)
        )
        session.execute(
            update(Execution)
            .where(Execution.id.in_(free.scalar_subquery()))
            .values(lease_expires_at=now + timedelta(seconds=lease_s))
        )


def expired_executions(*, session: Session, now: datetime) -> list[Execution]:
    """Executions whose worker stopped renewing its lease (it died)."""
    return list(
        session.scalars(
            select(Execution)
            .where(Execution.status == "running", Execution.lease_expires_at < now)
            .with_for_update(skip_locked=True, key_share=True, of=Execution)
        )
    )


def cancel_requested(*, session: Session, execution_ids: list[str]) -> list[str]:
    if not execution_ids:
        return []
    return list(
        session.scalars(
            select(Execution.id).where(
                Execution.id.in_(execution_ids), Execution.cancel_requested.is_(True)
            )
        )
    )


def past_deadline(*, session: Session, now: datetime) -> list[Execution]:
    """Waiting for approval or verifying, and out of time."""
    return list(
        session.scalars(
            select(Execution)
            .where(
                Execution.status.in_(("waiting_approval", "verifying")),
                Execution.deadline_at < now,
            )
            .with_for_update(skip_locked=True, key_share=True, of=Execution)
        )
    )


def claim_due_checks(
    *, session: Session, now: datetime, hold_s: float, limit: int = 20
) -> list[Execution]:
    """Verifying executions whose next HTTP check is due; pushed `hold_s` into the future
    so no other replica checks them meanwhile."""
    rows = list(
        session.scalars(
            select(Execution)
            .where(Execution.status == "verifying", Execution.next_check_at <= now)
            .order_by(Execution.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True, key_share=True, of=Execution)
        )
    )
    for row in rows:
        row.next_check_at = now + timedelta(seconds=hold_s)
    return rows


def claim_due_waits(
    *, session: Session, now: datetime, hold_s: float, limit: int = 100
) -> list[str]:
    """Running executions that no worker holds (their step is running elsewhere, and the
    row is how it is followed) whose next look is due; pushed `hold_s` into the future so
    no other replica looks meanwhile. Ids only: a look reads the columns it needs, not
    whole executions (which made following hundreds of jobs cost most of a core)."""
    ids = list(
        session.scalars(
            select(Execution.id)
            .where(
                Execution.status == "running",
                Execution.claimed_by.is_(None),
                Execution.next_check_at <= now,
            )
            .order_by(Execution.next_check_at)
            .limit(limit)
            .with_for_update(skip_locked=True, key_share=True)
        )
    )
    if ids:
        session.execute(
            update(Execution)
            .where(Execution.id.in_(ids))
            .values(next_check_at=now + timedelta(seconds=hold_s))
        )
    return ids


def claim_next_escalation(
    *,
    session: Session,
    now: datetime,
    lease_s: float,
    target: str | None = None,
    besides: Collection[str] = (),
) -> EscalationRow | None:
    """A pending escalation that is due (for `target`, or for none of `besides`); pushed
    into the future while it is delivered so no other worker takes it meanwhile."""
    query = select(EscalationRow).where(
        EscalationRow.status == "pending", EscalationRow.next_attempt_at <= now
    )
    if target is not None:
        query = query.where(EscalationRow.target == target)
    if besides:
        query = query.where(EscalationRow.target.not_in(list(besides)))
    row = session.scalars(
        query.order_by(EscalationRow.next_attempt_at).limit(1).with_for_update(skip_locked=True)
    ).first()
    if row is not None:
        row.next_attempt_at = now + timedelta(seconds=lease_s)
    return row
