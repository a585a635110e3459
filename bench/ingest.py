"""Durable signed-webhook ingest against a real `remediator serve` on loopback.

For each database (SQLite with WAL and synchronous=FULL; PostgreSQL from the Debian
binaries with its default synchronous_commit=on), a load generator in a second process
sends Standard-Webhooks-signed `generic` incidents (HMAC-SHA256 over each body, a new
webhook-id each) that match no runbook, so what is measured is verify → normalise →
match → one committed transaction → 202:

- at fixed rates (open loop: request i is due at i/rate seconds, whatever the answers),
- at saturation (closed loop: 32 connections, each sending as soon as it is answered).

Every phase is bounded in count and time. Afterwards the events table is counted:
accepted (202) and stored must be equal.

    .venv/bin/python bench/ingest.py [--seconds 5] [--rates 100,500,1000] [--db sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.store.db import Database  # noqa: E402
from app.store.models import Event  # noqa: E402
from bench.loadgen import Figures, load, signed_body  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402
from tests.support.servers import start_server  # noqa: E402
from tests.support.service import write_config  # noqa: E402


def measure(database: str, url: str, rates: list[float], seconds: float, work: Path) -> None:
    # As deployed: workers poll every second, logs are JSON lines at info (to a file).
    config = write_config(work, [], database_url=url, workers=2, poll_interval_s=1.0)
    server = start_server(config, name=f"bench-{database}")
    accepted_total = 0
    try:
        for rate in [*rates, None]:
            f = Figures.of(*load(f"{server.base}/webhooks/generic", signed_body, rate, seconds))
            accepted_total += f.ok
            label = "saturation" if rate is None else f"{rate:g}/s"
            print(
                f"{database:>10}  {label:>10}  {f.sent:>6}  {f.ok:>6}  {f.refused:>4}  {f.late:>5}"
                f"  {f.per_s:>8.0f}  {f.p50:>6.1f}  {f.p95:>6.1f}  {f.p99:>6.1f}  {f.max:>7.1f}",
                flush=True,
            )
    finally:
        server.terminate()
    db = Database(url if database == "postgresql" else f"sqlite:///{work / 'remediator.db'}")
    with db.read() as session:
        stored = session.query(Event).count()
    db.close()
    verdict = (
        "equal" if stored == accepted_total
        else "none lost (late answers stored too)" if stored > accepted_total
        else "LOST"
    )  # fmt: skip
    print(f"{database:>10}  accepted (202) {accepted_total}, stored {stored}: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rates", default="100,500,1000")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    columns = ("database", 10), ("load", 10), ("sent", 6), ("202", 6), ("err", 4), ("late", 5), \
        ("req/s", 8), ("p50 ms", 6), ("p95 ms", 6), ("p99 ms", 6), ("max ms", 7)  # fmt: skip
    print("  ".join(f"{name:>{width}}" for name, width in columns))
    for database in args.db.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"remediator-bench-{database}-"))
        try:
            if database == "sqlite":
                measure(database, "sqlite:///remediator.db", rates, args.seconds, work)
                continue
            # Its own directory: PostgreSQL runs as `postgres`, which cannot enter `work`.
            pg_dir = Path(tempfile.mkdtemp(prefix="remediator-bench-pg-"))
            postgres = PostgresServer(pg_dir)
            postgres.start()
            try:
                measure(database, postgres.new_database(), rates, args.seconds, work)
            finally:
                postgres.stop()
                shutil.rmtree(pg_dir, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
