"""CloudWatch alarms through Amazon SNS into a real `remediator serve`: the subscription
is confirmed, an alarm signed as SNS signs it runs its runbook, its OK ends the
verification; a retried message is a duplicate; changed, stale or foreign messages are
refused and start nothing, and a certificate host outside the pattern is never reached."""

from __future__ import annotations

import json
import select
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.test_platforms import stored_events, wait_status
from tests.support.instant import instant_step
from tests.support.servers import Server, start_server
from tests.support.service import write_config
from tests.support.standins.sns import CERT_PATH, SnsStandIn, start_sns

pytestmark = [pytest.mark.server]


@pytest.fixture(scope="module")
def sns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnsStandIn]:
    running = start_sns(tmp_path_factory.mktemp("sns"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sns: SnsStandIn) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("cloudwatch")
    runbook = {
        "name": "checkout-5xx",
        "match": {"source": "cloudwatch", "all": [{"field": "labels.alarm_name",
                                                    "equals": "checkout-5xx-high"}]},
        "steps": [instant_step(directory / "ran.json",
                               values={"message": "{{ incident.title }}",
                                       "host": "{{ incident.labels.LoadBalancer }}"})],
        "verify": {"resolved_within": "5m"},
    }  # fmt: skip
    config = write_config(directory, [runbook], sources={"cloudwatch": sns.source_config()})
    running = start_server(config, instant=True)
    yield running
    assert running.terminate() in (0, -signal.SIGTERM)


def post(server: Server, body: bytes) -> httpx.Response:
    """As SNS posts: text/plain, the message type in a header."""
    kind = json.loads(body).get("Type", "Notification")
    return httpx.post(f"{server.base}/webhooks/cloudwatch", content=body, timeout=30,
                      headers={"content-type": "text/plain; charset=UTF-8",
                               "x-amz-sns-message-type": kind})  # fmt: skip


def test_subscribed_then_alarmed_then_ok(server: Server, sns: SnsStandIn) -> None:
    answer = post(server, sns.body("subscription-confirmation.json"))
    assert answer.status_code == 202 and "confirmed" in answer.json()["ignored"], answer.text
    assert sns.confirmed

    alarm = sns.body("alarm.json")
    answer = post(server, alarm)
    assert answer.status_code == 202, answer.text
    [execution_id] = answer.json()["executions"]
    execution = wait_status(server, execution_id, "verifying")
    assert execution["incident"]["title"] == "checkout-5xx-high"
    written = json.loads((server.log.parent / "ran.json").read_text())
    assert written == {"message": "checkout-5xx-high", "host": "app/checkout/50dc6c495c0c9188"}
    again = post(server, alarm)  # SNS retries a delivery with the same message
    assert again.status_code == 200 and again.json()["duplicate"] is True

    answer = post(server, sns.body("insufficient-data.json"))
    assert answer.json()["executions"] == [] and answer.json()["attached"] == [execution_id]
    answer = post(server, sns.body("ok.json"))
    assert answer.status_code == 202 and answer.json()["executions"] == [], answer.text
    assert wait_status(server, execution_id, "succeeded")["resolved_at"] is not None
    again = post(server, sns.body("alarm.json"))  # in ALARM again: a new occurrence, a new run
    assert again.status_code == 202 and len(again.json()["executions"]) == 1, again.text
    assert again.json()["executions"] != [execution_id]


def test_forged_stale_and_foreign_messages_start_nothing(server: Server, sns: SnsStandIn) -> None:
    before_events, before_runs = stored_events(server), len(server.api("/executions"))
    body = sns.body("alarm.json")
    message = json.loads(body)
    stale = {**message, "Timestamp": "2026-01-01T00:00:00.000Z"}
    with socket.socket() as elsewhere:
        elsewhere.bind(("127.0.0.1", 0))
        elsewhere.listen(8)
        foreign_cert = f"https://127.0.0.1:{elsewhere.getsockname()[1]}{CERT_PATH}"
        for what, forged, kind in [
            ("tampered", body.replace(b"checkout-5xx-high", b"checkout-5xx-hig"), "invalid_signature"),
            ("stale", json.dumps(sns.seal(stale)).encode(), "stale_timestamp"),
            ("other topic", sns.body("alarm.json", TopicArn="arn:aws:sns:eu-west-1:1:other"),
             "invalid_signature"),
            ("certificate elsewhere", json.dumps(sns.seal(message, cert_url=foreign_cert)).encode(),
             "invalid_signature"),
            ("unsigned", json.dumps({k: v for k, v in message.items() if k != "Signature"}).encode(),
             "invalid_signature"),
            ("not SNS", b"{}", "invalid_signature"),
        ]:  # fmt: skip
            answer = post(server, forged)
            assert answer.status_code == 401, (what, answer.text)
            assert answer.json()["error"] == kind, (what, answer.json())
        assert select.select([elsewhere], [], [], 0.2)[0] == []
    assert stored_events(server) == before_events
    assert len(server.api("/executions")) == before_runs


def test_a_certificate_host_that_is_down_is_answered_503_and_the_retry_lands(
    server: Server, sns: SnsStandIn, tmp_path: Path
) -> None:
    """SNS retries what is not a 2xx: a certificate that cannot be fetched yet is a 503,
    and the same message later is taken."""
    sns.stop()
    try:
        # A new certificate URL (the cache holds the old one): its host is down.
        body = json.dumps(sns.seal(json.loads(sns.body("ok.json")),
                                   cert_url=sns.host + CERT_PATH + "?rotated")).encode()  # fmt: skip
        answer = post(server, body)
        assert answer.status_code == 503 and answer.json()["error"] == "proof_unavailable"
    finally:
        sns.start()
    deadline = time.monotonic() + 10
    while (answer := post(server, body)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert answer.status_code == 202, answer.text
