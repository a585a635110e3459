"""AWX jobs through a running `remediator serve`: a job whose service is killed (-9) or
stopped (SIGTERM) while it runs is re-attached to after the restart and ends with the
engine's result, launched exactly once; 200 executions waiting on slow jobs with two
workers all finish, and a local ansible step queued meanwhile still runs at once."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import Server, start_server
from tests.support.service import alert, alert_group, ansible_step, runbook, write_config
from tests.support.standins.awx import AWX_TOKEN, AwxStandIn, awx_stand_in


@pytest.fixture
def awx() -> Iterator[AwxStandIn]:
    with awx_stand_in() as stand_in:
        yield stand_in


def awx_runbook(**step: Any) -> dict[str, Any]:
    spec = {"job_template": "restart-node", "extra_vars": {"node": "{{ incident.labels.i }}"},
            "limit": "{{ incident.labels.i }}", "timeout": "2m", **step}  # fmt: skip
    return runbook("restart-via-awx", "NodeDown", {"awx": spec})


def config(tmp_path: Path, awx: AwxStandIn, books: list[dict[str, Any]], **extra: Any) -> Path:
    return write_config(
        tmp_path, books, engines={"awx": {"url": awx.base, "token": AWX_TOKEN,
                                            "poll_interval_s": 0.2}}, **extra,
    )  # fmt: skip


def launched(server: Server, execution_id: str, awx: AwxStandIn, timeout: float = 30) -> None:
    """Until the job is launched and its handle is on the step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        step = server.api(f"/executions/{execution_id}")["steps"][0]
        if awx.launches and (step.get("detail") or {}).get("url"):
            return
        time.sleep(0.1)
    raise AssertionError("the job was not launched")


@pytest.mark.parametrize("stop", ["kill", "terminate"])
def test_a_restart_mid_job_re_attaches_and_never_launches_twice(
    tmp_path: Path, awx: AwxStandIn, servers: list[Server], stop: str
) -> None:
    awx.template("restart-node", seconds=6)
    path = config(tmp_path, awx, [awx_runbook()])
    servers.append(start_server(path, name="first"))
    answer = servers[0].alertmanager(alert_group(1))
    assert answer.status_code == 202, answer.text
    (execution_id,) = answer.json()["executions"]
    launched(servers[0], execution_id, awx)
    if stop == "kill":
        servers[0].kill()
    else:
        assert servers[0].terminate(timeout=30) in (0, -signal.SIGTERM)
    servers.append(start_server(path, name="second"))
    (execution,) = servers[1].wait_all_final([execution_id], timeout=60)
    assert execution["status"] == "succeeded", execution
    assert len(awx.launches) == 1
    assert execution["steps"][0]["detail"]["engine_status"] == "successful"
    assert awx.violations == []


# Timed (200 launches within 60 s, the local step within 15 s): 42 s alone, and under the
# parallel part of the suite it once launched 153.
@pytest.mark.serial
def test_two_hundred_remote_jobs_with_two_workers_and_a_local_step_meanwhile(
    tmp_path: Path, awx: AwxStandIn, servers: list[Server]
) -> None:
    awx.template("restart-node", seconds=20)
    dest = tmp_path / "local.json"
    local = runbook("local-fix", "DiskFull",
                    ansible_step("write.yml", message="m", host="h", dest=str(dest)))  # fmt: skip
    server = start_server(config(tmp_path, awx, [awx_runbook(), local], workers=2))
    servers.append(server)
    answer = server.alertmanager(alert_group(200))
    assert answer.status_code == 202, answer.text
    ids = answer.json()["executions"]
    assert len(ids) == 200
    began = time.monotonic()
    deadline = began + 60
    while len(awx.launches) < 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(awx.launches) == 200
    # Every job is running on the engine; the two workers are free for local work.
    asked = time.monotonic()
    local_answer = server.alertmanager(alert("DiskFull", fingerprint="disk-1"))
    (local_id,) = local_answer.json()["executions"]
    (local_run,) = server.wait_all_final([local_id], timeout=60)
    local_s = time.monotonic() - asked
    assert local_run["status"] == "succeeded", local_run
    still_waiting = sum(server.api(f"/executions/{i}")["status"] == "running" for i in ids[-20:])
    assert still_waiting > 0, "the remote jobs should still be running on the engine"
    assert local_s < 15, f"the local step waited {local_s:.1f}s behind the remote jobs"
    executions = server.wait_all_final(ids, timeout=120)
    assert {e["status"] for e in executions} == {"succeeded"}
    assert len(awx.launches) == 200
    assert awx.violations == []
