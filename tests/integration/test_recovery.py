"""Work whose worker died or whose service stopped: resumed where that is safe (no step
mid-way, or the step is idempotent), else interrupted and escalated. On SQLite and on
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.executions.run import MAX_RECOVERIES, recover_expired
from app.services import Services
from app.store.models import Execution
from tests.support.service import Api, Recorder, alert, ansible_step, runbook

pytestmark = pytest.mark.ansible


def appender(dest: Path, pause: float = 0, idempotent: bool = False) -> dict[str, Any]:
    return {
        **ansible_step("append.yml", dest=str(dest), pause=str(pause)),
        "idempotent": idempotent,
    }


def claimed_by_dead_worker(services: Services, execution_id: str, step_status: str) -> None:
    """As if a worker claimed it and died (kill -9) with its first step `step_status`."""
    with services.db.write() as session:
        execution = session.get_one(Execution, execution_id)
        execution.status, execution.claimed_by = "running", "dead:1"
        execution.lease_expires_at = datetime.now(UTC) - timedelta(minutes=5)
        execution.steps[0].status = step_status


def test_expired_leases_are_recovered(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, database_url: str
) -> None:
    rbs = [
        runbook("plain", "Plain", appender(tmp_path / "plain"), escalate=["webhook"]),
        runbook("safe", "Safe", appender(tmp_path / "safe", idempotent=True)),
    ]
    api = make_api(rbs, database_url=database_url, workers=1,
                   escalation={"webhook": {"url": recorder.url}})  # fmt: skip
    services = api.services
    services.stopping.set()  # keep the live workers out of the way
    not_started, mid_step, idempotent = (
        api.alertmanager(alert(name, fingerprint=fp)).json()["executions"][0]
        for name, fp in (("Plain", "a"), ("Plain", "b"), ("Safe", "c"))
    )
    claimed_by_dead_worker(services, not_started, "pending")
    claimed_by_dead_worker(services, mid_step, "running")
    claimed_by_dead_worker(services, idempotent, "running")
    assert sorted(recover_expired(services)) == sorted([not_started, mid_step, idempotent])
    assert api.execution(not_started)["status"] == "queued"
    resumed = api.execution(idempotent)
    assert resumed["status"] == "queued" and resumed["steps"][0]["status"] == "pending"
    # Run again, and the execution says why: its result was never recorded.
    [rerun] = resumed["actions"]
    assert (rerun["action"], rerun["by"]) == ("rerun", "remediator (recovery)")
    assert "result was not recorded" in rerun["reason"] and "dead:1" in rerun["reason"]
    interrupted = api.execution(mid_step)
    assert interrupted["status"] == "interrupted" and "dead:1" in interrupted["error"]
    assert interrupted["steps"][0]["status"] == "interrupted"
    assert [e["reason"] for e in interrupted["escalations"]] == ["interrupted"]


def test_a_cancel_asked_of_a_dead_worker_is_honoured(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    api = make_api([runbook("safe", "Safe", appender(tmp_path / "s", idempotent=True))],
                   database_url=database_url)  # fmt: skip
    services = api.services
    services.stopping.set()
    execution_id = api.alertmanager(alert("Safe")).json()["executions"][0]
    claimed_by_dead_worker(services, execution_id, "running")
    assert api.act(execution_id, "cancel", by="bob").status_code == 200
    recover_expired(services)
    final = api.execution(execution_id)
    assert final["status"] == "cancelled" and final["error"] == "cancelled by bob"
    assert final["steps"][0]["status"] == "cancelled" and final["escalations"] == []


def test_a_step_that_keeps_killing_its_worker_is_given_up(
    make_api: Callable[..., Api], tmp_path: Path, database_url: str
) -> None:
    api = make_api([runbook("safe", "Safe", appender(tmp_path / "s", idempotent=True))],
                   database_url=database_url)  # fmt: skip
    services = api.services
    services.stopping.set()
    execution_id = api.alertmanager(alert("Safe")).json()["executions"][0]
    for _ in range(MAX_RECOVERIES):
        claimed_by_dead_worker(services, execution_id, "running")
        recover_expired(services)
        assert api.execution(execution_id)["status"] == "queued"
    claimed_by_dead_worker(services, execution_id, "running")
    recover_expired(services)
    final = api.execution(execution_id)
    assert final["status"] == "interrupted"


@pytest.mark.parametrize("idempotent", [True, False])
def test_shutdown_past_the_grace_period(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path, idempotent: bool
) -> None:
    """SIGTERM semantics (the app's lifespan end): a step still running when the grace
    period is over goes back to the queue when idempotent, else ends interrupted."""
    dest = tmp_path / "runs"
    api = make_api(
        [
            runbook(
                "slow", "Slow", appender(dest, pause=6, idempotent=idempotent), escalate=["webhook"]
            )
        ],  # fmt: skip
        shutdown_grace_s=1,
        escalation={"webhook": {"url": recorder.url}},
    )
    execution_id = api.alertmanager(alert("Slow")).json()["executions"][0]
    api.wait(execution_id, until=lambda e: e["steps"][0]["status"] == "running")
    api.client.__exit__(None, None, None)  # the lifespan ends: what SIGTERM does to serve
    restarted = make_api(
        [
            runbook(
                "slow", "Slow", appender(dest, pause=0, idempotent=idempotent), escalate=["webhook"]
            )
        ],  # fmt: skip
        escalation={"webhook": {"url": recorder.url}},
    )
    final = restarted.wait(execution_id)
    if idempotent:
        assert final["status"] == "succeeded" and final["escalations"] == []
        assert [a["status"] for a in final["steps"][0]["attempt_log"]] == ["cancelled", "succeeded"]
    else:
        assert final["status"] == "interrupted" and "stopped mid-step" in final["error"]
        assert [e["reason"] for e in final["escalations"]] == ["interrupted"]
    assert (dest.read_text() if dest.exists() else "").count("run") == (1 if idempotent else 0)
