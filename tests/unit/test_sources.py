from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.errors import UnsupportedPayload
from app.sources.alertmanager import AlertmanagerSource
from app.sources.base import WebhookRequest
from app.sources.generic import GenericSource

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/payloads/alertmanager"


def request(
    body: bytes, headers: dict[str, str] | None = None, source: str = "alertmanager"
) -> WebhookRequest:
    return WebhookRequest(source, headers or {}, body, datetime.now(UTC), time.time(), 300)


def test_alertmanager_documented_sample() -> None:
    body = (FIXTURE / "prometheus-docs-sample.json").read_bytes()
    delivery = AlertmanagerSource().normalise(json.loads(body), request(body))
    assert delivery.delivery_id.startswith("sha256:")
    assert [i.status for i in delivery.incidents] == ["firing", "resolved"]
    first = delivery.incidents[0]
    assert first.title == "Instance localhost:9100 down"
    assert first.severity == "critical" and first.service == "node"
    assert first.labels["instance"] == "localhost:9100"
    assert first.url and first.url.startswith("http://prometheus")
    assert first.fingerprint != delivery.incidents[1].fingerprint
    assert first.raw["receiver"] == "webhook"


def test_alertmanager_without_fingerprint_gets_a_stable_one() -> None:
    payload = {"version": "4", "alerts": [{"status": "firing", "labels": {"a": "1"}}]}
    one = AlertmanagerSource().normalise(payload, request(b"1")).incidents[0]
    two = AlertmanagerSource().normalise(payload, request(b"2")).incidents[0]
    assert one.fingerprint == two.fingerprint and one.severity == "medium"


def test_generic_defaults_and_severity_words() -> None:
    source = GenericSource()
    inc = source.normalise(
        {"title": "t", "severity": "P2", "labels": {"n": 5}}, request(b"x", source="generic")
    ).incidents[0]
    assert (inc.status, inc.severity, inc.labels, inc.event_type) == (
        "firing",
        "high",
        {"n": "5"},
        "incident.firing",
    )
    with pytest.raises(UnsupportedPayload):
        source.normalise(["not", "an", "object"], request(b"x"))
    with pytest.raises(UnsupportedPayload, match="title may not be blank"):
        source.normalise({"title": "  "}, request(b"x"))


@pytest.mark.parametrize(
    ("starts_at", "believed"),
    [
        ("2999-01-01T00:00:00Z", False),  # in the future: would make remediation negative
        ("1970-01-01T00:00:00Z", False),  # ancient: would swamp every percentile
        ("not a time", False),
        (12345, False),
        ("now-10m", True),
    ],
)
def test_a_platform_start_time_is_believed_only_within_30_days_before_arrival(
    starts_at: object, believed: bool
) -> None:
    """`startsAt` is payload data that the stats count time to remediate from."""
    now = datetime.now(UTC)
    if starts_at == "now-10m":
        starts_at = (now - timedelta(minutes=10)).isoformat()
    payload = {"version": "4", "alerts": [
        {"status": "firing", "labels": {"alertname": "A"}, "startsAt": starts_at}
    ]}  # fmt: skip
    [incident] = AlertmanagerSource().normalise(payload, request(b"s")).incidents
    if believed:
        assert incident.started_at is not None
        assert timedelta(minutes=9) < incident.received_at - incident.started_at
        assert incident.received_at - incident.started_at < timedelta(minutes=11)
    else:
        assert incident.started_at is None
