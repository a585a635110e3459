"""Time to match one incident against 10, 100, 1,000 and 10,000 runbooks.

The runbooks are shaped like real ones: each pins an alert name (`all: labels.alertname
equals ...`) and most add a severity, service or `any` condition; one in fifty pins
nothing the index can use (a regular expression on the title) and is checked every time.
The incident is a grouped Alertmanager alert with a 2 KB payload. Each figure is the
median of many matches, next to a full scan (every runbook's conditions checked) for
scale.

    .venv/bin/python bench/matching.py
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.incident import Incident  # noqa: E402
from app.runbooks.matcher import Matcher, mismatch  # noqa: E402
from app.runbooks.models import Runbook, RunbookFile  # noqa: E402

SIZES = (10, 100, 1_000, 10_000)


def runbook(index: int) -> RunbookFile:
    match: dict[str, Any] = {"all": [{"field": "labels.alertname", "equals": f"Alert{index}"}]}
    if index % 50 == 49:
        match = {"all": [{"field": "title", "matches": f"(?i)service {index} down"}]}
    elif index % 3 == 0:
        match["severity"] = ["critical", "high"]
    elif index % 3 == 1:
        match["any"] = [{"field": "labels.team", "in": ["web", "api"]},
                        {"field": "raw.commonLabels.env", "equals": "prod"}]  # fmt: skip
    step = {"playbook": "p.yml", "extra_vars": {"host": "{{ incident.labels.instance }}"}}
    spec = {"name": f"runbook-{index}", "match": match, "steps": [{"ansible": step}]}
    return RunbookFile(runbook=Runbook.model_validate(spec), file="bench.yml", line=index)


def incident(alertname: str) -> Incident:
    labels = {"alertname": alertname, "instance": "web-7", "team": "web", "severity": "critical"}
    raw = {"commonLabels": {**labels, "env": "prod"}, "alerts": [{"labels": labels,
           "annotations": {"summary": "x" * 1500}}]}  # fmt: skip
    return Incident(source="alertmanager", delivery_id="d", event_type="alert.firing",
                    status="firing", title="web-7 is burning", severity="critical",
                    service="web", labels=labels, fingerprint="f",
                    received_at=datetime.now(UTC), raw=raw)  # fmt: skip


def median_us(action: Any, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def main() -> int:
    print(f"python {sys.version.split()[0]}; median time to match one incident")
    print(f"{'runbooks':>9}  {'indexed':>10}  {'full scan':>10}  matched")
    for size in SIZES:
        loaded = [runbook(i) for i in range(size)]
        matcher = Matcher(loaded)
        arriving = incident(f"Alert{size // 2 - size // 2 % 3}")  # one that really matches
        context = arriving.template_context()
        found = [item.runbook.name for item in matcher.match(arriving)]
        rounds = 2000 if size <= 1000 else 500
        indexed = median_us(lambda m=matcher, a=arriving: m.match(a), rounds)
        scan = median_us(
            lambda items=loaded, a=arriving, c=context: [
                i for i in items if mismatch(i.runbook.match, a, c) is None
            ],
            max(20, rounds // 20),
        )
        print(f"{size:>9}  {indexed:>8.1f}µs  {scan:>8.1f}µs  {found}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
