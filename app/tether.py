"""A step's command, tethered to the service that started it: when the service dies
(kill -9 included), everything the command started is stopped, so no playbook goes on to
its next task, and no orphan is still running when recovery starts the step again on
another replica.

`python -m app.tether SIGNAL WHOM GRACE -- COMMAND...` runs COMMAND as its
child and waits for it, passing on SIGINT, SIGTERM and SIGHUP (how the service stops a
step) and answering with the child's exit status. Linux tells it when the thread of the
service that started it is gone (`PR_SET_PDEATHSIG`); it is the subreaper of its tree
(`PR_SET_CHILD_SUBREAPER`), so descendants that left their parent's session (Ansible's
setsid workers) or lost their parent are still its own. It then sends SIGNAL to WHOM,
the way the service stops that tool on a timeout: TERM to the whole `tree` for Ansible
(its workers do not hear it from the play); INT to the `child` alone for Terraform, which
stops its providers and provisioners itself, writes state and unlocks (a provider
interrupted behind its back leaves the lock held). Whatever is left after GRACE seconds
gets SIGKILL.

It imports nothing of the service: it is a process of its own, started per step.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Literal, cast

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
# Sent by the kernel when the service's thread is gone; nothing else sends it here.
PARENT_GONE = signal.SIGUSR1
PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
WAITED = {signal.SIGCHLD, PARENT_GONE, *PASSED_ON}
WAKE_S = 1.0


Whom = Literal["tree", "child"]


def tethered(command: Sequence[str], stop_with: str, whom: Whom, grace_s: float) -> list[str]:
    """`command` run under the tether (for argv lists the step kinds build)."""
    if not sys.platform.startswith("linux"):
        return list(command)  # the tether is Linux's; elsewhere the command runs as it is
    return [sys.executable, "-m", __name__, stop_with, whom, f"{grace_s:g}", "--", *command]


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option})")


def _descendants() -> list[int]:
    """Every process whose parent chain leads here (the subreaper keeps them so)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = [], [os.getpid()]
    while frontier:
        children = parents.get(frontier.pop(), [])
        found += children
        frontier += children
    return found


def _signal_all(sig: int) -> None:
    for pid in _descendants():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap(child: int) -> int | None:
    """Reap every exited descendant; answers the child's wait status once it is one."""
    status = None
    while True:
        try:
            pid, code = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return status
        if pid == 0:
            return status
        if pid == child:
            status = code


def _stop_tree(child: int, stop_with: int, whom: Whom, grace_s: float) -> int:
    """Ask WHOM to stop, give it the grace (the child to end, for `child`: what it leaves
    behind, a provisioner's `sleep` say, is not waited for), then kill what is left."""
    if whom == "tree":
        _signal_all(stop_with)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, stop_with)
    end = time.monotonic() + grace_s
    status = _reap(child)
    while (_descendants() if whom == "tree" else status is None) and time.monotonic() < end:
        time.sleep(0.1)
        reaped = _reap(child)  # every exited one, so that none lingers as a zombie
        status = status if status is not None else reaped
    _signal_all(signal.SIGKILL)
    time.sleep(0.1)
    reaped = _reap(child)
    status = status if status is not None else reaped
    return status if status is not None else signal.SIGKILL


def run(stop_with: int, whom: Whom, grace_s: float, command: Sequence[str]) -> int:
    """Answers the child's wait status."""
    service = os.getppid()
    # An ignored SIGCHLD (inherited through exec) would reap children unseen: no status.
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_BLOCK, WAITED)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, PARENT_GONE)
    # Kept referenced until the end: a Popen dropped at once would reap a child that
    # already exited in its __del__, and its status would be lost to us.
    process = subprocess.Popen(
        list(command),
        preexec_fn=lambda: signal.pthread_sigmask(signal.SIG_SETMASK, set()),  # noqa: PLW1509 - single-threaded
    )
    child = process.pid
    # The service may have died before the tether was tied.
    gone = os.getppid() != service
    while not gone:
        received = signal.sigtimedwait(WAITED, WAKE_S)
        if received is None:
            gone = os.getppid() != service
        elif received.si_signo == PARENT_GONE:
            gone = True
        elif received.si_signo in PASSED_ON:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, received.si_signo)
        status = _reap(child)
        if status is not None:
            process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by it
            return status
    status = _stop_tree(child, stop_with, whom, grace_s)
    process.returncode = os.waitstatus_to_exitcode(status)
    return status


def main(argv: Sequence[str]) -> None:
    stop_with, whom, grace, separator, *command = argv
    assert separator == "--" and command, "usage: tethered SIGNAL tree|child GRACE -- COMMAND..."
    assert whom in ("tree", "child"), f"whom is tree or child, not {whom!r}"
    status = run(signal.Signals[f"SIG{stop_with}"], cast(Whom, whom), float(grace), command)
    if os.WIFSIGNALED(status):
        # Die the way the child did, so the service sees the same as without a tether.
        died_of = os.WTERMSIG(status)
        if died_of not in (signal.SIGKILL, signal.SIGSTOP):  # those have no handler to reset
            signal.signal(died_of, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.kill(os.getpid(), died_of)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main(sys.argv[1:])
