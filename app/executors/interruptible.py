"""Run a command that must be stopped politely: SIGINT at its deadline or when cancelled,
SIGKILL only after a grace period.

Terraform (like most tools that hold locks) treats SIGINT as "finish the resource in
flight, write state, release the lock, exit"; SIGKILL would leave the lock held and the
state unwritten. The command runs in its own session so that, once it has exited,
anything it left running (a provisioner's `sleep`, a plugin) can be killed as a group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from app.executors.tethered import tethered

Stopped = Literal["timed_out", "cancelled"]
POLL_S = 0.2


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
) -> Finished:
    """Run `argv` to its end or until `deadline` (time.monotonic) or `cancelled()`.
    `output` is stdout and stderr interleaved, or stdout alone with `stderr_apart` (for
    machine-readable output that warnings must not corrupt)."""
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
        threading.Thread(target=_drain, args=(stream, into), daemon=True)
        for stream, into in ((process.stdout, chunks), (process.stderr, errors))
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


def _drain(stream: IO[bytes], chunks: list[bytes]) -> None:
    with stream:
        chunks.extend(iter(lambda: os.read(stream.fileno(), 65536), b""))


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
