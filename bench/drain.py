"""Draining a fleet-wide incident: N distinct incidents (each for its own host of one
inventory, each the same runbook) sent in one burst; each incident's run writes its own
host's sequence number. Compared in the same run: remediator with the runbook batched
(`batch: {window: 2s, max: 200}`: one ansible-playbook over many incidents' hosts),
the same runbook unbatched (one ansible-playbook per incident), and the peer
ansible-rulebook running the same playbook per event.

Printed, for each: how long the burst took to send; how long until the last
remediation was done; remediations/s; the service's peak RSS (the service and the
playbook processes it started, sampled every 0.2 s); and what ran once, twice or not at
all. remediator runs with its default worker pool (two per core); the peer with its
default (`execution_strategy: sequential`).

    .venv/bin/python bench/drain.py [--incidents 100,500] \
        [--services batched,unbatched,ansible-rulebook]
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import signed  # noqa: E402
from bench.peer import Service, running_rulebook, runs  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import free_port, runbook, write_config  # noqa: E402

ALERT = "DiskFull"
# The same playbook for all: remediator narrows `hosts` with the step's limit, the peer
# (which has no limit) with the `target` extra var. `seq` is each host's own variable.
PLAYBOOK = """\
- name: fleet remediation
  hosts: "{{{{ target | default('all') }}}}"
  gather_facts: false
  tasks:
    - name: Note this host's remediation
      ansible.builtin.{module}: "echo {{{{ seq | quote }}}} >> {{{{ runs | quote }}}}"
"""
# `shell` runs a Python module on each host (AnsiballZ: ~0.45 s of CPU per host here,
# batched or not); `raw` runs the command with no module, leaving what an orchestrator
# adds: ansible-playbook's start-up per run, the queue, the claims.
MODULES = ("shell", "raw")
RULEBOOK = """\
- name: remediate on webhook
  hosts: all
  sources:
    - eda.builtin.webhook:
        host: 127.0.0.1
        port: {port}
  rules:
    - name: fleet remediation
      condition: event.payload.labels.alertname == "{alertname}"
      action:
        run_playbook:
          name: {playbook}
          extra_vars:
            runs: {runs}
            target: "{{{{ event.payload.labels.host }}}}"
"""


def fleet(work: Path, hosts: int, module: str) -> Path:
    """The playbook and an inventory of `hosts` local hosts, each with its own `seq`."""
    (work / "fleet.yml").write_text(PLAYBOOK.format(module=module))
    inventory = work / "fleet.ini"
    inventory.write_text("".join(
        f"host-{i} seq={i} ansible_connection=local"
        ' ansible_python_interpreter="{{ ansible_playbook_python }}"\n'
        for i in range(hosts)
    ))  # fmt: skip
    return inventory


def alert(sequence: int) -> dict[str, object]:
    return {
        "title": f"disk full on host-{sequence}", "severity": "high",
        "fingerprint": f"disk-{sequence}",
        "labels": {"alertname": ALERT, "host": f"host-{sequence}"},
    }  # fmt: skip


def remediator(
    work: Path, hosts: int, module: str, *, batched: bool
) -> AbstractContextManager[Service]:
    @contextmanager
    def started() -> Iterator[Service]:
        fleet(work, hosts, module)
        step = {"ansible": {
            "playbook": "fleet.yml", "inventory": "fleet.ini", "timeout": "30m",
            "limit": "{{ incident.labels.host }}", "extra_vars": {"runs": str(work / "runs")},
        }}  # fmt: skip
        extra: dict[str, Any] = {"batch": {"window": "2s", "max": 200}} if batched else {}
        config = write_config(
            work, [runbook("fleet", ALERT, step, **extra)], playbooks_dir=str(work),
            poll_interval_s=1.0, lease_s=30,
        )  # fmt: skip
        server = start_server(config, name=f"remediator-{time.monotonic_ns()}")
        try:
            yield Service("remediator", f"{server.base}/webhooks/generic",
                          lambda _, n: signed(alert(n)), 202, server.proc)  # fmt: skip
        finally:
            if server.proc.poll() is None:
                server.terminate()

    return started()


@contextmanager
def rulebook(work: Path, hosts: int, module: str) -> Iterator[Service]:
    port = free_port()
    text = RULEBOOK.format(port=port, alertname=ALERT, playbook=work / "fleet.yml",
                           runs=work / "runs")  # fmt: skip

    def plain(_: str, sequence: int) -> tuple[bytes, dict[str, str]]:
        body, _headers = signed(alert(sequence))
        return body, {"content-type": "application/json"}

    with running_rulebook(work, text, fleet(work, hosts, module), port, plain) as service:
        yield service


SERVICES: dict[str, Callable[[Path, int, str], AbstractContextManager[Service]]] = {
    "batched": functools.partial(remediator, batched=True),
    "unbatched": functools.partial(remediator, batched=False),
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


def drain(name: str, incidents: int, module: str, timeout: float) -> str:
    with (
        tempfile.TemporaryDirectory() as tmp,
        SERVICES[name](Path(tmp), incidents, module) as service,
    ):
        work = Path(tmp)
        rss = PeakRss(service.process.pid)
        began = time.perf_counter()
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: service.post(ALERT, i), range(incidents)))
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
    parser.add_argument("--services", default="batched,unbatched,ansible-rulebook")
    parser.add_argument("--modules", default="shell,raw", help=f"of {', '.join(MODULES)}")
    parser.add_argument("--timeout", type=float, default=1800.0)
    args = parser.parse_args()
    for module in args.modules.split(","):
        for count in (int(n) for n in args.incidents.split(",")):
            print(f"-- {count} incidents, the playbook's task as `{module}`", flush=True)
            for name in args.services.split(","):
                print(drain(name, count, module, args.timeout), flush=True)


if __name__ == "__main__":
    main()
