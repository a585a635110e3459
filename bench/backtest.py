"""`remediator backtest` over a month of history: N stored incidents (default 100,000,
Alertmanager-shaped, 150 alert names over 200 hosts, arriving over 30 days) of which
those that 100 runbooks matched have their execution and rendered step stored, as the
service stores them. Timed through the real command, on SQLite: the same runbooks (no
change), a candidate set with 10 runbooks changed (widened, narrowed, rendered
differently, rate limited), and the candidate set against an `events export` file.

    .venv/bin/python bench/backtest.py [--incidents 100000] [--runbooks 100]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.incident import Incident  # noqa: E402
from app.runbooks.loader import load_runbooks  # noqa: E402
from app.runbooks.models import Runbook  # noqa: E402
from app.runbooks.plan import plan  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.models import Base  # noqa: E402
from tests.support.service import write_config  # noqa: E402

ALERTS = 150


def runbooks(count: int, changed: int = 0) -> list[dict[str, Any]]:
    """Runbook i handles alert i on any host; the first `changed` are changed in turn:
    widened (alert i+count too), narrowed (critical only), rendered differently, rate
    limited."""
    made = []
    for i in range(count):
        conditions: list[dict[str, Any]] = [{"field": "labels.alertname", "equals": f"Alert{i:03}"}]
        extra_vars = {"host": "{{ incident.labels.instance }}", "dest": "/tmp/remediator-bench"}
        step = {"ansible": {"playbook": "write.yml", "timeout": "60s", "extra_vars": extra_vars}}
        match: dict[str, Any] = {"any": conditions}
        runbook: dict[str, Any] = {"name": f"fix-{i:03}", "match": match, "steps": [step]}
        if i < changed:
            way = i % 4
            if way == 0 and i + count < ALERTS:
                conditions.append({"field": "labels.alertname", "equals": f"Alert{i + count:03}"})
            elif way == 1:
                match["severity"] = ["critical"]
            elif way == 2:
                extra_vars["host"] = "all-{{ incident.labels.job }}"
            else:
                runbook["max_runs"] = {"count": 5, "per": "1h"}
        made.append(runbook)
    return made


def write_history(db: Database, live: list[Runbook], incidents: int, now: datetime) -> int:
    """Returns how many executions were written."""
    rng = random.Random(7)
    start = now - timedelta(days=30)
    step_s = (30 * 86400 - 60) / incidents
    executions = 0
    for first in range(0, incidents, 5000):
        rows: dict[str, list[dict[str, Any]]] = {
            "events": [], "incidents": [], "executions": [], "steps": [],
        }  # fmt: skip
        for n in range(first, min(first + 5000, incidents)):
            at = start + timedelta(seconds=n * step_s)
            alert_n, host = rng.randrange(ALERTS), f"host-{rng.randrange(200):03}"
            name = f"Alert{alert_n:03}"
            severity = rng.choice(["critical", "high", "medium"])
            labels = {"alertname": name, "instance": host, "job": f"job-{alert_n % 7}",
                      "severity": severity}  # fmt: skip
            event_id, incident_id = str(uuid.uuid4()), str(uuid.uuid4())
            fingerprint = f"{alert_n:03}{host}{n}"
            rows["events"].append({"id": event_id, "source": "alertmanager",
                                   "delivery_id": event_id, "event_type": "alert.firing",
                                   "incident_count": 1, "received_at": at})  # fmt: skip
            raw = {"status": "firing", "labels": labels, "fingerprint": fingerprint,
                   "annotations": {"summary": f"{name} on {host}"}}  # fmt: skip
            rows["incidents"].append({
                "id": incident_id, "event_id": event_id, "source": "alertmanager",
                "fingerprint": fingerprint, "status": "firing", "occurrence": "",
                "received_at": at,
                "data": {"event_type": "alert.firing", "title": f"{name} on {host}",
                         "severity": severity, "labels": labels, "phase": "opened",
                         "annotations": raw["annotations"], "raw": raw},
            })  # fmt: skip
            if alert_n < len(live):
                execution_id = str(uuid.uuid4())
                executions += 1
                rows["executions"].append({
                    "id": execution_id, "runbook": f"fix-{alert_n:03}",
                    "runbook_spec": {"match": {"on": ["opened"]}}, "incident_id": incident_id,
                    "trigger": "webhook", "status": "succeeded", "mode": "auto",
                    "guard_key": f"fingerprint:{fingerprint}",
                    "incident_key": f"alertmanager:{fingerprint}", "escalate_to": [],
                    "created_at": at, "finished_at": at + timedelta(seconds=20),
                    "cancel_requested": False, "recoveries": 0, "escalated": False,
                })  # fmt: skip
                document = {"source": "alertmanager", "delivery_id": event_id,
                            "fingerprint": fingerprint, "status": "firing",
                            "received_at": at, **rows["incidents"][-1]["data"]}  # fmt: skip
                # As the service renders and stores it.
                (step,) = plan(live[alert_n], Incident.model_validate(document)).steps
                spec = json.loads(json.dumps(step.spec))
                rows["steps"].append({"execution_id": execution_id, "position": 0,
                                      "kind": "ansible", "spec": spec, "idempotent": False,
                                      "status": "succeeded", "attempts": 1, "rc": 0,
                                      "output_tail": ""})  # fmt: skip
        with db.write() as session:
            for name, table_rows in rows.items():
                if table_rows:
                    session.execute(insert(Base.metadata.tables[name]), table_rows)
    return executions


def timed(*args: str) -> tuple[float, float, str]:
    """Wall and CPU seconds of one `remediator` command, and its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    ran = subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True,
                         text=True, check=False, cwd=ROOT)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if ran.returncode not in (0, 1):
        raise SystemExit(f"remediator {' '.join(args)} failed:\n{ran.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, ran.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--runbooks", type=int, default=100)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backtest-"))
    try:
        config = write_config(work, runbooks(args.runbooks))
        candidate = work / "candidate"
        candidate.mkdir()
        (candidate / "runbooks.yml").write_text(yaml.safe_dump(runbooks(args.runbooks, 10)))
        db = Database(f"sqlite:///{work / 'remediator.db'}")
        db.upgrade()
        started = time.perf_counter()
        live = [item.runbook for item in load_runbooks([work / "runbooks"])]
        executions = write_history(db, live, args.incidents, datetime.now(UTC))
        db.close()
        print(f"{args.incidents:,} incidents ({executions:,} with an execution) written in "
              f"{time.perf_counter() - started:.1f} s; {args.runbooks} runbooks")  # fmt: skip
        base = ["--config", str(config), "backtest", "--since", "31d", "--format", "json"]
        events = work / "events.jsonl"
        wall, cpu, out = timed("--config", str(config), "events", "export", "--since", "31d")
        events.write_text(out)
        print(f"events export: {wall:.1f} s ({cpu:.1f} s CPU), "
              f"{events.stat().st_size / 2**20:.0f} MiB")  # fmt: skip
        print("| backtest | incidents | changed | wall s | CPU s | incidents/s |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, extra in (
            ("same runbooks, database", []),
            ("10 changed, database", ["--runbooks", str(candidate)]),
            ("10 changed, export file", ["--runbooks", str(candidate), "--events", str(events)]),
        ):
            wall, cpu, out = timed(*base, *extra)
            report = json.loads(out)
            print(f"| {label} | {report['incidents']:,} | {report['changed']:,} | {wall:.1f} "
                  f"| {cpu:.1f} | {report['incidents'] / wall:,.0f} |")  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
