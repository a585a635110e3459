"""How the service runs and stops the processes of a step, in one place.

The environment: a step's processes get the minimum, never the service's own. The
service holds API tokens, webhook secrets and database passwords in its environment. A
playbook or terraform run gets `PATH`, `HOME`, `LANG`, `LC_*` and `TMPDIR` (so tools
find themselves, their config and their locale), the names the config lists in
`step_env` (cloud credentials a team means its playbooks to use, say), and what the
executor itself sets. A secret reaches a step only when a runbook passes it on purpose.

Stopping: a command that must be stopped politely (`run_interruptible`) gets SIGINT at
its deadline or when cancelled, SIGKILL only after a grace period. Terraform (like most
tools that hold locks) treats SIGINT as "finish the resource in flight, write state,
release the lock, exit"; SIGKILL would leave the lock held and the state unwritten. The
command runs in its own session so that, once it has exited, anything it left running (a
provisioner's `sleep`, a plugin) can be killed as a group. An Ansible run is stopped as
a family (`terminate_run`): every process that inherited its marker, and their children.
Both run under the tether (`app.tether`), so they stop when the service dies, too.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import psutil

from app.tether import tethered

Stopped = Literal["timed_out", "cancelled"]
POLL_S = 0.2
BASE = ("PATH", "HOME", "LANG", "TMPDIR")
# Every process of one Ansible run carries it (its value: the run's private directory).
RUN_MARKER = "REMEDIATOR_ANSIBLE_RUN"


@dataclass(frozen=True)
class Finished:
    rc: int
    output: str
    stopped: Stopped | None = None  # why it was interrupted, if it was
    killed: bool = False  # it ignored SIGINT for the whole grace period
    stderr: str = ""  # only when asked to keep it apart from `output`


def run_interruptible(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    deadline: float,
    cancelled: Callable[[], bool],
    grace_s: float,
    stderr_apart: bool = False,
    live: Callable[[str], None] | None = None,
) -> Finished:
    """Run `argv` to its end or until `deadline` (time.monotonic) or `cancelled()`.
    `output` is stdout and stderr interleaved, or stdout alone with `stderr_apart` (for
    machine-readable output that warnings must not corrupt). `live` is handed `output`
    as it is read."""
    process = subprocess.Popen(
        # Interrupted the same way when the service dies (kill -9 included).
        tethered(argv, "INT", "child", grace_s),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr_apart else subprocess.STDOUT,
        start_new_session=True,
    )
    chunks: list[bytes] = []
    errors: list[bytes] = []
    readers = [
        threading.Thread(target=_drain, args=(stream, into, said), daemon=True)
        for stream, into, said in ((process.stdout, chunks, live), (process.stderr, errors, None))
        if stream is not None
    ]
    for reader in readers:
        reader.start()
    stopped: Stopped | None = None
    killed, grace_end = False, 0.0
    try:
        while process.poll() is None:
            if stopped is None and (cancelled() or time.monotonic() >= deadline):
                stopped = "cancelled" if cancelled() else "timed_out"
                process.send_signal(signal.SIGINT)
                grace_end = time.monotonic() + grace_s
            elif stopped is not None and time.monotonic() >= grace_end:
                _kill_group(process.pid)
                killed = True
                process.wait()
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(POLL_S)
    finally:
        # Whatever it started and left behind goes with it.
        _kill_group(process.pid)
        if process.poll() is None:
            process.wait()
        for reader in readers:
            reader.join(timeout=5)
    output, stderr = (b"".join(c).decode("utf-8", errors="replace") for c in (chunks, errors))
    return Finished(process.returncode, output, stopped, killed, stderr)


def _drain(stream: IO[bytes], chunks: list[bytes], live: Callable[[str], None] | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    with stream:
        for chunk in iter(lambda: os.read(stream.fileno(), 65536), b""):
            chunks.append(chunk)
            if live is not None:
                live(decoder.decode(chunk))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def step_environment(passed: Iterable[str], **own: str) -> dict[str, str]:
    """The base names and `passed` that are set here, the `LC_*` ones, then `own`."""
    names = set(BASE) | set(passed)
    env = {
        name: value for name, value in os.environ.items() if name in names or name.startswith("LC_")
    }
    return env | own


def without_inherited(env: Mapping[str, str], kept: Iterable[str]) -> dict[str, str]:
    """`env` less what it took unchanged from this process's environment, except `kept`:
    for tools (ansible-runner) that start from a copy of `os.environ` and add their own."""
    keep = set(kept)
    return {
        name: value
        for name, value in env.items()
        if name in keep or name.startswith("LC_") or os.environ.get(name) != value
    }


def terminate_run(marker: str, grace_s: float = 5.0) -> None:
    """Stop every process of one run: all that inherited its RUN_MARKER environment value
    (ansible-playbook, its setsid workers, their modules' children), and their children."""
    own = [
        proc
        for proc in psutil.process_iter(["environ"])
        if (proc.info["environ"] or {}).get(RUN_MARKER) == marker
    ]
    family: dict[int, psutil.Process] = {}
    for proc in own:
        family[proc.pid] = proc
        try:
            family.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    procs = list(family.values())
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    # Poll rather than psutil.wait_procs: waiting would reap ansible-runner's own child
    # and break its pexpect loop.
    end = time.monotonic() + grace_s
    alive = procs
    while alive and time.monotonic() < end:
        time.sleep(0.1)
        alive = [proc for proc in alive if _running(proc)]
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False
