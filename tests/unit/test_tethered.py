"""The tether a step's command runs under answers what the command did, however fast it
ended: its exit code, or the signal it died of; a child that exits at once (before the
tether waits) and an ignored SIGCHLD inherited from the service never leave it waiting."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from app.tether import tethered

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's prctl")


def run(*command: str, ignore_sigchld: bool = False) -> int:
    def before() -> None:
        if ignore_sigchld:
            signal.signal(signal.SIGCHLD, signal.SIG_IGN)

    done = subprocess.run(tethered(command, "TERM", "tree", 1.0), timeout=20, check=False,
                          preexec_fn=before)  # noqa: PLW1509 - the test's own process  # fmt: skip
    return done.returncode


def test_a_command_that_ends_at_once_is_answered_every_time() -> None:
    assert [run("true") for _ in range(20)] == [0] * 20


def test_the_exit_code_and_the_killing_signal_come_through() -> None:
    assert run("sh", "-c", "exit 7") == 7
    assert run("sh", "-c", "kill -9 $$") == -signal.SIGKILL
    assert run("sh", "-c", "kill -TERM $$") == -signal.SIGTERM


def test_an_ignored_sigchld_inherited_from_the_service_is_not_a_hang() -> None:
    assert run("sh", "-c", "exit 3", ignore_sigchld=True) == 3
