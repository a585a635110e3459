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
import asyncio
import json
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.signing import secret_key, signed_headers  # noqa: E402
from app.store.db import Database  # noqa: E402
from app.store.models import Event  # noqa: E402
from tests.conftest import GENERIC_SECRET, write_config  # noqa: E402
from tests.postgres import PostgresServer  # noqa: E402
from tests.servers import start_server  # noqa: E402

CONNECTIONS = 32  # open keep-alive connections, as a busy platform's senders keep
# After the last send, answers are waited for this long; later ones count as "late" (the
# server may still store them: stored >= accepted means nothing accepted was lost).
DRAIN_S = 20.0


def signed(incident: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    """A `generic` body and its Standard Webhooks headers, as a new delivery."""
    body = json.dumps(incident).encode()
    headers = signed_headers(secret_key(GENERIC_SECRET), msg_id=str(uuid.uuid4()),
                             timestamp=int(time.time()), body=body)  # fmt: skip
    return body, {**headers, "content-type": "application/json"}


def signed_body(sequence: int) -> tuple[bytes, dict[str, str]]:
    labels = {"alertname": "BenchNoRunbook", "seq": str(sequence)}
    return signed({"title": f"bench {sequence}", "severity": "low", "labels": labels})


class Connection:
    """One keep-alive HTTP/1.1 connection, written and read by hand: the load generator
    must cost far less per request than the server, which httpx's pool, with hundreds of
    requests waiting on it, does not (it became the bottleneck at ~140 requests/s)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(
            f"POST /webhooks/generic HTTP/1.1\r\nHost: {self.host}\r\n{head}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            length = 0
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await self.reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.writer = None
            return 0
        return int(status_line.split()[1])


async def _run(base: str, rate: float | None, seconds: float) -> list[tuple[int, float]]:
    """Open loop (`rate`): request i is due at i/rate s and its latency counts from then,
    so time spent queued for a free connection is counted (no coordinated omission).
    Closed loop (None): each connection sends again as soon as it is answered."""
    address = urlsplit(base)
    results: list[tuple[int, float]] = []
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = time.perf_counter()
    deadline = start + seconds

    async def connection_loop(index: int) -> None:
        connection = Connection(str(address.hostname), int(address.port or 80))
        sequence = index * 10_000_000
        while True:
            if rate is None:
                if time.perf_counter() >= deadline:
                    return
                item: tuple[int, float] | None = (sequence, time.perf_counter())
                sequence += 1
            else:
                item = await due.get()
                if item is None:
                    return
            status = await connection.post(*signed_body(item[0]))
            results.append((status, time.perf_counter() - item[1]))

    async def schedule() -> None:
        assert rate is not None
        for sequence in range(int(rate * seconds)):
            delay = start + sequence / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            due.put_nowait((sequence, start + sequence / rate))
        for _ in range(CONNECTIONS):
            due.put_nowait(None)

    workers = [asyncio.create_task(connection_loop(i)) for i in range(CONNECTIONS)]
    if rate is not None:
        await schedule()
    done, late = await asyncio.wait(workers, timeout=seconds + DRAIN_S)
    for task in late:
        task.cancel()
    unsent = due.qsize() - len(workers) if rate is not None else 0
    return results + [(-1, DRAIN_S)] * max(0, unsent)


def _generate(base: str, rate: float | None, seconds: float, out: Any) -> None:
    started = time.perf_counter()
    results = asyncio.run(_run(base, rate, seconds))
    out.send((results, time.perf_counter() - started))


def load(base: str, rate: float | None, seconds: float) -> tuple[list[tuple[int, float]], float]:
    """Run the load generator in a second process (it must not share the server's CPU
    time slices with the measuring side more than the machine forces)."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_generate, args=(base, rate, seconds, sender))
    process.start()
    results, took = receiver.recv()
    process.join(timeout=120)
    return results, took


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def measure(database: str, url: str, rates: list[float], seconds: float, work: Path) -> None:
    # As deployed: workers poll every second, logs are JSON lines at info (to a file).
    config = write_config(work, [], database_url=url, workers=2, poll_interval_s=1.0)
    server = start_server(config, name=f"bench-{database}")
    accepted_total = 0
    try:
        for rate in [*rates, None]:
            results, took = load(server.base, rate, seconds)
            accepted = [latency for status, latency in results if status == 202]
            late = sum(1 for status, _ in results if status == -1)
            refused = len(results) - len(accepted) - late
            accepted_total += len(accepted)
            label = "saturation" if rate is None else f"{rate:g}/s"
            latencies = [x * 1000 for x in accepted] or [0.0]
            print(
                f"{database:>10}  {label:>10}  {len(results):>6}  {len(accepted):>6}  {refused:>4}"
                f"  {late:>5}"
                f"  {len(accepted) / took:>8.0f}  {statistics.median(latencies):>6.1f}"
                f"  {percentile(latencies, 0.95):>6.1f}  {percentile(latencies, 0.99):>6.1f}"
                f"  {max(latencies):>7.1f}",
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
