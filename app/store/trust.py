"""What every replica must see alike of how far automation is trusted: the pause switch,
each runbook's circuit breaker, and what the budgets have spent. Persistence only; what
they mean is app/executions/trust.py."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import BreakerRow, Execution, PauseRow

PAUSE_ID = 1
# What never acted, so spends no budget.
NOT_SPENT = ("refused", "rejected")


def read_pause(session: Session, now: datetime) -> PauseRow | None:
    """The pause switch, when it is on at `now` (its `until` not yet reached)."""
    row = session.get(PauseRow, PAUSE_ID)
    if row is None or not row.paused or (row.until is not None and row.until <= now):
        return None
    return row


def set_pause(
    session: Session,
    *,
    by: str,
    reason: str,
    since: datetime,
    until: datetime | None,
    runbooks: list[str] | None,
) -> PauseRow:
    row = session.get(PauseRow, PAUSE_ID, with_for_update=True)
    if row is None:
        row = PauseRow(id=PAUSE_ID)
        session.add(row)
    row.paused, row.by, row.reason, row.since, row.until, row.runbooks = (
        True, by, reason, since, until, runbooks
    )  # fmt: skip
    return row


def clear_pause(session: Session) -> PauseRow | None:
    """Turn the switch off; answers the pause that was on, if any."""
    row = session.get(PauseRow, PAUSE_ID, with_for_update=True)
    if row is None or not row.paused:
        return None
    row.paused = False
    return row


def read_breaker(session: Session, runbook: str) -> BreakerRow | None:
    return session.get(BreakerRow, runbook)


def breakers(session: Session) -> dict[str, BreakerRow]:
    return {row.runbook: row for row in session.scalars(select(BreakerRow))}


def open_breaker(
    session: Session, *, runbook: str, failures: list[str], now: datetime
) -> BreakerRow:
    row = session.get(BreakerRow, runbook, with_for_update=True)
    if row is None:
        row = BreakerRow(runbook=runbook)
        session.add(row)
    row.opened_at, row.failures = now, failures
    return row


def close_breaker(session: Session, *, runbook: str, by: str, reason: str, now: datetime) -> None:
    row = session.get(BreakerRow, runbook, with_for_update=True)
    if row is None:
        row = BreakerRow(runbook=runbook)
        session.add(row)
    row.opened_at, row.failures = None, None
    row.reset_at, row.reset_by, row.reset_reason = now, by, reason


def failures_since(
    session: Session, *, runbook: str, since: datetime, statuses: Collection[str]
) -> list[str]:
    """Executions of `runbook` that ended in one of `statuses` since `since`, oldest first."""
    query = (
        select(Execution.id)
        .where(
            Execution.runbook == runbook,
            Execution.finished_at >= since,
            Execution.status.in_(statuses),
        )
        .order_by(Execution.finished_at)
    )
    return list(session.scalars(query))


def spent(
    session: Session, *, since: datetime, runbook: str | None = None
) -> list[tuple[datetime, int]]:
    """What runs (not shadows, not refused) created since `since` spent, oldest first: when
    and how many targets each (of `runbook`'s alone, if given)."""
    query = select(Execution.created_at, Execution.target_count).where(
        Execution.created_at >= since,
        Execution.mode != "shadow",
        Execution.target_count > 0,
        Execution.status.not_in(NOT_SPENT),
    )
    if runbook is not None:
        query = query.where(Execution.runbook == runbook)
    return [(at, count) for at, count in session.execute(query.order_by(Execution.created_at))]
