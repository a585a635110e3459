"""The audit log's rows: one per state-changing call and per refused call."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import AuditRow

# ok: 2xx/3xx; denied: refused as unauthenticated or forbidden (401/403); failed: any
# other answer (a conflict, a bad body, a fault).
AuditOutcome = Literal["ok", "denied", "failed"]


def outcome_of(status: int) -> AuditOutcome:
    if status in (401, 403):
        return "denied"
    return "ok" if status < 400 else "failed"


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    identity: str | None
    roles: str
    via: str | None
    method: str
    route: str
    target: str | None
    outcome: AuditOutcome
    status: int
    client: str | None


def record_audit(session: Session, entry: AuditEntry) -> None:
    session.add(AuditRow(**asdict(entry)))


def audit_page(
    session: Session,
    *,
    identity: str | None,
    since: datetime | None,
    outcome: AuditOutcome | None,
    before_id: int | None,
    limit: int,
) -> list[AuditRow]:
    """Newest first; ids only grow, so `before_id` (the last id of the page before) is
    the whole keyset."""
    query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
    if identity is not None:
        query = query.where(AuditRow.identity == identity)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    if outcome is not None:
        query = query.where(AuditRow.outcome == outcome)
    if before_id is not None:
        query = query.where(AuditRow.id < before_id)
    return list(session.scalars(query))
