"""Retention on SQLite and PostgreSQL: past `retention_days` finished executions and
their incidents are pruned, open work is not; the event rows stay as dedup keys until
`dedup_retention_days`, so a redelivery is still a duplicate; a body whose own time is
older than that window is refused as a possible replay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.store.models import Event, Execution, IncidentRow
from app.store.retention import prune
from tests.support.instant import instant_step
from tests.support.service import Api, alert, bearer, runbook

# The instant step kind: what runs is not the subject here (tests.support.instant).
pytestmark = pytest.mark.usefixtures("instant_kind")


def counts(api: Api) -> tuple[int, int, int, int]:
    with api.services.db.read() as session:
        return (
            session.scalar(select(func.count()).select_from(Execution)) or 0,
            session.scalar(select(func.count()).select_from(IncidentRow)) or 0,
            session.scalar(select(func.count()).select_from(Event)) or 0,
            session.scalar(select(func.count()).where(Event.payload.is_not(None))) or 0,
        )


def test_old_history_is_pruned_and_its_dedup_keys_outlive_it(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    api = make_api(
        [
            runbook("done", "Done", instant_step(tmp_path / "runs")),
            runbook("waits", "Waits", instant_step(tmp_path / "runs"), approval=True,
                    approval_timeout="30d"),
        ],
        database_url=database_url,
    )  # fmt: skip
    finished = alert("Done", fingerprint="fp-done")
    api.wait(api.alertmanager(finished).json()["executions"][0])
    waiting = api.alertmanager(alert("Waits", fingerprint="fp-wait")).json()["executions"][0]
    assert counts(api) == (2, 2, 2, 2)
    # Two audit rows: a refused call and a reload.
    assert api.client.post("/api/runbooks/reload", headers=bearer("alice")).status_code == 403
    assert api.client.post("/api/runbooks/reload", headers=api.auth).status_code == 200
    db = api.services.db

    assert prune(db=db, now=datetime.now(UTC), keep_days=30, dedup_days=90).executions == 0
    pruned = prune(db=db, now=datetime.now(UTC) + timedelta(days=31), keep_days=30,
                   dedup_days=90, batch=1)  # fmt: skip
    assert (pruned.executions, pruned.incidents, pruned.payloads, pruned.events) == (1, 1, 2, 0)
    assert pruned.audit == 2  # kept as long as the executions
    assert api.client.get("/api/audit", headers=api.auth).json() == []
    # The waiting execution and its incident stay; both event rows stay, payloads gone.
    assert counts(api) == (1, 1, 2, 0)
    assert api.execution(waiting)["status"] == "waiting_approval"
    again = api.alertmanager(finished)
    assert again.status_code == 200 and again.json()["duplicate"] is True

    pruned = prune(db=db, now=datetime.now(UTC) + timedelta(days=91), keep_days=30,
                   dedup_days=90)  # fmt: skip
    assert pruned.events == 1  # the other event's incident is still an open execution's
    assert counts(api) == (1, 1, 1, 0)


def test_a_body_older_than_the_dedup_window_is_refused(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api([runbook("done", "Done", instant_step(tmp_path / "runs"))])
    old = alert("Done")
    old["alerts"][0]["startsAt"] = (datetime.now(UTC) - timedelta(days=91)).isoformat()
    answer = api.alertmanager(old)
    assert answer.status_code == 401 and answer.json()["error"] == "stale_timestamp"
    recent = alert("Done")
    recent["alerts"][0]["startsAt"] = (datetime.now(UTC) - timedelta(days=89)).isoformat()
    assert api.alertmanager(recent).status_code == 202
