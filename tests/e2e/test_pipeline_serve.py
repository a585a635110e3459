"""CI pipelines through a running `remediator serve`: killed (-9) while a GitHub or GitLab
run is going, the restarted service re-attaches to that run and ends with its
conclusion; the engine saw exactly one dispatch."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import Server, start_server
from tests.support.service import alert, runbook, write_config
from tests.support.standins.pipeline import (
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    PipelineStandIn,
    pipeline_stand_in,
)

STEPS = {
    "github": {"repo": "acme/web", "workflow": "rollback.yml", "ref": "main",
               "inputs": {"service": "{{ incident.labels.service }}"}},
    "gitlab": {"project": "acme/web", "ref": "main",
               "variables": {"SERVICE": "{{ incident.labels.service }}"}},
}  # fmt: skip


@pytest.mark.parametrize("engine", sorted(STEPS))
def test_a_killed_service_re_attaches_to_the_run_it_dispatched(
    tmp_path: Path, servers: list[Server], engine: str
) -> None:
    with pipeline_stand_in(seconds=6) as ci:
        path = config(tmp_path, ci, engine)
        servers.append(start_server(path, name="first"))
        answer = servers[0].alertmanager(alert("WebErrors", service="checkout"))
        (execution_id,) = answer.json()["executions"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            step = servers[0].api(f"/executions/{execution_id}")["steps"][0]
            if (step.get("detail") or {}).get("url"):
                break
            time.sleep(0.1)
        servers[0].kill()
        servers.append(start_server(path, name="second"))
        (execution,) = servers[1].wait_all_final([execution_id], timeout=60)
        assert execution["status"] == "succeeded", execution
        assert len(ci.dispatches) == 1
        assert ci.violations == []


def config(tmp_path: Path, ci: PipelineStandIn, engine: str) -> Path:
    token = GITHUB_TOKEN if engine == "github" else GITLAB_TOKEN
    step: dict[str, Any] = {"pipeline": {engine: STEPS[engine], "timeout": "2m"}}
    return write_config(
        tmp_path, [runbook("rollback", "WebErrors", step)],
        engines={engine: {"url": ci.base, "token": token, "poll_interval_s": 0.2}},
    )  # fmt: skip
