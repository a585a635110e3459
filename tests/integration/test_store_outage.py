"""PostgreSQL stopped (`pg_ctl stop -m immediate`) while a step runs and started again
10 s later: the step's result is recorded once the store is back, the idempotent step ran
once (a marker file counts runs), and nothing is escalated as interrupted."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer, running_postgres
from tests.support.service import Api, alert, ansible_step, runbook

pytestmark = pytest.mark.ansible


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this test's own, since it is stopped and started."""
    with running_postgres("remediator-pg-outage-") as server:
        yield server


def test_a_result_is_recorded_once_the_store_is_back_and_nothing_runs_twice(
    make_api: Callable[..., Api], own_postgres: PostgresServer, tmp_path: Path
) -> None:
    marker = tmp_path / "runs"
    step = {**ansible_step("append.yml", dest=str(marker), pause="4"), "idempotent": True}
    api = make_api([runbook("slow", "Slow", step)], database_url=own_postgres.new_database())
    execution_id = api.alertmanager(alert("Slow")).json()["executions"][0]
    # The step is marked running just before the playbook starts: from then on it runs.
    api.wait(execution_id, until=lambda e: e["steps"][0]["status"] == "running", timeout=30)
    own_postgres.stop()
    stopped = time.monotonic()
    try:
        # The step finishes meanwhile; its result has nowhere to go.
        while not marker.exists() and time.monotonic() - stopped < 60:
            time.sleep(0.2)
        assert marker.read_text().splitlines() == ["run"]
        time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    finally:
        own_postgres.resume()
    done = api.wait(execution_id, timeout=120)
    assert done["status"] == "succeeded", done
    assert marker.read_text().splitlines() == ["run"]  # ran once
    [recorded] = done["steps"]
    assert recorded["attempts"] == 1 and recorded["status"] == "succeeded"
    assert done["escalations"] == [] and done["actions"] == []
