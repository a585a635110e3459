"""A restart of the service while an escalation is being retried resumes it, and the
target receives it exactly once (the same id on every attempt)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.servers import start_server
from tests.support.service import FAILING_STEP, PLAYBOOKS, Recorder, alert, write_config

pytestmark = [pytest.mark.server, pytest.mark.ansible]


def test_restart_while_retrying_delivers_exactly_once(tmp_path: Path, recorder: Recorder) -> None:
    recorder.replies = [503] * 1000  # down until the test says otherwise
    runbooks = [
        {
            "name": "fails",
            "match": {"source": "alertmanager"},
            "steps": [FAILING_STEP],
            "escalate": ["webhook"],
        }
    ]
    config = write_config(tmp_path, runbooks, playbooks_dir=str(PLAYBOOKS), escalation_max_backoff_s=2,
                          escalation={"webhook": {"url": recorder.url}})  # fmt: skip
    first = start_server(config, name="first")
    try:
        execution_id = first.alertmanager(alert("Fail")).json()["executions"][0]
        deadline = time.monotonic() + 60
        while [e["attempts"] for e in first.api(f"/executions/{execution_id}")["escalations"]] < [
            2
        ]:
            assert time.monotonic() < deadline, "the escalation was never retried"
            time.sleep(0.05)
        first.kill()  # recorded as failed twice: between retries, not mid-delivery
    finally:
        first.close()
    served_503 = len(recorder.requests)
    recorder.replies = []  # the target is back

    second = start_server(config, name="second")
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            [escalation] = second.api(f"/executions/{execution_id}")["escalations"]
            if escalation["status"] != "pending":
                break
            time.sleep(0.2)
        assert escalation["status"] == "delivered", escalation
        time.sleep(1)  # nothing more arrives
        delivered = recorder.requests[served_503:]
        assert len(delivered) == 1 and escalation["attempts"] == served_503 + 1
        assert {r.headers["webhook-id"] for r in recorder.requests} == {escalation["id"]}
    finally:
        second.terminate()
