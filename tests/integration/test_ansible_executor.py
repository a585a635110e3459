"""The Ansible executor with the real ansible-playbook."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
import pytest

from app.steps.ansible.executor import AnsibleExecutor
from app.steps.base import StepInput
from tests.support.service import TEST_PLAYBOOKS

pytestmark = pytest.mark.ansible


def sleepers(marker: str) -> list[psutil.Process]:
    return [
        p for p in psutil.process_iter(["cmdline"]) if marker in " ".join(p.info["cmdline"] or [])
    ]


def step(playbook: str, timeout: float, **extra: object) -> StepInput:
    return StepInput("e", 0, 1, {"playbook": playbook, "extra_vars": extra}, timeout)


def test_timeout_leaves_no_process_behind() -> None:
    seconds = 4242 + int(time.time()) % 1000  # a command line no other test uses
    result = AnsibleExecutor(TEST_PLAYBOOKS).run(
        step("hang.yml", 2, seconds=seconds), cancelled=lambda: False
    )
    assert result.status == "timed_out" and "within 2s" in (result.error or "")
    time.sleep(0.5)
    assert sleepers(f"sleep {seconds}") == []


def test_cancel_stops_a_running_playbook() -> None:
    flag = threading.Event()
    threading.Timer(1.5, flag.set).start()
    started = time.monotonic()
    result = AnsibleExecutor(TEST_PLAYBOOKS).run(step("hang.yml", 300), cancelled=flag.is_set)
    assert result.status == "cancelled" and time.monotonic() - started < 15


def test_no_hosts_matched_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "nohosts.yml").write_text(
        "- hosts: nowhere\n  gather_facts: false\n  tasks: [{ansible.builtin.ping: {}}]\n"
    )
    result = AnsibleExecutor(tmp_path).run(step("nohosts.yml", 60), cancelled=lambda: False)
    assert result.status == "failed" and "matched no hosts" in (result.error or "")


def test_hostile_extra_vars_arrive_as_text(tmp_path: Path) -> None:
    dest = tmp_path / "o.json"
    hostile = "{{ lookup('pipe', 'touch " + str(tmp_path / "pwned") + "') }}"
    result = AnsibleExecutor(TEST_PLAYBOOKS).run(
        step("write.yml", 60, message=hostile, host="h", dest=str(dest)), cancelled=lambda: False
    )
    assert result.status == "succeeded", result.output_tail
    assert hostile in dest.read_text() and not (tmp_path / "pwned").exists()
