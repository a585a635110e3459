"""An alert storm: 10,000 signed webhooks for one incident (one fingerprint, each a new
delivery) within a minute, against a real `remediator serve` on SQLite whose runbook for
it takes a few seconds to run and has a cooldown.

Printed: webhooks sent and answered 202, events stored (must equal the 202s: nothing
lost), executions created (one; a storm must not start a remediation per alert),
incidents attached to it, refusals by the cooldown, and the server's peak RSS, sampled
every 50 ms.

    .venv/bin/python bench/storm.py [--webhooks 10000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.store.db import Database  # noqa: E402
from app.store.models import Attachment, Event, Execution  # noqa: E402
from bench.loadgen import load, signed  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import ansible_step, runbook, write_config  # noqa: E402

STORM = {
    "title": "orders-db connection storm",
    "severity": "critical",
    "fingerprint": "orders-db-storm",
    "labels": {"alertname": "Storm", "instance": "orders-db-1"},
}


def storm_alert(_sequence: int) -> tuple[bytes, dict[str, str]]:
    """The same incident every time, each a new signed delivery."""
    return signed(STORM)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--webhooks", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="remediator-storm-"))
    step = ansible_step("append.yml", dest=str(work / "runs"), pause="5")
    config = write_config(
        work, [runbook("storm", "Storm", step, cooldown="10m")], poll_interval_s=1.0
    )
    server = start_server(config, name="storm")
    process = psutil.Process(server.pid)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        # Open loop: webhook i is sent at i/rate s, whatever the answers.
        results, took = load(
            f"{server.base}/webhooks/generic", storm_alert, args.webhooks / args.seconds,
            args.seconds,
        )  # fmt: skip
        statuses = [status for status, _ in results]
        time.sleep(8)  # the one remediation finishes
    finally:
        done.set()
        server.terminate()
    db = Database(f"sqlite:///{work / 'remediator.db'}")
    with db.read() as session:
        events = session.query(Event).count()
        executions = session.query(Execution).all()
        attached = session.query(Attachment).count()
        summary = Counter(f"{e.status}" + (f" ({e.guard})" if e.guard else "") for e in executions)
    db.close()
    runs = len((work / "runs").read_text().splitlines()) if (work / "runs").exists() else 0
    accepted = statuses.count(202)
    print(f"webhooks sent {len(statuses)} in {took:.1f} s ({len(statuses) / took:.0f}/s), "
          f"answered 202: {accepted}, other: {len(statuses) - accepted}")  # fmt: skip
    print(f"events stored {events}: {'nothing lost' if events == accepted else 'LOST'}")
    print(f"executions {len(executions)}: {dict(summary)}; incidents attached to an open "
          f"one {attached}; playbook runs {runs}")  # fmt: skip
    print(f"server peak RSS {peak / 2**20:.0f} MiB")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
