from __future__ import annotations

import json
import time
from datetime import UTC, datetime
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
