"""A made-up history of executions, written straight into the store, for the stats tests
and the stats bench: each row says what it is, so a test can count by hand what
`GET /api/stats` must answer."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert

from app.store.db import Database
from app.store.models import (
    FINAL,
    ActionRow,
    Base,
    EscalationRow,
    Event,
    Execution,
    IncidentRow,
)


@dataclass(frozen=True)
class Past:
    """One execution of the history."""

    runbook: str
    status: str
    created_at: datetime
    took_s: float  # created to finished
    started_before_s: float | None  # the platform's start, this long before arrival
    escalated: bool  # a failure escalation (a page)
    noticed: bool  # a success notice (not a page)
    approved_after_s: float | None


def make_history(count: int, *, now: datetime, seed: int = 7) -> list[Past]:
    pick = random.Random(seed)
    history = []
    for _ in range(count):
        status = pick.choice([*FINAL, "succeeded", "succeeded", "succeeded"])
        approved = pick.choice([None, None, round(pick.uniform(1, 900), 3)])
        history.append(
            Past(
                runbook=pick.choice(["clear-cache", "restart-web", "revert-release"]),
                status=status,
                created_at=now - timedelta(seconds=pick.uniform(60, 14 * 86400)),
                took_s=round(pick.uniform(1, 3600), 3),
                started_before_s=pick.choice([None, round(pick.uniform(0, 600), 3)]),
                escalated=status != "succeeded"
                and pick.random() < 0.8
                or status == "succeeded"
                and pick.random() < 0.1,
                noticed=status == "succeeded" and pick.random() < 0.5,
                approved_after_s=approved if status != "refused" else None,
            )
        )
    return history


def write_history(db: Database, history: list[Past], chunk: int = 5000) -> None:
    """Events, incidents, executions, escalations and approvals, in chunks."""
    for start in range(0, len(history), chunk):
        rows: dict[str, list[dict[str, object]]] = {
            "events": [], "incidents": [], "executions": [], "escalations": [], "actions": [],
        }  # fmt: skip
        for past in history[start : start + chunk]:
            event_id, incident_id, execution_id = (str(uuid.uuid4()) for _ in range(3))
            fingerprint = f"fp-{execution_id}"
            rows["events"].append({"id": event_id, "source": "generic", "delivery_id": event_id,
                                   "event_type": "incident.firing", "incident_count": 1,
                                   "received_at": past.created_at})  # fmt: skip
            rows["incidents"].append({"id": incident_id, "event_id": event_id, "source": "generic",
                                      "fingerprint": fingerprint, "status": "firing",
                                      "occurrence": "", "received_at": past.created_at,
                                      "data": {"title": "made up"}})  # fmt: skip
            started = (
                past.created_at - timedelta(seconds=past.started_before_s)
                if past.started_before_s is not None
                else None
            )
            rows["executions"].append({
                "id": execution_id, "runbook": past.runbook, "runbook_spec": {},
                "incident_id": incident_id, "trigger": "webhook", "status": past.status,
                "mode": "shadow" if past.status == "shadowed" else "auto",
                "guard_key": f"fingerprint:{fingerprint}",
                "incident_key": f"generic:{fingerprint}", "escalate_to": [],
                "created_at": past.created_at, "incident_started_at": started,
                "finished_at": past.created_at + timedelta(seconds=past.took_s),
                "cancel_requested": False, "recoveries": 0, "escalated": past.escalated,
                # As the service keeps them when it ends, or is approved.
                "remediation_s": round(past.took_s + (past.started_before_s or 0.0), 3)
                if past.status == "succeeded" else None,
                "approval_wait_s": past.approved_after_s,
            })  # fmt: skip
            for reason, owed in ((past.status, past.escalated), ("remediated", past.noticed)):
                if owed:
                    rows["escalations"].append({"id": str(uuid.uuid4()),
                                                "execution_id": execution_id, "target": "webhook",
                                                "reason": reason, "status": "delivered",
                                                "attempts": 1, "progress": [],
                                                "next_attempt_at": past.created_at,
                                                "created_at": past.created_at})  # fmt: skip
            if past.approved_after_s is not None:
                rows["actions"].append({"execution_id": execution_id, "action": "approve",
                                        "by": "alice", "identity": "alice", "reason": "",
                                        "at": past.created_at
                                        + timedelta(seconds=past.approved_after_s)})  # fmt: skip
        with db.write() as session:
            for model in (Event, IncidentRow, Execution, EscalationRow, ActionRow):
                name = model.__tablename__
                if rows[name]:
                    session.execute(insert(Base.metadata.tables[name]), rows[name])
