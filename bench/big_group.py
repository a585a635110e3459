"""One signed Alertmanager body carrying thousands of alerts (a fleet-wide outage, or a
hostile sender with a valid token), against a real `remediator serve` on SQLite, while
other senders keep sending signed webhooks at a steady rate.

Printed: the body's size and how long its answer took (the first time, re-sent, and
amid the other senders); how much the database grew (the
SQLite file after a checkpoint, before and after) against the body's size; and the other
senders' p50/p99 during the big body against a baseline run of the same rate without it.
The issue's targets: answered in under 1 s, growth under 10x the body, p99 unaffected.

    .venv/bin/python bench/big_group.py [--alerts 3000] [--rate 100] [--seconds 6]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.loadgen import Figures, load, signed_body  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import AM_TOKEN, alert_group, ansible_step, runbook, write_config  # noqa: E402


def send(base: str, body: bytes) -> dict[str, float]:
    started = time.perf_counter()
    reply = httpx.post(
        f"{base}/webhooks/alertmanager", content=body, timeout=120,
        headers={"authorization": f"Bearer {AM_TOKEN}", "content-type": "application/json"},
    )  # fmt: skip
    return {"status": reply.status_code, "took": time.perf_counter() - started}


def database_bytes(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--alerts", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tiny", action="store_true", help="alerts of ~46 bytes each")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="remediator-group-"))
    # A runbook for another alert: the big group is matched, stored and answered.
    step = ansible_step("append.yml", dest=str(work / "runs"))
    server = start_server(write_config(work, [runbook("other", "Other", step)]), name="group")
    url = f"{server.base}/webhooks/generic"
    try:
        baseline = Figures.of(*load(url, signed_body, args.rate, args.seconds))
        # Alone first, so the growth is the big body's own.
        body = json.dumps(alert_group(args.alerts, tiny=args.tiny)).encode()
        before = database_bytes(work / "remediator.db")
        alone = send(server.base, body)
        grown = database_bytes(work / "remediator.db") - before
        # The same alerts re-sent (the group's repeat interval): every one an update of an
        # open occurrence, placed and attached in batches.
        resent = send(server.base, json.dumps({**json.loads(body), "receiver": "again"}).encode())
        # Then again (another delivery: new alerts) in the middle of the others' run.
        again = json.dumps(alert_group(args.alerts, tiny=args.tiny, first=args.alerts)).encode()
        answer: dict[str, float] = {}
        sender = threading.Timer(args.seconds / 3, lambda: answer.update(send(server.base, again)))
        sender.start()
        during = Figures.of(*load(url, signed_body, args.rate, args.seconds))
        sender.join()
    finally:
        server.close()
    print(f"body: {args.alerts} alerts, {len(body) / 1024:.0f} KiB")
    for name, sent in (("alone", alone), ("re-sent", resent), ("amid the others", answer)):
        print(f"answered {sent['status']:.0f} in {sent['took'] * 1000:.0f} ms ({name})")
    print(
        f"database grew {grown / 1024:.0f} KiB = {grown / len(body):.1f}x the body "
        "(the event, its incidents and their indexes)"
    )
    print(f"other senders at {args.rate:g}/s   p50 ms   p99 ms   answered")
    for name, figures in (("without it", baseline), ("during it", during)):
        print(f"  {name:<26} {figures.p50:6.1f}  {figures.p99:7.1f}   {figures.ok}/{figures.sent}")
    return 0 if alone["status"] == resent["status"] == answer.get("status") == 202 else 1


if __name__ == "__main__":
    raise SystemExit(main())
