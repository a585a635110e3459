"""An HCP Terraform revert through a running `remediator serve`, killed (-9) while the
run plans: the restarted service re-attaches to that run, applies it past the guard, and
the workspace saw exactly one run."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.servers import Server, start_server
from tests.support.service import alert, runbook, write_config
from tests.support.standins.tfc import TFC_TOKEN, tfc_stand_in


def test_a_killed_service_re_attaches_to_the_run_and_applies_it_once(
    tmp_path: Path, servers: list[Server]
) -> None:
    with tfc_stand_in(plan_seconds=5) as tfc:
        step = {"terraform_cloud": {"organization": "acme", "workspace": "web-prod",
                                    "revert_to": "previous"}}  # fmt: skip
        path = write_config(
            tmp_path, [runbook("revert-web", "WebReleaseErrors", step)],
            engines={"terraform_cloud": {"url": tfc.base, "token": TFC_TOKEN,
                                           "poll_interval_s": 0.2}},
        )  # fmt: skip
        servers.append(start_server(path, name="first"))
        answer = servers[0].alertmanager(alert("WebReleaseErrors"))
        (execution_id,) = answer.json()["executions"]
        deadline = time.monotonic() + 30
        while not tfc.runs and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the handle is written with the launch
        servers[0].kill()
        servers.append(start_server(path, name="second"))
        (execution,) = servers[1].wait_all_final([execution_id], timeout=60)
        assert execution["status"] == "succeeded", execution
        assert len(tfc.runs) == 1
        assert [action for _, action in tfc.actions] == ["apply"]
        assert tfc.violations == []
