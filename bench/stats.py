"""GET /api/stats over a large history, on SQLite, through a real `remediator serve`:
N executions (default 100,000, each with its event and incident, a third escalated or
told, a third approved) created over two weeks; the call the stats page makes (the last
7 days, and all 14) and one runbook's, each timed over several loads, and a /metrics
scrape (its time-to-remediate histogram reads every succeeded execution).

    .venv/bin/python bench/stats.py [--executions 100000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.store.db import Database  # noqa: E402
from tests.support.history import make_history, write_history  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import API_TOKEN, write_config  # noqa: E402


def timed(client: httpx.Client, path: str, params: dict[str, str], rounds: int) -> list[float]:
    took = []
    for _ in range(rounds + 1):
        started = time.perf_counter()
        answer = client.get(path, params=params)
        took.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
    return took[1:]  # the first warms the caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-stats-"))
    try:
        config = write_config(work, [], workers=1)
        db = Database(f"sqlite:///{work / 'remediator.db'}")
        db.upgrade()
        now = datetime.now(UTC)
        started = time.perf_counter()
        write_history(db, make_history(args.executions, now=now))
        db.close()
        print(f"{args.executions:,} executions written in {time.perf_counter() - started:.1f} s")
        server = start_server(config, name="bench-stats")
        headers = {"authorization": f"Bearer {API_TOKEN}"}
        week = {"since": (now - timedelta(days=7)).isoformat()}
        fortnight = {"since": (now - timedelta(days=15)).isoformat()}
        calls = [
            ("/api/stats (7 days)", "/api/stats", week),
            ("/api/stats (14 days)", "/api/stats", fortnight),
            ("/api/stats?runbook= (14 days)", "/api/stats", fortnight | {"runbook": "restart-web"}),
            ("/metrics", "/metrics", {}),
        ]
        try:
            with httpx.Client(base_url=server.base, headers=headers, timeout=60) as client:
                print(f"{'call':<32} {'median ms':>10} {'max ms':>8}")
                for label, path, params in calls:
                    took = timed(client, path, params, args.rounds)
                    print(f"{label:<32} {statistics.median(took):>10.1f} {max(took):>8.1f}")
        finally:
            server.terminate()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
