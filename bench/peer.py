"""remediator against its peer, Event-Driven Ansible's `ansible-rulebook` (1.3.2 with its
built-in `eda.builtin.webhook` source), on this machine, in the same run, with the same
load generator, the same playbook and the same kill -9 test; reported side by side and
as ratios.

- ingest: alerts that match no rule/runbook, at 500/s and at saturation (32 keep-alive
  connections). remediator verifies each Standard Webhooks signature and commits each
  alert before answering 202 (SQLite, synchronous=FULL); the peer checks nothing and
  keeps events in memory (answers 200 once queued).
- latency: POST of an alert that a rule/runbook remediates → the playbook's task has run
  (the line it appends appears), median of 5 after one warm-up.
- kill -9: 20 remediating alerts at once; once all are acknowledged, 2.5 s later, SIGKILL
  the service (and the playbook it was running), start it again, and count what ran:
  once, twice, not at all but reported (an `interrupted` execution, escalated), or lost
  (acknowledged, never run, nobody told).

The peer is installed on first use into $REMEDIATOR_PEER_DIR (default
~/.cache/remediator-bench/peer) from PyPI, with the project's ansible-core; it needs
Java 17+ (Debian: openjdk-17-jre-headless).

    .venv/bin/python bench/peer.py [--seconds 5] [--phases ingest,latency,kill]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import hmac
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import partial
from importlib.metadata import version
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.store.models import FINAL  # noqa: E402
from bench.loadgen import Figures, load, signed  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import API_TOKEN, ansible_step, free_port, runbook, write_config  # noqa: E402

RULEBOOK_VERSION = "1.3.2"
PEER_DIR = Path(os.environ.get("REMEDIATOR_PEER_DIR", Path.home() / ".cache/remediator-bench/peer"))
REMEDIATE = "BenchRemediate"  # the alert name a rule/runbook acts on
PLAYBOOK = """\
- name: trivial remediation
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Note this run
      ansible.builtin.shell: "echo {{ seq | quote }} >> {{ runs | quote }}"
"""
RULEBOOK = """\
- name: remediate on webhook
  hosts: all
  sources:
    - eda.builtin.webhook:
        host: 127.0.0.1
        port: {port}{hmac}
  rules:
    - name: bench remediation
      condition: event.payload.labels.alertname == "{alertname}"
      action:
        run_playbook:
          name: {playbook}
          extra_vars:
            runs: {runs}
            seq: "{{{{ event.payload.labels.seq }}}}"
"""


def alert(alertname: str, sequence: int) -> dict[str, object]:
    return {
        "title": f"bench {sequence}", "severity": "low", "fingerprint": f"bench-{sequence}",
        "labels": {"alertname": alertname, "seq": str(sequence)},
    }  # fmt: skip


def signed_alert(alertname: str, sequence: int) -> tuple[bytes, dict[str, str]]:
    return signed(alert(alertname, sequence))


def plain_alert(alertname: str, sequence: int) -> tuple[bytes, dict[str, str]]:
    body, _ = signed_alert(alertname, sequence)
    return body, {"content-type": "application/json"}


PEER_HMAC_SECRET = "bench-peer-secret"
# The peer's own optional check: HMAC-SHA256 of the body, hex, in X-Hub-Signature-256.
PEER_HMAC = f"""
        hmac_secret: {PEER_HMAC_SECRET}
        hmac_algo: sha256
        hmac_header: x-hub-signature-256
        hmac_format: hex"""


def hub_signed_alert(alertname: str, sequence: int) -> tuple[bytes, dict[str, str]]:
    body, headers = plain_alert(alertname, sequence)
    digest = hmac.new(PEER_HMAC_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return body, {**headers, "x-hub-signature-256": f"sha256={digest}"}


# ---------------------------------------------------------------- the two services


def peer_python() -> Path:
    """The peer's virtualenv, installed on first use."""
    java = shutil.which("java")
    if java is None:
        raise SystemExit("ansible-rulebook needs Java 17+: apt-get install openjdk-17-jre-headless")
    binary = PEER_DIR / "bin" / "ansible-rulebook"
    if not binary.exists():
        print(f"installing ansible-rulebook {RULEBOOK_VERSION} into {PEER_DIR} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_DIR)], check=True)
        subprocess.run(
            [str(PEER_DIR / "bin" / "pip"), "install", "-q",
             f"ansible-rulebook=={RULEBOOK_VERSION}", f"ansible-core=={version('ansible-core')}"],
            check=True,
        )  # fmt: skip
    return binary


@dataclass
class Service:
    """One service under test: where to POST, how to sign, how to stop it."""

    name: str
    url: str
    body: Callable[[str, int], tuple[bytes, dict[str, str]]]
    ok: int
    process: subprocess.Popen[bytes]

    def post(self, alertname: str, sequence: int) -> int:
        body, headers = self.body(alertname, sequence)
        return self.client.post(self.url, content=body, headers=headers).status_code

    @functools.cached_property
    def client(self) -> httpx.Client:
        """One client for every post, shared by the sending threads: a new one per post
        (its TLS context, its pool) made the sender, not the service, the bottleneck."""
        return httpx.Client(timeout=60, limits=httpx.Limits(max_connections=32))

    def kill_tree(self) -> None:
        """SIGKILL the service, then whatever it had started (a playbook mid-run)."""
        children = psutil.Process(self.process.pid).children(recursive=True)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        for child in children:
            try:
                child.kill()
            except psutil.NoSuchProcess:
                pass


@contextmanager
def remediator(work: Path) -> Iterator[Service]:
    (work / "playbooks").mkdir(exist_ok=True)
    (work / "playbooks" / "trivial.yml").write_text(PLAYBOOK)
    step = ansible_step("trivial.yml", seq="{{ incident.labels.seq }}", runs=str(work / "runs"))
    config = write_config(
        work, [runbook("bench", REMEDIATE, step)], playbooks_dir=str(work / "playbooks"),
        poll_interval_s=1.0, lease_s=30,
    )  # fmt: skip
    server = start_server(config, name=f"remediator-{time.monotonic_ns()}")
    url = f"{server.base}/webhooks/generic"
    try:
        yield Service("remediator", url, signed_alert, 202, server.proc)
    finally:
        if server.proc.poll() is None:
            server.terminate()


@contextmanager
def rulebook(work: Path, check_hmac: bool = False) -> Iterator[Service]:
    """ansible-rulebook; `check_hmac`: with its optional signature check turned on."""
    port = free_port()
    (work / "trivial.yml").write_text(PLAYBOOK)
    (work / "inventory.ini").write_text(
        "localhost ansible_connection=local"
        ' ansible_python_interpreter="{{ ansible_playbook_python }}"\n'
    )
    text = RULEBOOK.format(
        port=port,
        hmac=PEER_HMAC if check_hmac else "",
        alertname=REMEDIATE,
        playbook=work / "trivial.yml",
        runs=work / "runs",
    )  # fmt: skip
    body = hub_signed_alert if check_hmac else plain_alert
    with running_rulebook(work, text, work / "inventory.ini", port, body) as service:
        yield service


@contextmanager
def running_rulebook(
    work: Path,
    text: str,
    inventory: Path,
    port: int,
    body: Callable[[str, int], tuple[bytes, dict[str, str]]],
) -> Iterator[Service]:
    """ansible-rulebook on the rulebook `text` (listening on `port`) and `inventory`."""
    binary = peer_python()
    (work / "rulebook.yml").write_text(text)
    env = {**os.environ, "PATH": f"{binary.parent}:{os.environ['PATH']}"}
    with (work / f"rulebook-{time.monotonic_ns()}.log").open("wb") as log:
        process = subprocess.Popen(
            [str(binary), "-r", str(work / "rulebook.yml"), "-i", str(inventory)],
            cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}/endpoint"
    try:
        _wait_listening(port, process)
        yield Service("ansible-rulebook", url, body, 200, process)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def _wait_listening(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(900):
        if process.poll() is not None:
            raise SystemExit("ansible-rulebook exited at start; see its log in the work dir")
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit("ansible-rulebook never listened")


def runs(work: Path) -> Counter[int]:
    path = work / "runs"
    lines = path.read_text().split() if path.exists() else []
    return Counter(int(line) for line in lines)


def wait_runs(work: Path, sequence: int, timeout: float = 60) -> float | None:
    """When the playbook's line for `sequence` appeared (perf_counter), or None."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if runs(work)[sequence]:
            return time.perf_counter()
        time.sleep(0.005)
    return None


# ---------------------------------------------------------------- phases

SERVICES: dict[str, Callable[[Path], AbstractContextManager[Service]]] = {
    "remediator": remediator,
    "ansible-rulebook": rulebook,
}


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process and its descendants have used so far."""
    total = 0.0
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def phase_ingest(seconds: float) -> tuple[dict[str, dict[str, Figures]], dict[str, float]]:
    """Each service's figures at 500/s and at saturation, and the CPU-seconds it spent
    per 1,000 webhooks answered at saturation (a ratio that holds on a noisy machine,
    where the rate does not)."""
    out: dict[str, dict[str, Figures]] = {}
    cpu: dict[str, float] = {}
    with_signed_peer: dict[str, Callable[[Path], AbstractContextManager[Service]]] = {
        **SERVICES,
        "ansible-rulebook+hmac": partial(rulebook, check_hmac=True),
    }
    for name, start in with_signed_peer.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-peer-{name}-"))
        with start(work) as service:
            body = partial(service.body, "BenchNoRunbook")
            load(service.url, body, None, 1.0)  # warm-up
            steady = Figures.of(*load(service.url, body, 500.0, seconds), ok=service.ok)
            before = cpu_seconds(service.process.pid)
            results, took = load(service.url, body, None, seconds)
            used = cpu_seconds(service.process.pid) - before
            out[name] = {"500/s": steady, "saturation": Figures.of(results, took, ok=service.ok)}
            cpu[name] = used / max(out[name]["saturation"].ok, 1) * 1000
        shutil.rmtree(work, ignore_errors=True)
    return out, cpu


def phase_latency(rounds: int = 5) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, start in SERVICES.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-peer-{name}-"))
        with start(work) as service:
            took = []
            for sequence in range(rounds + 1):
                sent = time.perf_counter()
                status = service.post(REMEDIATE, sequence)
                ran = wait_runs(work, sequence)
                if status != service.ok or ran is None:
                    raise SystemExit(f"{name}: alert {sequence} answered {status}, ran: {ran}")
                took.append(ran - sent)
            out[name] = statistics.median(took[1:])  # the first pays for warm caches
        shutil.rmtree(work, ignore_errors=True)
    return out


@dataclass(frozen=True)
class KillOutcome:
    answered_s: float  # when the last of the burst was answered: a stalled caller waits
    acknowledged: int
    once: int
    twice: int
    reported: int  # not run, but its execution says `interrupted` (and is escalated)
    lost: int


def phase_kill(count: int = 20) -> dict[str, KillOutcome]:
    out: dict[str, KillOutcome] = {}
    for name, start in SERVICES.items():
        work = Path(tempfile.mkdtemp(prefix=f"bench-peer-{name}-"))
        with start(work) as service:
            sent = time.perf_counter()
            statuses = asyncio.run(_post_all(service, count))
            answered = time.perf_counter() - sent
            time.sleep(2.5)
            service.kill_tree()
        acknowledged = [i for i, status in enumerate(statuses) if status == service.ok]
        interrupted: set[int] = set()
        with start(work) as again:
            if name == "remediator":
                interrupted = _settle(again.url.removesuffix("/webhooks/generic"))
            else:
                _quiet(work)
        ran = runs(work)
        out[name] = KillOutcome(
            answered,
            len(acknowledged),
            sum(1 for i in acknowledged if ran[i] == 1),
            sum(1 for i in acknowledged if ran[i] > 1),
            sum(1 for i in acknowledged if not ran[i] and i in interrupted),
            sum(1 for i in acknowledged if not ran[i] and i not in interrupted),
        )
        shutil.rmtree(work, ignore_errors=True)
    return out


async def _post_all(service: Service, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=60) as client:

        async def one(sequence: int) -> int:
            body, headers = service.body(REMEDIATE, sequence)
            try:
                return (await client.post(service.url, content=body, headers=headers)).status_code
            except httpx.TransportError:
                return 0

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def _settle(base: str, timeout: float = 120) -> set[int]:
    """After the restart: wait until every execution is final; the alerts (by sequence)
    whose execution ended `interrupted`."""
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executions = httpx.get(f"{base}/api/executions", headers=headers, timeout=30,
                               params={"limit": "100"}).json()  # fmt: skip
        if all(e["status"] in FINAL for e in executions):
            return {
                int(e["fingerprint"].removeprefix("bench-")) for e in executions
                if e["status"] == "interrupted"
            }  # fmt: skip
        time.sleep(0.5)
    raise SystemExit(f"remediator: executions not final after {timeout}s")


def _quiet(work: Path, quiet_s: float = 5.0, timeout: float = 45.0) -> None:
    """The peer keeps nothing across a restart; give it time to prove it."""
    deadline = time.monotonic() + timeout
    seen, since = sum(runs(work).values()), time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - since < quiet_s:
        now = sum(runs(work).values())
        if now != seen:
            seen, since = now, time.monotonic()
        time.sleep(0.2)


# ---------------------------------------------------------------- report


def ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x" if theirs else "-"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--phases", default="ingest,latency,kill")
    args = parser.parse_args()
    phases = args.phases.split(",")
    peer_python()
    print(f"{'':<44}{'remediator':>14}{'ansible-rulebook':>18}{'ratio':>9}")
    if "ingest" in phases:
        ingest, cpu = phase_ingest(args.seconds)
        ours, theirs = ingest["remediator"], ingest["ansible-rulebook"]
        for label in ("500/s", "saturation"):
            a, b = ours[label], theirs[label]
            print(f"{'ingest ' + label + ', answered per s':<44}{a.per_s:>14.0f}{b.per_s:>18.0f}"
                  f"{ratio(a.per_s, b.per_s):>9}")  # fmt: skip
            print(f"{'ingest ' + label + ', p50 / p99 ms':<44}{f'{a.p50:.1f} / {a.p99:.1f}':>14}"
                  f"{f'{b.p50:.1f} / {b.p99:.1f}':>18}")  # fmt: skip
        a, b = ours["saturation"], ingest["ansible-rulebook+hmac"]["saturation"]
        print(f"{'ingest saturation, peer checking its HMAC':<44}{a.per_s:>14.0f}"
              f"{b.per_s:>18.0f}{ratio(a.per_s, b.per_s):>9}")  # fmt: skip
        a_cpu, b_cpu = cpu["remediator"], cpu["ansible-rulebook"]
        print(f"{'CPU-s per 1,000 webhooks (ratio: peer/ours)':<44}{a_cpu:>14.2f}{b_cpu:>18.2f}"
              f"{ratio(b_cpu, a_cpu):>9}")  # fmt: skip
        print(f"{'  (remediator: durable + signed; peer: in memory)':<44}")
    if "latency" in phases:
        latency = phase_latency()
        ours_s, theirs_s = latency["remediator"], latency["ansible-rulebook"]
        print(f"{'POST -> playbook task ran, median s':<44}{ours_s:>14.3f}{theirs_s:>18.3f}"
              f"{ratio(ours_s, theirs_s):>9}")  # fmt: skip
    if "kill" in phases:
        kill = phase_kill()
        ours_s, theirs_s = kill["remediator"].answered_s, kill["ansible-rulebook"].answered_s
        print(f"{'20 remediating alerts at once: all answered, s':<44}{ours_s:>14.2f}"
              f"{theirs_s:>18.2f}")  # fmt: skip
        for field in ("acknowledged", "once", "twice", "reported", "lost"):
            a_, b_ = getattr(kill["remediator"], field), getattr(kill["ansible-rulebook"], field)
            print(f"{'kill -9 of 20: ' + field:<44}{a_:>14}{b_:>18}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
