"""Issue 15's attack table, replayed against a real `remediator serve`: a caller holding
one valid source token must not steer what runs, where the service connects, or how much
it stores, and the service's secrets reach no playbook, output, API view or escalation."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.support.platforms import PAGERDUTY_SECRET, load, sign_pagerduty
from tests.support.servers import Server, start_server
from tests.support.service import (
    AM_TOKEN,
    API_TOKEN,
    TEST_PLAYBOOKS,
    Recorder,
    alert,
    alert_group,
    free_port,
    runbook,
    write_config,
)

pytestmark = pytest.mark.server

UNLISTED = "e2e-unlisted-service-secret-4f1c"  # in the service's environment only
PASSED = "e2e-passed-on-purpose"  # listed in step_env


def touch(dest: Path, limit: str) -> dict[str, Any]:
    return {
        "ansible": {
            "playbook": "touch-hosts.yml",
            "inventory": "inventories/fleet.ini",
            "limit": limit,
            "extra_vars": {"dest": str(dest)},
            "timeout": "60s",
        }
    }


@pytest.fixture
def server(
    tmp_path: Path, recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Server, Path]]:
    monkeypatch.setenv("E2E_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("E2E_UNLISTED", UNLISTED)
    monkeypatch.setenv("E2E_PASSED", PASSED)
    out = tmp_path / "out"
    out.mkdir()
    closed = free_port()
    hook = recorder.url.rsplit("/", 1)[0]
    runbooks = [
        runbook("limit", "Limit", touch(out, "{{ incident.labels.instance }}"),
                escalate=["webhook"]),
        runbook("chat", "Chat", touch(out, "{{ incident.labels.instance }}"),
                escalate=["webhook", "slack"]),
        runbook("verify-loopback", "VerifyLoopback", touch(out, "db-1"), escalate=["webhook"],
                verify={"http": {"url": hook + "/health/{{ incident.labels.instance }}",
                                 "within": "5s", "interval": "0.2s"}}),
        runbook("verify-closed", "VerifyClosed", touch(out, "db-1"),
                verify={"http": {"url": f"http://127.0.0.2:{closed}/health", "within": "1s",
                                 "interval": "0.2s", "timeout": "1s"}}),
        {"name": "regex", "match": {"all": [{"field": "title", "matches": r"^(\w+\s?)*$"},
                                            {"field": "title", "matches": ".*error.*timeout"}]},
         "steps": [touch(out, "db-1")]},
    ]  # fmt: skip
    config = write_config(
        tmp_path,
        runbooks,
        api_tokens=["env:E2E_API_TOKEN"],
        playbooks_dir=str(TEST_PLAYBOOKS),
        step_env=["E2E_PASSED"],
        verify_allowed_hosts=["127.0.0.2"],
        escalation={"webhook": {"url": recorder.url}, "slack": {"webhook_url": hook + "/slack"}},
        escalation_max_backoff_s=0.5,
        sources={"alertmanager": {"token": AM_TOKEN}, "pagerduty": {"secret": PAGERDUTY_SECRET}},
    )
    running = start_server(config)
    yield running, out
    running.close()


def fire(server: Server, name: str, fingerprint: str, **labels: str) -> str:
    answer = server.alertmanager(alert(name, fingerprint=fingerprint, **labels))
    assert answer.status_code == 202, answer.text
    [execution_id] = answer.json()["executions"]
    return str(execution_id)


def secrets_absent(*texts: str) -> None:
    for text in texts:
        for secret in (API_TOKEN, AM_TOKEN, UNLISTED, PAGERDUTY_SECRET):
            assert secret not in text


def test_a_limit_from_the_payload_names_inventory_hosts_or_runs_nothing(
    server: tuple[Server, Path], recorder: Recorder
) -> None:
    serve, out = server
    hostile = ["@/proc/self/environ", "all", "web-*:db-*", "web-9"]
    ids = [fire(serve, "Limit", f"fp-{i}", instance=value) for i, value in enumerate(hostile)]
    ids.append(fire(serve, "Limit", "fp-ok", instance="web-1"))
    *refused, ran = serve.wait_all_final(ids)
    for execution, value in zip(refused, hostile, strict=True):
        assert execution["status"] == "failed", execution
        assert "limit:" in execution["error"] and repr(value) in execution["error"]
        assert all(s["output_tail"] == "" for s in execution["steps"])  # nothing ran
    assert ran["status"] == "succeeded", ran
    assert sorted(p.name for p in out.iterdir()) == ["env-web-1", "web-1"]
    environment = (out / "env-web-1").read_text()
    assert f"E2E_PASSED={PASSED}" in environment
    escalations = [r.body.decode() for r in recorder.wait_for(len(hostile))]
    secrets_absent(environment, json.dumps([serve.api(f"/executions/{i}") for i in ids]),
                   *escalations)  # fmt: skip


BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"


def test_chat_text_cannot_mention_link_format_or_reorder(
    server: tuple[Server, Path], recorder: Recorder
) -> None:
    """A title that tries Slack's mentions, links and formatting, with bidirectional
    controls in it: Slack's message shows it as text, and no bidi control reaches any
    target (Slack, the webhook)."""
    serve, _ = server
    hostile = f"<!channel> <https://evil.test|Runbook> *now* _it_ ~gone~ `x` {BIDI}exe.txt"
    [execution] = serve.wait_all_final([fire(serve, "Chat", "fp-chat", instance=hostile)])
    assert execution["status"] == "failed", execution
    sent = recorder.wait_for(2)
    [slack] = [r.json() for r in sent if r.path.endswith("/slack")]
    [hook] = [r.json() for r in sent if not r.path.endswith("/slack")]
    marked = [slack["text"]] + [
        block["text"]["text"] for block in slack["blocks"]
        if block.get("text", {}).get("type") == "mrkdwn"
    ]  # fmt: skip
    for text in marked:
        outside_dates = re.sub(r"<!date\^00000000\^\{_\}\|[*_~`]+>", "", text)
        for markup in ("<!channel>", "<https://evil.test", "*now*", "_it_", "~gone~", "`x`"):
            assert markup not in outside_dates, (markup, text)
    incident_line = next(t for t in marked if "<!date^00000000^{_}|*>now" in t)
    assert "&lt;!channel&gt;" in incident_line
    assert all(block["text"].get("verbatim") for block in slack["blocks"][1:3])
    for body in (json.dumps(slack, ensure_ascii=False), json.dumps(hook, ensure_ascii=False)):
        assert not set(BIDI) & set(body)
    assert "exe.txt" in hook["execution"]["incident"]["title"]


def test_verify_never_connects_to_a_loopback_target_and_names_no_socket_error(
    server: tuple[Server, Path], recorder: Recorder
) -> None:
    serve, _ = server
    loopback = fire(serve, "VerifyLoopback", "fp-v", instance="../../latest/meta-data")
    closed = fire(serve, "VerifyClosed", "fp-c", instance="x")
    first, second = serve.wait_all_final([loopback, closed])
    assert first["status"] == "failed" and "loopback address" in first["error"]
    assert [r.path for r in recorder.wait_for(1)] == ["/hook"]  # the escalation, no check
    assert second["status"] == "failed"
    assert "no answer (could not connect)" in second["error"]
    assert "Errno" not in second["error"] and "refused" not in second["error"].lower()


def test_a_url_template_in_the_host_is_refused_by_lint_with_file_and_line(tmp_path: Path) -> None:
    rb = tmp_path / "rb.yml"
    rb.write_text(
        "name: probe\nsteps: [{ansible: {playbook: p.yml}}]\nverify:\n  http:\n"
        "    url: 'http://{{ incident.labels.instance }}:9100/health'\n"
    )
    done = subprocess.run([sys.executable, "-m", "app.cli", "lint", str(rb)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode != 0
    assert f"{rb}:5: at verify.http.url" in done.stdout + done.stderr
    assert "not its scheme, host or port" in done.stdout + done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.serial  # timed: it needs the machine to itself
def test_a_catastrophic_pattern_answers_at_once_and_health_stays_up(
    server: tuple[Server, Path],
) -> None:
    serve, _ = server
    for title in ["a" * 36 + "!", "error " * 10_000 + "!"]:
        payload = alert("Other")
        payload["alerts"][0]["annotations"]["summary"] = title
        started = time.monotonic()
        answer = serve.alertmanager(payload)
        took = time.monotonic() - started
        assert answer.status_code == 202 and took < 0.1 + 0.05 * (len(title) > 1000), took
        assert httpx.get(f"{serve.base}/healthz", timeout=1).status_code == 200


def rss_mib(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 2**20


@pytest.mark.serial  # timed: it needs the machine to itself
def test_a_header_flood_is_431_and_memory_stays_flat(server: tuple[Server, Path]) -> None:
    serve, _ = server
    host, port = "127.0.0.1", int(serve.base.rsplit(":", 1)[1])
    before = rss_mib(serve.pid)
    for _ in range(20):
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"POST /webhooks/alertmanager HTTP/1.1\r\nHost: x\r\nX-Big: ")
            answer = b""
            try:
                for _ in range(640):  # 10 MiB of one header, as it arrives
                    sock.sendall(b"a" * 16384)
            except OSError:
                pass  # the server closed the connection after answering
            answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 431"), answer[:100]
        assert b'"error": "headers_too_large"' in answer
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")
    assert rss_mib(serve.pid) - before < 20
    assert httpx.get(f"{serve.base}/healthz", timeout=2).status_code == 200


def test_pagerduty_without_a_time_is_refused_as_stale(server: tuple[Server, Path]) -> None:
    serve, _ = server
    payload = load("pagerduty/incident-triggered.json")
    del payload["event"]["occurred_at"]
    body = json.dumps(payload).encode()
    answer = httpx.post(f"{serve.base}/webhooks/pagerduty", content=body,
                        headers=sign_pagerduty(body), timeout=10)  # fmt: skip
    assert answer.status_code == 401 and answer.json()["error"] == "stale_timestamp"


def test_a_manual_run_cannot_resolve_or_reach_into_another_platforms_incident(
    server: tuple[Server, Path],
) -> None:
    serve, _ = server
    headers = {"authorization": f"Bearer {API_TOKEN}"}
    url = f"{serve.base}/api/runbooks/limit/run"
    resolved = {"title": "t", "status": "resolved", "labels": {"instance": "web-1"}}
    answer = httpx.post(url, json={"incident": resolved}, headers=headers, timeout=30)
    assert answer.status_code == 422 and "status must be firing" in answer.text
    foreign = {"title": "t", "source": "pagerduty", "fingerprint": "PXYZ123",
               "labels": {"instance": "web-1"}}  # fmt: skip
    answer = httpx.post(url, json={"incident": foreign}, headers=headers, timeout=30)
    assert answer.status_code == 422 and "no live pagerduty incident" in answer.text


def database_bytes(path: Path) -> int:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path.stat().st_size


@pytest.mark.serial  # timed: it needs the machine to itself
def test_a_group_of_thousands_is_answered_fast_and_stored_once(
    server: tuple[Server, Path],
) -> None:
    serve, out = server
    database = out.parent / "remediator.db"
    body = json.dumps(alert_group(3000, tiny=True)).encode()
    before = database_bytes(database)
    started = time.monotonic()
    answer = httpx.post(f"{serve.base}/webhooks/alertmanager", content=body, timeout=60,
                        headers={"authorization": f"Bearer {AM_TOKEN}"})  # fmt: skip
    took = time.monotonic() - started
    assert answer.status_code == 202 and answer.json()["incidents"] == 3000
    assert took < 2.0, took  # ~0.25 s on the 2-core machine; bench/big_group.py measures
    assert database_bytes(database) - before < 10 * len(body)
    too_many = json.dumps(alert_group(5001, tiny=True)).encode()
    answer = httpx.post(f"{serve.base}/webhooks/alertmanager", content=too_many, timeout=60,
                        headers={"authorization": f"Bearer {AM_TOKEN}"})  # fmt: skip
    assert answer.status_code == 413 and "5001 incidents" in answer.json()["detail"]
