"""kill -9 of `remediator serve` between a runbook's diagnostics and its action: the
replica that recovers it runs neither the completed diagnostic again nor its post, and
decides the action from the outputs already stored."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.instant import instant_step
from tests.support.service import Recorder, alert

pytestmark = [pytest.mark.server]


def test_kill_9_after_the_diagnosis_runs_neither_it_nor_its_post_again(
    replicas: Any, recorder: Recorder, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    book = {
        "name": "look-then-act",
        "match": {"all": [{"field": "labels.alertname", "equals": "PrimaryDown"}]},
        "diagnose": {"steps": [{"id": "lag", **instant_step(
            tmp_path / "looked", outputs={"lag_s": 12})}], "post_to": ["webhook"]},
        "steps": [{"id": "act", "when": "steps.lag.outputs.lag_s < 30", "idempotent": True,
                   **instant_step(tmp_path / "acted", gate=str(gate))}],
    }  # fmt: skip
    config = {"escalation": {"webhook": {"url": recorder.url}}}
    [first] = replicas([book], count=1, **config)
    execution_id = first.alertmanager(alert("PrimaryDown")).json()["executions"][0]

    def acting_and_told() -> bool:
        seen = first.api(f"/executions/{execution_id}")
        return seen["steps"][1]["status"] == "running" and all(
            e["status"] == "delivered" for e in seen["escalations"]) and bool(seen["escalations"])  # fmt: skip

    deadline = time.monotonic() + 60
    while not acting_and_told() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert acting_and_told(), first.api(f"/executions/{execution_id}")
    first.kill()  # the diagnosis done and posted, the action mid-step
    gate.touch()
    [second] = replicas([book], count=1, **config)
    [done] = second.wait_all_final([execution_id])
    assert done["status"] == "succeeded", done
    assert (tmp_path / "looked").read_text() == "run\n"  # the diagnostic ran once
    assert (tmp_path / "acted").read_text() == "run\n"  # the killed attempt never wrote
    assert [r.json()["reason"] for r in recorder.requests] == ["diagnosed"]
    assert [e["reason"] for e in done["escalations"]] == ["diagnosed"]
    assert [a["action"] for a in done["actions"]] == ["rerun"]
