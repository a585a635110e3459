"""kill -9 of a running `remediator serve` mid-step: the step's processes die with it
(they are tethered to the service), so a playbook never goes on to its next task after
the service died, and no orphan is left to run beside the step's recovery; a terraform
apply is interrupted as a timeout would (SIGINT) and leaves its state unlocked."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support.servers import Server, start_server
from tests.support.service import TEST_PLAYBOOKS, alert, ansible_step, runbook, write_config
from tests.support.terraform_repo import (
    TERRAFORM,
    hanging_version,
    requires_terraform,
    sleepers,
    terraform_repo,
)

pytestmark = pytest.mark.server


def wait_for(condition: Callable[[], bool], seconds: float, state: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert condition(), f"not within {seconds}s: {state()}"


def under(marker: str) -> list[psutil.Process]:
    """Processes whose command line names `marker` (the playbook's own files)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if any(marker in part for part in process.info["cmdline"] or []):
            found.append(process)
    return found


def running_in(directory: Path) -> list[psutil.Process]:
    """Live processes (not zombies) working in `directory`."""
    found = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and process.cwd() == str(directory):
                found.append(process)
        except psutil.Error:
            continue
    return found


@pytest.mark.ansible
def test_kill_9_of_the_service_stops_the_playbook_before_its_next_task(tmp_path: Path) -> None:
    first, late, second = tmp_path / "first", tmp_path / "late", tmp_path / "second"
    step = ansible_step("two-tasks.yml", first=str(first), late=str(late), second=str(second),
                        seconds="6")  # fmt: skip
    config = write_config(tmp_path, [runbook("two", "Two", step)],
                          playbooks_dir=str(TEST_PLAYBOOKS))  # fmt: skip
    server: Server = start_server(config)
    try:
        assert server.alertmanager(alert("Two")).status_code == 202
        wait_for(first.exists, 60)
        playbook = [
            p for p in under("two-tasks.yml") if "ansible-playbook" in " ".join(p.cmdline())
        ]
        assert playbook, "the playbook runs"
        server.kill()
        # The long task would have ended at 6 s and the second task run at once.
        time.sleep(10)
        assert not late.exists(), "the task went on after the service died"
        assert not second.exists(), "the playbook went on after the service died"
        assert under(str(first)) == [] and under("two-tasks.yml") == []
    finally:
        server.close()


@requires_terraform
def test_kill_9_of_the_service_interrupts_an_apply_and_leaves_the_state_unlocked(
    tmp_path: Path,
) -> None:
    repo = terraform_repo(tmp_path)
    hanging_version(repo, 177)
    service = tmp_path / "service"
    service.mkdir()
    revert = runbook("web-revert", "WebReleaseErrors",
                     {"terraform": {"workdir": "web", "revert_to": "git:hangs", "timeout": "300s"}})  # fmt: skip
    server = start_server(write_config(service, [revert], terraform_dir=str(repo.terraform_dir),
                                       terraform_bin=TERRAFORM))  # fmt: skip
    try:
        assert server.alertmanager(alert("WebReleaseErrors", service="web")).status_code == 202
        wait_for(lambda: sleepers(177) != [], 120)
        server.kill()
        wait_for(lambda: sleepers(177) == [] and not repo.locked(), 60,
                 lambda: f"sleepers {sleepers(177)}, locked {repo.locked()}, "
                 f"terraform {running_in(repo.workdir)}")  # fmt: skip
        wait_for(lambda: not running_in(repo.workdir), 30)
        assert repo.terraform("plan", "-lock-timeout=0s", "-input=false").returncode == 0
    finally:
        server.close()
