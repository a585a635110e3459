"""Draining a fleet-wide incident: N distinct incidents (each its own host, each the same
runbook) sent in one burst to remediator and to its peer ansible-rulebook, in the same
run, with the same trivial playbook; each incident's run writes its own sequence number.

Printed, for each service: how long the burst took to send; how long until the last
remediation was done; remediations/s; the service's peak RSS (the service and the
playbook processes it started, sampled every 0.2 s); and what ran once, twice or not at
all. remediator runs with its default worker pool (two per core); the peer with its
default (`execution_strategy: sequential`).

    .venv/bin/python bench/drain.py [--incidents 100,500] [--services remediator,ansible-rulebook]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.peer import REMEDIATE, Service, remediator, rulebook, runs  # noqa: E402

SERVICES: dict[str, Callable[[Path], AbstractContextManager[Service]]] = {
    "remediator": remediator,
    "ansible-rulebook": rulebook,
}


class PeakRss:
    """The largest RSS of a process and its children, sampled in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.done.wait(0.2):
            try:
                tree = [self.process, *self.process.children(recursive=True)]
                self.peak = max(self.peak, sum(_rss(p) for p in tree))
            except psutil.NoSuchProcess:
                return

    def stop(self) -> int:
        self.done.set()
        self.thread.join(timeout=5)
        return self.peak


def _rss(process: psutil.Process) -> int:
    try:
        return int(process.memory_info().rss)
    except psutil.NoSuchProcess:
        return 0


def drain(name: str, incidents: int, timeout: float) -> str:
    with tempfile.TemporaryDirectory() as tmp, SERVICES[name](Path(tmp)) as service:
        work = Path(tmp)
        rss = PeakRss(service.process.pid)
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: service.post(REMEDIATE, i), range(incidents)))
        sent_s = time.perf_counter() - began
        refused = sum(1 for status in answers if status != service.ok)
        deadline = began + timeout
        while time.perf_counter() < deadline and len(runs(work)) < incidents - refused:
            time.sleep(0.05)
        done_s = time.perf_counter() - began
        peak = rss.stop()
        counted = runs(work)
        twice = sum(1 for n in counted.values() if n > 1)
        missing = incidents - len(counted)
        return (
            f"{name:17} {incidents:5} incidents: sent in {sent_s:5.1f}s, last done after "
            f"{done_s:6.1f}s, {len(counted) / done_s:6.2f} remediations/s, peak RSS "
            f"{peak / 2**20:6.0f} MiB; refused {refused}, twice {twice}, not run {missing}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--incidents", default="100,500")
    parser.add_argument("--services", default="remediator,ansible-rulebook")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    for count in (int(n) for n in args.incidents.split(",")):
        for name in args.services.split(","):
            print(drain(name, count, args.timeout), flush=True)


if __name__ == "__main__":
    main()
