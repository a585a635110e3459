"""Several `remediator serve` replicas on one database (a SQLite file on one machine, or
PostgreSQL), under bursts of webhooks, kill -9 and SIGTERM: every webhook answered 202
ends in exactly one recorded outcome, no remediation runs twice, the concurrency key
holds across replicas, and a storm makes one remediation and one escalation."""

from __future__ import annotations

import signal
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.instant import instant_step
from tests.support.servers import Server
from tests.support.service import Recorder, alert, runbook

pytestmark = [pytest.mark.server]


def appender(directory: Path, pause: float, gate: Path | None = None) -> dict[str, Any]:
    """Appends a line to a file named after the incident, one line per run (once `gate`
    exists, if given). The instant kind: what is tested here is the replicas, not Ansible
    (whose kill -9 and SIGTERM are tests/e2e/test_tether.py's and the batched tests')."""
    return instant_step(f"{directory}/{{{{ incident.fingerprint }}}}", pause=pause,
                        gate=str(gate) if gate else None)  # fmt: skip


def deliver(payload: dict[str, Any], servers: list[Server], first: int) -> httpx.Response | None:
    """As a platform does: send, and on a dead endpoint send the same delivery elsewhere."""
    for server in servers[first:] + servers[:first]:
        try:
            return server.alertmanager(payload)
        except httpx.TransportError:
            continue
    return None


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_kill_9_of_a_replica_mid_burst_loses_nothing(
    replicas: Any, recorder: Recorder, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    # Steps wait for the gate, which opens after the kill: A is surely mid-step then.
    gate = tmp_path / "gate"
    a, b = replicas([runbook("burst", "Burst", appender(out, pause=0, gate=gate),
                             escalate=["webhook"])],
                    escalation={"webhook": {"url": recorder.url}})  # fmt: skip
    payloads = [alert("Burst", fingerprint=f"fp{n:03d}") for n in range(20)]
    answers: dict[str, httpx.Response | None] = {}

    def on_a_running() -> bool:
        running = b.api("/executions", status="running")
        return any(str(a.pid) in (b.api(f"/executions/{e['id']}")["worker"] or "")
                   for e in running)  # fmt: skip

    with ThreadPoolExecutor(4) as pool:
        first = [pool.submit(deliver, p, [a, b], n % 2) for n, p in enumerate(payloads[:10])]
        for fp, future in zip(
            (p["alerts"][0]["fingerprint"] for p in payloads), first, strict=False
        ):
            answers[fp] = future.result()
        deadline = time.monotonic() + 60
        while not on_a_running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert on_a_running(), "replica A never ran a step"
        a.kill()  # mid-burst and mid-step
        gate.touch()
        rest = [pool.submit(deliver, p, [a, b], n % 2) for n, p in enumerate(payloads[10:])]
        for p, future in zip(payloads[10:], rest, strict=True):
            answers[p["alerts"][0]["fingerprint"]] = future.result()

    accepted = {
        fp: r.json() for fp, r in answers.items() if r is not None and r.status_code in (200, 202)
    }
    assert len(accepted) == 20, {fp: r for fp, r in answers.items() if fp not in accepted}
    every = b.api("/executions", runbook="burst", limit=1000)
    by_fp: dict[str, list[dict[str, Any]]] = {}
    for e in every:
        by_fp.setdefault(e["fingerprint"], []).append(e)
    assert sorted(by_fp) == sorted(accepted), "every accepted webhook has its execution"
    assert all(len(v) == 1 for v in by_fp.values()), "and only one"
    final = b.wait_all_final([v[0]["id"] for v in by_fp.values()])
    statuses = {e["status"] for e in final}
    assert statuses <= {"succeeded", "interrupted"}, statuses
    for execution in final:
        fingerprint = execution["incident"]["fingerprint"]
        if execution["status"] == "succeeded":
            assert lines(out / fingerprint) == 1, fingerprint
        else:  # A died in this step: not repeated, and a human hears about it
            assert lines(out / fingerprint) <= 1, fingerprint
            assert [e["reason"] for e in execution["escalations"]] == ["interrupted"]
    assert "interrupted" in statuses


def test_concurrency_key_holds_across_replicas(replicas: Any, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    a, b = replicas([runbook("serial", "Serial", appender(out, pause=0.5),
                             concurrency="{{ incident.labels.service }}")])  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(
            lambda n: deliver(alert("Serial", fingerprint=f"s{n}", service="web"), [a, b], n % 2),
            range(4),
        ))  # fmt: skip
    ids = [r.json()["executions"][0] for r in answers if r is not None]
    final = sorted(a.wait_all_final(ids), key=lambda e: e["started_at"])
    assert len(final) == 4 and {e["status"] for e in final} == {"succeeded"}
    for earlier, later in zip(final, final[1:], strict=False):
        assert datetime.fromisoformat(earlier["finished_at"]) <= datetime.fromisoformat(
            later["started_at"]
        ), "two executions for one key ran at the same time"


def test_storm_across_replicas_makes_one_remediation(
    replicas: Any, recorder: Recorder, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    a, b = replicas([runbook("storm", "Storm", appender(out, pause=2), cooldown="10m",
                             escalate=["webhook"])],
                    escalation={"webhook": {"url": recorder.url}})  # fmt: skip
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(
            lambda n: deliver(alert("Storm", instance=f"i{n}", fingerprint="one"), [a, b], n % 2),
            range(80),
        ))  # fmt: skip
    assert all(r is not None and r.status_code == 202 for r in answers)
    bodies = [r.json() for r in answers if r is not None]
    created = {i for body in bodies for i in body["executions"]}
    attached_to = {i for body in bodies for i in body["attached"]}
    executions = a.wait_all_final(sorted(created | attached_to))
    runs = [e for e in executions if e["status"] != "refused"]
    assert len(runs) == 1 and runs[0]["status"] == "succeeded"
    assert lines(out / "one") == 1
    refused = [e for e in executions if e["status"] == "refused"]
    assert sum(len(e["escalations"]) for e in refused) == (1 if refused else 0)
    after = a.alertmanager(alert("Storm", instance="late", fingerprint="one")).json()
    (late,) = a.wait_all_final(after["executions"] or after["attached"])
    assert late["status"] == "refused" and late["guard"] == "cooldown"
    total = [e for e in a.api("/executions", runbook="storm") if e["status"] == "refused"]
    assert len(total) == 1  # the storm's later alerts folded into one refusal
    assert sum(len(a.api(f"/executions/{e['id']}")["escalations"]) for e in total) == 1


def test_sigterm_during_a_burst_loses_nothing(replicas: Any, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    (a,) = replicas([runbook("burst", "Burst", appender(out, pause=1))], count=1,
                    shutdown_grace_s=20)  # fmt: skip
    answers = [a.alertmanager(alert("Burst", fingerprint=f"t{n}")) for n in range(8)]
    ids = [r.json()["executions"][0] for r in answers]
    assert a.terminate() in (0, -signal.SIGTERM)  # running steps finish; queued ones wait
    (b,) = replicas([runbook("burst", "Burst", appender(out, pause=1))], count=1)
    final = b.wait_all_final(ids)
    assert {e["status"] for e in final} == {"succeeded"}
    assert all(lines(out / f"t{n}") == 1 for n in range(8))
