"""CloudWatch alarms through Amazon SNS: each message's signature checked with the
certificate its URL names, fetched only from the allowed host (a loopback stand-in under
the test's own CA here); subscriptions to configured topics confirmed; alarm states
mapped to occurrences."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.config.sections import SourceConfig
from app.config.settings import Settings
from app.errors import (
    ConfigError,
    InvalidSignature,
    ProofUnavailable,
    StaleTimestamp,
    UnsupportedPayload,
)
from app.sources.base import Delivery, WebhookRequest
from app.sources.cloudwatch import CloudWatchSource
from app.sources.registry import check_sources
from tests.support.contracts import contract
from tests.support.platforms import PAYLOADS, SNS_TOPIC
from tests.support.standins.sns import CERT_PATH, SnsStandIn, start_sns

ARN = "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:checkout-5xx-high"


@pytest.fixture(scope="module")
def sns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnsStandIn]:
    running = start_sns(tmp_path_factory.mktemp("sns"))
    yield running
    running.stop()


def config(sns: SnsStandIn, **changes: Any) -> SourceConfig:
    return SourceConfig.model_validate({**sns.source_config(), **changes})


def call(body: bytes, now: float | None = None) -> WebhookRequest:
    at = time.time() if now is None else now
    return WebhookRequest("cloudwatch", {"x-amz-sns-message-type": json.loads(body)["Type"]},
                          body, datetime.fromtimestamp(at, UTC), at, 3600)  # fmt: skip


def taken(source: CloudWatchSource, body: bytes, settings: SourceConfig) -> Delivery:
    request = call(body)
    source.verify(request, settings)
    return source.normalise(json.loads(body), request)


def test_an_alarm_opens_its_occurrence_and_ok_resolves_it(sns: SnsStandIn) -> None:
    source, settings = CloudWatchSource(), config(sns)
    [alarm] = taken(source, sns.body("alarm.json"), settings).incidents
    assert (alarm.status, alarm.phase, alarm.title) == ("firing", "opened", "checkout-5xx-high")
    assert alarm.fingerprint == alarm.occurrence == ARN
    assert alarm.labels["LoadBalancer"] == "app/checkout/50dc6c495c0c9188"
    assert (
        alarm.labels["namespace"] == "AWS/ApplicationELB"
        and alarm.service == alarm.labels["namespace"]
    )
    assert (alarm.labels["aws_region"], alarm.labels["aws_account_id"]) == (
        "eu-west-1",
        "123456789012",
    )
    assert alarm.annotations["reason"].startswith("Threshold Crossed")
    assert alarm.url and alarm.url.startswith(
        "https://eu-west-1.console.aws.amazon.com/cloudwatch/"
    )
    assert alarm.started_at and abs(alarm.started_at.timestamp() - time.time()) < 60
    assert alarm.delivery_id.startswith("sns:")
    [unknown] = taken(source, sns.body("insufficient-data.json"), settings).incidents
    assert (unknown.status, unknown.phase, unknown.occurrence) == ("firing", "updated", ARN)
    [ok] = taken(source, sns.body("ok.json"), settings).incidents
    assert (ok.status, ok.phase, ok.occurrence) == ("resolved", "resolved", ARN)  # fmt: skip


def test_both_signature_versions_and_the_certificate_is_fetched_once(sns: SnsStandIn) -> None:
    source, settings = CloudWatchSource(), config(sns)
    before = sns.fetches.count(CERT_PATH)
    for version in ("1", "2", "2"):
        message = json.loads(sns.body("alarm.json"))
        body = json.dumps(sns.seal(message, version=version)).encode()
        assert taken(source, body, settings).incidents
    assert sns.fetches.count(CERT_PATH) == before + 1


def test_a_changed_stale_or_foreign_message_is_refused(sns: SnsStandIn) -> None:
    source, settings = CloudWatchSource(), config(sns)
    body = sns.body("alarm.json")
    tampered = body.replace(b"checkout-5xx-high", b"checkout-5xx-low")
    with pytest.raises(InvalidSignature, match="does not match"):
        source.verify(call(tampered), settings)
    with pytest.raises(StaleTimestamp):
        source.verify(call(body, now=time.time() + 7200), settings)
    fetched = len(sns.fetches)
    other = sns.body("alarm.json", TopicArn="arn:aws:sns:eu-west-1:999999999999:theirs")
    with pytest.raises(InvalidSignature, match="topic_arns"):
        source.verify(call(other), settings)
    message = json.loads(body)
    for bad in ({"SignatureVersion": "3"}, {"Signature": "not base64!"}):
        with pytest.raises(InvalidSignature):
            source.verify(call(json.dumps({**message, **bad}).encode()), settings)
    with pytest.raises(InvalidSignature, match="https"):
        plain = sns.seal(message, cert_url=sns.host.replace("https", "http") + CERT_PATH)
        source.verify(call(json.dumps(plain).encode()), settings)
    assert len(sns.fetches) == fetched  # none of these cost a connection


def test_a_certificate_url_outside_the_pattern_is_never_connected_to(sns: SnsStandIn) -> None:
    """Someone else's host, with a signature made by its key: refused, and the host (a
    listening socket here) never sees a connection."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        for url in (f"https://127.0.0.1:{port}{CERT_PATH}",
                    f"https://localhost.evil.example:{port}{CERT_PATH}",
                    f"https://user@localhost:{port}{CERT_PATH}"):  # fmt: skip
            message = sns.seal(json.loads(sns.body("alarm.json")), cert_url=url)
            with pytest.raises(InvalidSignature):
                CloudWatchSource().verify(call(json.dumps(message).encode()), config(sns))
        assert select.select([listener], [], [], 0.2)[0] == []


def test_a_subscription_to_a_configured_topic_is_confirmed_and_no_other(sns: SnsStandIn) -> None:
    source, settings = CloudWatchSource(), config(sns)
    delivery = taken(source, sns.body("subscription-confirmation.json"), settings)
    assert delivery.incidents == [] and "confirmed" in (delivery.ignored or "")
    assert sns.confirmed[-1:] == [SNS_TOPIC]
    confirmed = len(sns.confirmed)
    theirs = sns.body("subscription-confirmation.json", TopicArn="arn:aws:sns:us-east-1:1:x")
    with pytest.raises(InvalidSignature):
        source.verify(call(theirs), settings)
    assert len(sns.confirmed) == confirmed


def test_a_certificate_host_that_is_down_is_a_retry_not_a_refusal(
    sns: SnsStandIn, tmp_path: Path
) -> None:
    down = start_sns(tmp_path)
    down.stop()
    body = down.body("alarm.json")
    with pytest.raises(ProofUnavailable):
        CloudWatchSource().verify(call(body), config(down))


def test_a_message_that_is_not_an_alarm_is_taken_and_ignored(sns: SnsStandIn) -> None:
    body = sns.body("alarm.json", Message="deploy finished", Subject="hello")
    delivery = taken(CloudWatchSource(), body, config(sns))
    assert delivery.incidents == [] and "not a CloudWatch alarm" in (delivery.ignored or "")


def test_configuration_and_send() -> None:
    source = CloudWatchSource()
    with pytest.raises(ConfigError, match="secret"):
        source.check_config(SourceConfig.model_validate({"topic_arns": [SNS_TOPIC], "secret": "s"}))
    with pytest.raises(ConfigError, match="cert_host_pattern"):
        source.check_config(SourceConfig.model_validate({"topic_arns": [SNS_TOPIC],
                                                         "cert_host_pattern": "(["}))  # fmt: skip
    with pytest.raises(ConfigError, match="needs a `secret`"):
        check_sources(_settings({"cloudwatch": {}}))
    for name, options in (
        ("cloudwatch", {"topic_arns": [SNS_TOPIC]}),
        ("azure_monitor", {"token": "t"}),
    ):
        with pytest.raises(ConfigError, match=f"sources.{name}.ca_file: no file"):
            check_sources(_settings({name: {**options, "ca_file": "/nonexistent/ca.pem"}}))
    with pytest.raises(ConfigError, match="topic_arns"):
        check_sources(_settings({"sentry": {"secret": "s", "topic_arns": [SNS_TOPIC]}}))
    with pytest.raises(ConfigError, match="cannot sign|can sign"):
        source.sign(b"{}", SourceConfig(), time.time())


def _settings(sources: dict[str, Any]) -> Any:
    return Settings.model_validate({"sources": sources})


def test_the_samples_keep_the_documented_fields() -> None:
    """The fields of SNS's HTTP messages and of the CloudWatch alarm in them, as the
    contract cut-out lists them; every sample has each required one."""
    fields = contract("sns-cloudwatch-messages.json")
    for path in sorted((PAYLOADS / "cloudwatch").glob("*.json")):
        message = json.loads(path.read_text())
        kind = fields["messages"][message["Type"]]
        assert set(kind["required"]) <= set(message) <= set(kind["required"] + kind["optional"])
        if message["Type"] == "Notification":
            alarm = json.loads(message["Message"])
            assert set(fields["alarm"]["required"]) <= set(alarm), path.name
            assert alarm["NewStateValue"] in fields["alarm"]["NewStateValue"]


def test_any_signed_message_gets_a_delivery_or_a_clear_refusal(sns: SnsStandIn) -> None:
    """Fuzzed: whatever JSON (or text) an authentic message carries in `Message`, and
    whatever type its fields are, normalising gives a delivery or UnsupportedPayload."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=15,
    )
    alarm_keys = st.sampled_from(["AlarmName", "NewStateValue", "Trigger", "AlarmArn",
                                  "StateChangeTime", "AWSAccountId", "AlarmDescription"])  # fmt: skip
    source, settings_ = CloudWatchSource(), config(sns)

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(changes=st.dictionaries(alarm_keys, values, max_size=5), text=st.text() | st.none())
    def check(changes: dict[str, Any], text: str | None) -> None:
        alarm = json.loads(json.loads(sns.body("alarm.json"))["Message"])
        inner = text if text is not None else json.dumps({**alarm, **changes})
        body = sns.body("alarm.json", Message=inner)
        request = call(body)
        source.verify(request, settings_)
        try:
            source.normalise(json.loads(body), request)
        except UnsupportedPayload:
            pass

    check()
