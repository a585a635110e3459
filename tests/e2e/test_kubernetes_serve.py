"""kill -9 of `remediator serve` while a kubernetes step waits for its rollout (the
Deployment patched and the step's handle written, in that order, as every remote step's
launch): the service started again re-attaches to the same rollout by the handle and
waits for it to complete, without patching the Deployment again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.servers import start_server
from tests.support.service import alert, runbook, write_config
from tests.support.standins.kube import kube_stand_in

pytestmark = [pytest.mark.server]


def test_kill_9_mid_wait_re_attaches_without_patching_again(tmp_path: Path) -> None:
    (tmp_path / "kube").mkdir()
    with kube_stand_in(tmp_path / "kube", step_s=1.0) as kube:  # a slow rollout: 6+ s
        kube.deployment("shop", "web", "nginx:1.25")
        kube.settled("shop", "web")
        kube.set_image("shop", "web", "nginx:1.26-bad")
        kube.settled("shop", "web")
        patches_before = len([c for c in kube.calls if c[0] == "PATCH"])
        step = {"kubernetes": {"namespace": "shop", "name": "web", "action": "rollout_undo",
                               "timeout": "2m"}}  # fmt: skip
        config = write_config(
            tmp_path, [runbook("undo-web", "WebBroken", step)],
            kubernetes_clusters={"stand-in": {"kubeconfig": str(kube.kubeconfig),
                                              "poll_interval_s": 0.2}},
        )  # fmt: skip
        first = start_server(config, name="first")
        execution_id = first.alertmanager(alert("WebBroken")).json()["executions"][0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            seen = first.api(f"/executions/{execution_id}")
            # Patched, and its handle written: from here any replica follows it.
            launched = (seen["steps"][0]["detail"] or {}).get("summary", "")
            if launched.startswith("launched on its engine") and len(
                [c for c in kube.calls if c[0] == "PATCH"]) > patches_before:  # fmt: skip
                break
            time.sleep(0.05)
        assert seen["status"] == "running", seen
        first.kill()  # patched, and waiting for the rollout
        second = start_server(config, name="second")
        try:
            [done] = second.wait_all_final([execution_id], timeout=90)
        finally:
            second.close()
        assert done["status"] == "succeeded", done
        assert done["steps"][0]["attempts"] == 1
        assert done["steps"][0]["outputs"]["revision"] == 3
        patches = [c for c in kube.calls if c[0] == "PATCH"]
        assert len(patches) == patches_before + 1  # the undo, once
        assert kube.violations == []
