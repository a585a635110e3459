"""Hostile callers against a real `remediator serve`: bodies that dribble in (slow-loris),
JSON nested far deeper than any platform sends, and very wide batches. Each is refused
or handled with a clear answer, and none holds up an honest caller."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.servers import Server, start_server
from tests.support.service import AM_TOKEN, alert, ansible_step, runbook, sign_generic, write_config

pytestmark = pytest.mark.server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    step = ansible_step("write.yml", message="m", host="h", dest=str(tmp_path / "out.json"))
    config = write_config(tmp_path, [runbook("r", "Honest", step)], body_timeout_s=2)
    running = start_server(config)
    yield running
    running.close()


def slow_sender(base: str, declared: int) -> socket.socket:
    """A connection that sends its headers and then the body a byte at a time, slowly."""
    address = urlsplit(base)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.sendall(
        f"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AM_TOKEN}"
        f"\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n{{".encode()
    )
    return sock


@pytest.mark.serial  # timed: it needs the machine to itself
def test_slow_bodies_are_cut_off_without_holding_up_honest_callers(server: Server) -> None:
    slow = [slow_sender(server.base, 5000) for _ in range(40)]
    try:
        started = time.monotonic()
        honest = server.alertmanager(alert("Honest"), timeout=10)
        assert honest.status_code == 202, honest.text
        assert time.monotonic() - started < 2  # not queued behind the 40 slow bodies
        answers: list[bytes] = []
        for sock in slow:
            try:
                sock.sendall(b" ")  # still dribbling
            except OSError:
                pass
            sock.settimeout(15)
            received = b""
            while b"\r\n\r\n" not in received and len(received) < 65536:
                part = sock.recv(4096)
                if not part:
                    break
                received += part
            answers.append(received)
        assert time.monotonic() - started < 20
        for received in answers:
            assert received.startswith(b"HTTP/1.1 408"), received[:200]
            assert b"body_timeout" in received or b"content-length" in received.lower()
    finally:
        for sock in slow:
            sock.close()
    assert len(server.api("/executions")) == 1  # only the honest caller's


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_json_is_refused_clearly(server: Server, depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth, b'{"a":' * depth + b"1" + b"}" * depth):
        answer = httpx.post(
            f"{server.base}/webhooks/alertmanager", content=body, timeout=30,
            headers={"authorization": f"Bearer {AM_TOKEN}", "content-type": "application/json"},
        )  # fmt: skip
        assert answer.status_code in (413, 422), answer.text
        assert answer.json()["error"] in ("unsupported_payload", "payload_too_large")
        signed = httpx.post(f"{server.base}/webhooks/generic", content=body, timeout=30,
                            headers=sign_generic(body))  # fmt: skip
        assert signed.status_code in (413, 422), signed.text
    assert server.proc.poll() is None
    assert server.alertmanager(alert("Honest")).status_code == 202


def test_a_wide_batch_is_stored_whole(server: Server) -> None:
    incidents = [{"title": f"disk {i}", "labels": {"n": str(i)}} for i in range(2000)]
    body = json.dumps({"incidents": incidents}).encode()
    started = time.monotonic()
    answer = httpx.post(f"{server.base}/webhooks/generic", content=body, timeout=60,
                        headers=sign_generic(body))  # fmt: skip
    assert answer.status_code == 202, answer.text
    assert answer.json()["incidents"] == 2000
    assert time.monotonic() - started < 30
    wide = {"title": "wide", "labels": {f"k{i}": "v" * 20 for i in range(20_000)}}
    body = json.dumps(wide).encode()
    assert len(body) < 1_048_576
    answer = httpx.post(f"{server.base}/webhooks/generic", content=body, timeout=60,
                        headers=sign_generic(body))  # fmt: skip
    assert answer.status_code == 202, answer.text
