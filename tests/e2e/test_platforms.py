"""Each platform's documented sample, signed as that platform signs it, drives its runbook
through a real `remediator serve`; its resolve event ends the verification; every forged,
stale or replayed variant is refused and starts nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.entra import ENTRA, EntraIssuer, sign_azure_monitor
from tests.support.instant import instant_step
from tests.support.platforms import (
    FIRING,
    FOLLOW_UPS,
    RESOLVED,
    SIGNERS,
    SOURCES,
    Sample,
    live,
    load,
    sign_datadog,
    sign_grafana,
    sign_incidentio,
    sign_opsgenie,
    sign_pagerduty,
    sign_rootly,
    sign_sentry,
)
from tests.support.servers import Server, start_server
from tests.support.service import write_config

pytestmark = [pytest.mark.server]

ONLY_ZONE_US = [{"field": "labels.zone", "equals": "us-1"}]  # one of Grafana's two alerts


def runbooks(out: Path) -> list[dict[str, Any]]:
    return [
        {
            "name": f"{sample.source}-remediate",
            "match": {"source": sample.source, "all": ONLY_ZONE_US if sample.source == "grafana" else []},
            # The instant kind: the platforms are the subject here, not Ansible.
            "steps": [instant_step(out / f"{sample.source}.json",
                                   values={"message": "{{ incident.title }}", "host": "{{ incident.fingerprint }}"})],
            "verify": {"resolved_within": "5m"},
        }
        for sample in FIRING
    ]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("platforms")
    sources = {**SOURCES, "generic": {"secret": "whsec_dGVzdA=="}}
    config = write_config(directory, runbooks(directory), sources=sources)
    running = start_server(config, instant=True)
    yield running
    assert running.terminate() in (0, -signal.SIGTERM)


def post(server: Server, source: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.base}/webhooks/{source}", content=body, timeout=30,
                      headers={**headers, "content-type": "application/json"})  # fmt: skip


def stored_events(server: Server) -> int:
    database = server.log.parent / "remediator.db"
    with sqlite3.connect(database) as connection:
        count: int = connection.execute("select count(*) from events").fetchone()[0]
    return count


def wait_status(
    server: Server, execution_id: str, wanted: str, timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution: dict[str, Any] = server.api(f"/executions/{execution_id}")
        if execution["status"] == wanted:
            return execution
        assert execution["status"] in ("queued", "running", "verifying"), execution
        time.sleep(0.2)
    raise AssertionError(
        f"{execution_id} never reached {wanted}: {server.api(f'/executions/{execution_id}')}"
    )


@pytest.mark.parametrize(
    ("firing", "resolved"), list(zip(FIRING, RESOLVED, strict=True)), ids=lambda s: s.source
)
def test_documented_sample_runs_its_runbook_and_its_resolve_ends_it(
    server: Server, firing: Sample, resolved: Sample
) -> None:
    body = firing.body()
    headers = SIGNERS[firing.source](body)
    answer = post(server, firing.source, body, headers)
    assert answer.status_code == 202, answer.text
    [execution_id] = answer.json()["executions"]

    execution = wait_status(server, execution_id, "verifying")
    assert execution["runbook"] == f"{firing.source}-remediate"
    assert (
        execution["incident"]["status"] == "firing"
        and execution["incident"]["title"] == firing.title
    )
    written = json.loads((server.log.parent / f"{firing.source}.json").read_text())
    assert written == {"message": firing.title, "host": execution["incident"]["fingerprint"]}

    again = post(server, firing.source, body, headers)  # the platform retries a delivery
    assert again.status_code == 200 and again.json()["duplicate"] is True

    later = json.dumps(FOLLOW_UPS[firing.source](json.loads(body))).encode()
    answer = post(server, firing.source, later, SIGNERS[firing.source](later))
    assert answer.status_code == 202, answer.text
    assert answer.json()["executions"] == [] and answer.json()["attached"] == [execution_id]

    resolve_body = resolved.body()
    answer = post(server, resolved.source, resolve_body, SIGNERS[resolved.source](resolve_body))
    assert answer.status_code == 202 and answer.json()["executions"] == [], answer.text
    done = wait_status(server, execution_id, "succeeded")
    assert done["resolved_at"] is not None


def forgeries(source: str, body: bytes) -> Iterator[tuple[str, bytes, dict[str, str], str]]:
    """(what, body, headers, expected error kind) for one platform's forged calls."""
    tampered = body.replace(b"e", b"E", 1)
    if source == "rootly":
        yield "tampered", tampered, sign_rootly(body), "invalid_signature"
        yield "wrong secret", body, sign_rootly(body, secret="guess"), "invalid_signature"
        yield "stale", body, sign_rootly(body, at=time.time() - 3600), "stale_timestamp"
        yield "replayed later", body, sign_rootly(body, at=time.time() - 301), "stale_timestamp"
    if source == "pagerduty":
        yield "tampered", tampered, sign_pagerduty(body), "invalid_signature"
        yield "wrong secret", body, sign_pagerduty(body, secrets=("guess",)), "invalid_signature"
        old = json.dumps(load("pagerduty/incident-triggered.json")).encode()
        yield "old event", old, sign_pagerduty(old), "stale_timestamp"
    if source == "grafana":
        yield "tampered", tampered, sign_grafana(body), "invalid_signature"
        yield "wrong secret", body, sign_grafana(body, secret="guess"), "invalid_signature"
        yield "stale", body, sign_grafana(body, at=time.time() - 3600), "stale_timestamp"
    if source == "opsgenie":
        yield "wrong token", body, sign_opsgenie(body, token="guess"), "unauthenticated"
    if source == "datadog":
        yield "wrong token", body, sign_datadog(body, token="guess"), "unauthenticated"
    if source == "incidentio":
        yield "tampered", tampered, sign_incidentio(body), "invalid_signature"
        yield (
            "wrong secret",
            body,
            sign_incidentio(body, secret="whsec_Z3Vlc3M="),
            "invalid_signature",
        )
        yield "stale", body, sign_incidentio(body, at=time.time() - 3600), "stale_timestamp"
    if source == "sentry":
        yield "tampered", tampered, sign_sentry(body), "invalid_signature"
        yield "wrong secret", body, sign_sentry(body, secret="guess"), "invalid_signature"
        yield "stale", body, sign_sentry(body, at=time.time() - 3600), "stale_timestamp"
        # Sentry signs only the body: an old body with a fresh timestamp is still refused.
        old = json.dumps(load("sentry/issue-alert.json")).encode()
        yield "old event", old, sign_sentry(old), "stale_timestamp"
    if source == "azure_monitor":
        yield "expired", body, sign_azure_monitor(body, token=ENTRA.token(expires_in=-120)), ""
        for what, token in (("other issuer", ENTRA.token(issuer="https://sts.windows.net/x/")),
                            ("other audience", ENTRA.token(audience="api://other")),
                            ("other key", EntraIssuer().token())):  # fmt: skip
            yield what, body, sign_azure_monitor(body, token=token), "invalid_signature"
    yield "no header", body, {}, ""


@pytest.mark.parametrize("sample", FIRING, ids=lambda s: s.source)
def test_forged_stale_and_unsigned_calls_are_refused_and_start_nothing(
    server: Server, sample: Sample
) -> None:
    before_events, before_runs = stored_events(server), len(server.api("/executions"))
    for what, body, headers, kind in forgeries(sample.source, sample.body()):
        answer = post(server, sample.source, body, headers)
        assert answer.status_code == 401, (what, answer.text)
        assert answer.json()["detail"], what
        if kind:
            assert answer.json()["error"] == kind, (what, answer.json())
    assert stored_events(server) == before_events
    assert len(server.api("/executions")) == before_runs


@pytest.mark.parametrize(
    ("source", "file", "sign"),
    [("rootly", "postmortem-created.json", sign_rootly), ("pagerduty", "service-updated.json", sign_pagerduty),
     ("opsgenie", "acknowledge.json", sign_opsgenie), ("sentry", "issue-created.json", sign_sentry),
     ("incidentio", "private-incident-created.json", sign_incidentio)],
)  # fmt: skip
def test_events_that_are_not_incidents_are_stored_and_ignored(
    server: Server, source: str, file: str, sign: Callable[[bytes], dict[str, str]]
) -> None:
    body = json.dumps(live(load(f"{source}/{file}"))).encode()
    answer = post(server, source, body, sign(body))
    assert answer.status_code == 202, answer.text
    assert answer.json()["incidents"] == 0 and answer.json()["executions"] == []
    assert answer.json()["ignored"]


def test_not_the_platforms_shape_is_422_and_says_what(server: Server) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {"id": "x", "event_type": "incident.triggered", "occurred_at": now, "data": []}
    body = json.dumps({"event": event}).encode()
    answer = post(server, "pagerduty", body, sign_pagerduty(body))
    assert answer.status_code == 422 and "event.data" in answer.json()["detail"]


def test_azure_monitor_is_reached_at_its_dashed_url_too(server: Server) -> None:
    """`/webhooks/azure-monitor`, as the action group's URL is usually written."""
    body = json.dumps(live(load("azure_monitor/metric-resolved.json"))).encode()
    answer = post(server, "azure-monitor", body, SIGNERS["azure_monitor"](body))
    assert answer.status_code == 202, answer.text
    assert answer.json()["incidents"] == 1
