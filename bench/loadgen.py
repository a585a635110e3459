"""The load generator that every bench shares: keep-alive HTTP/1.1 connections written
by hand, open loop at a fixed rate or closed loop at saturation, in a second process.

`body(sequence)` makes each request's body and headers; it must be picklable (a
module-level function or a `functools.partial` of one), as it runs in that process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import statistics
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from app.signing import secret_key, signed_headers
from tests.support.service import GENERIC_SECRET

Body = Callable[[int], tuple[bytes, dict[str, str]]]

CONNECTIONS = 32  # open keep-alive connections, as a busy platform's senders keep
# After the last send, answers are waited for this long; later ones count as "late" (the
# server may still store them: stored >= accepted means nothing accepted was lost).
DRAIN_S = 20.0


def signed(incident: Mapping[str, object]) -> tuple[bytes, dict[str, str]]:
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

    def __init__(self, host: str, port: int, path: str) -> None:
        self.host, self.port, self.path = host, port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, headers: dict[str, str]) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.writer.write(
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}\r\n{head}"
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


async def _run(url: str, body: Body, rate: float | None, seconds: float) -> list[tuple[int, float]]:
    """Open loop (`rate`): request i is due at i/rate s and its latency counts from then,
    so time spent queued for a free connection is counted (no coordinated omission).
    Closed loop (None): each connection sends again as soon as it is answered."""
    address = urlsplit(url)
    results: list[tuple[int, float]] = []
    due: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    start = time.perf_counter()
    deadline = start + seconds

    async def connection_loop(index: int) -> None:
        connection = Connection(str(address.hostname), int(address.port or 80), address.path)
        sequence = index * 10_000_000
        while True:
            if rate is None:
                if time.perf_counter() >= deadline:
                    return
                item = (sequence, time.perf_counter())
                sequence += 1
            else:
                queued = await due.get()
                if queued is None:
                    return
                item = queued
            status = await connection.post(*body(item[0]))
            results.append((status, time.perf_counter() - item[1]))

    async def schedule() -> None:
        assert rate is not None
        for sequence in range(round(rate * seconds)):
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


def _generate(url: str, body: Body, rate: float | None, seconds: float, out: Any) -> None:
    # The results list grows by thousands of tuples: the collector's full passes over it
    # paused this process for ~130 ms every few seconds, which showed up as server latency.
    gc.disable()
    started = time.perf_counter()
    results = asyncio.run(_run(url, body, rate, seconds))
    out.send((results, time.perf_counter() - started))


def load(
    url: str, body: Body, rate: float | None, seconds: float
) -> tuple[list[tuple[int, float]], float]:
    """Run the load generator in a second process (it must not share the server's CPU
    time slices with the measuring side more than the machine forces)."""
    receiver, sender = multiprocessing.Pipe(duplex=False)
    process = multiprocessing.Process(target=_generate, args=(url, body, rate, seconds, sender))
    process.start()
    results, took = receiver.recv()
    process.join(timeout=120)
    return results, took


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


@dataclass(frozen=True)
class Figures:
    """One load phase, summed up: latencies in ms of the answers with `ok` status."""

    sent: int
    ok: int
    late: int
    per_s: float
    p50: float
    p95: float
    p99: float
    max: float

    @property
    def refused(self) -> int:
        return self.sent - self.ok - self.late

    @classmethod
    def of(cls, results: list[tuple[int, float]], took: float, ok: int = 202) -> Figures:
        good = [latency * 1000 for status, latency in results if status == ok] or [0.0]
        count = sum(1 for status, _ in results if status == ok)
        late = sum(1 for status, _ in results if status == -1)
        return cls(
            len(results), count, late, count / took, statistics.median(good),
            percentile(good, 0.95), percentile(good, 0.99), max(good),
        )  # fmt: skip
