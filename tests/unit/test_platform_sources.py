"""Each platform's documented samples, normalised; each platform's signature, checked."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr

from app.config.sections import SourceConfig
from app.errors import (
    ConfigError,
    InvalidSignature,
    StaleTimestamp,
    Unauthenticated,
    UnsupportedPayload,
)
from app.sources.base import Delivery, WebhookRequest
from app.sources.registry import SOURCES
from tests.support.platforms import (
    GRAFANA_SECRET,
    PAGERDUTY_SECRET,
    ROOTLY_SECRET,
    live,
    load,
    sign_datadog,
    sign_grafana,
    sign_opsgenie,
    sign_pagerduty,
    sign_rootly,
)
from tests.support.platforms import (
    SOURCES as CONFIGS,
)


def hex_hmac(message: bytes) -> str:
    return hmac.new(GRAFANA_SECRET.encode(), message, hashlib.sha256).hexdigest()


def request(source: str, body: bytes, headers: dict[str, str] | None = None) -> WebhookRequest:
    lowered = {k.lower(): v for k, v in (headers or {}).items()}
    window = SOURCES[source].default_replay_window_s or 300
    return WebhookRequest(source, lowered, body, datetime.now(UTC), time.time(), window)


def normalise(
    source: str, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> Delivery:
    body = json.dumps(payload).encode()
    return SOURCES[source].normalise(payload, request(source, body, headers))


def verify(source: str, body: bytes, headers: dict[str, str], **config: Any) -> None:
    settings = SourceConfig.model_validate({**CONFIGS[source], **config})
    SOURCES[source].verify(request(source, body, headers), settings)


# ---------------------------------------------------------------- Rootly


def test_rootly_incident_created() -> None:
    [incident] = normalise("rootly", load("rootly/incident-created.json")).incidents
    assert incident.delivery_id == "9839c4ca-5e7b-416d-ad95-d09ae0c8eead"
    assert (incident.status, incident.event_type) == ("firing", "incident.created")
    assert incident.title == "Sparkling Frost" and incident.severity == "critical"
    assert incident.service == "checkout-api"
    assert incident.labels["environments"] == "production"
    assert incident.labels["teams"] == "Payments" and incident.labels["region"] == "us-east-1"
    assert incident.url == "http://localhost:3000/account/incidents/19-sparkling-frost"
    assert incident.fingerprint == "incident:b7eed587-50e6-44fe-b010-7a2bb05d737a"


def test_rootly_resolution_shares_the_fingerprint() -> None:
    created = normalise("rootly", load("rootly/incident-created.json")).incidents[0]
    resolved = normalise("rootly", load("rootly/incident-resolved.json")).incidents[0]
    assert resolved.status == "resolved" and resolved.fingerprint == created.fingerprint
    assert resolved.annotations["resolution_message"] == "Rolled back the bad deploy"
    updated = load("rootly/incident-resolved.json")
    updated["event"]["type"] = "incident.updated"
    assert normalise("rootly", updated).incidents[0].status == "resolved"
    updated["data"]["status"] = "started"
    assert normalise("rootly", updated).incidents[0].status == "firing"


def test_rootly_alert_and_ignored_events() -> None:
    [alert] = normalise("rootly", load("rootly/alert-created.json")).incidents
    assert alert.title == "database-prod-002 Memory threshold over 85%"
    assert alert.labels["alert_source"] == "pagerduty"
    assert alert.url == "https://rootly.pagerduty.com/alerts/Q1IC19Z6U7MIQB"
    ignored = normalise("rootly", load("rootly/postmortem-created.json"))
    assert ignored.incidents == [] and "incident_post_mortem.created" in (ignored.ignored or "")


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("SEV0", "critical"), ({"slug": "sev2"}, "high"), ({"data": {"attributes": {"severity": "low"}}}, "low"), (None, "medium")],
)  # fmt: skip
def test_rootly_severity_table(severity: Any, expected: str) -> None:
    payload = load("rootly/incident-created.json")
    payload["data"]["severity"] = severity
    assert normalise("rootly", payload).incidents[0].severity == expected


def test_rootly_signature() -> None:
    body = b'{"event": {}}'
    verify("rootly", body, sign_rootly(body))
    with pytest.raises(InvalidSignature, match="does not match"):
        verify("rootly", body + b" ", sign_rootly(body))
    with pytest.raises(InvalidSignature, match="does not match"):
        verify("rootly", body, sign_rootly(body, secret="another"))
    with pytest.raises(StaleTimestamp):
        verify("rootly", body, sign_rootly(body, at=time.time() - 301))
    with pytest.raises(InvalidSignature, match="missing X-Rootly-Signature"):
        verify("rootly", body, {})
    with pytest.raises(InvalidSignature, match="t=<timestamp>"):
        verify("rootly", body, {"X-Rootly-Signature": "v1=abc"})


# ---------------------------------------------------------------- PagerDuty


def test_pagerduty_documented_sample() -> None:
    delivery = normalise(
        "pagerduty", load("pagerduty/incident-priority-updated.json"), {"X-Webhook-Id": "w-1"}
    )
    [incident] = delivery.incidents
    assert delivery.delivery_id == "5ac64822-4adc-4fda-ade0-410becf0de4f"
    assert (incident.status, incident.severity) == ("firing", "critical")
    assert incident.title == "A little bump in the road" and incident.service == "API Service"
    assert incident.fingerprint == "PGR0VU2"
    assert incident.url == "https://acme.pagerduty.com/incidents/PGR0VU2"
    assert incident.labels["teams"] == "Engineering" and incident.labels["urgency"] == "high"
    assert incident.annotations == {
        "pagerduty_agent": "Tenex Engineer",
        "pagerduty_webhook_id": "w-1",
    }


def test_pagerduty_resolved_urgency_and_ignored() -> None:
    resolved = normalise("pagerduty", load("pagerduty/incident-resolved.json")).incidents[0]
    assert resolved.status == "resolved" and resolved.fingerprint == "PGR0VU2"
    low = load("pagerduty/incident-triggered.json")
    low["event"]["data"]["priority"] = None
    low["event"]["data"]["urgency"] = "low"
    assert normalise("pagerduty", low).incidents[0].severity == "low"
    ignored = normalise("pagerduty", load("pagerduty/service-updated.json"))
    assert ignored.incidents == [] and ignored.ignored
    note = load("pagerduty/incident-triggered.json")
    note["event"]["data"]["type"] = "incident_note"
    with pytest.raises(UnsupportedPayload, match="incident object"):
        normalise("pagerduty", note)


def test_pagerduty_signature_rotation_and_replay_window() -> None:
    body = json.dumps(live(load("pagerduty/incident-triggered.json"))).encode()
    verify("pagerduty", body, sign_pagerduty(body))
    verify("pagerduty", body, sign_pagerduty(body, secrets=("old-secret", PAGERDUTY_SECRET)))
    with pytest.raises(InvalidSignature):
        verify("pagerduty", body, sign_pagerduty(body, secrets=("old-secret",)))
    with pytest.raises(InvalidSignature, match="no v1"):
        verify("pagerduty", body, {"X-PagerDuty-Signature": "v0=abc"})
    old = json.dumps(load("pagerduty/incident-triggered.json")).encode()  # occurred in 2020
    with pytest.raises(StaleTimestamp, match="occurred_at"):
        verify("pagerduty", old, sign_pagerduty(old))


# ---------------------------------------------------------------- Grafana


def test_grafana_documented_sample() -> None:
    delivery = normalise("grafana", load("grafana/docs-sample.json"))
    assert [i.fingerprint for i in delivery.incidents] == ["c6eadffa33fcdf37", "bc97ff14869b13e3"]
    first = delivery.incidents[0]
    assert (
        first.labels["team"] == "blue"
        and first.url == "https://play.grafana.org/alerting/1afz29v7z/edit"
    )
    assert json.loads(first.annotations["values"]) == {"B": 44.23943737541908, "C": 1}
    assert "silence_url" in first.annotations and "panel_url" not in first.annotations
    assert first.raw["orgId"] == 1 and first.raw["state"] == "alerting"
    with pytest.raises(UnsupportedPayload, match='"1"'):
        normalise("grafana", {**load("grafana/docs-sample.json"), "version": "4"})


def test_grafana_hmac_with_and_without_timestamp_and_bearer() -> None:
    body = b'{"version": "1"}'
    verify("grafana", body, sign_grafana(body))
    millis = str(int(time.time() * 1000))
    verify("grafana", body, {"X-Grafana-Alerting-Timestamp": millis,
                             "X-Grafana-Alerting-Signature": hex_hmac(millis.encode() + b":" + body)})  # fmt: skip
    with pytest.raises(InvalidSignature):  # the signature covers the timestamp as sent
        verify("grafana", body, {**sign_grafana(body), "X-Grafana-Alerting-Timestamp": millis})
    with pytest.raises(StaleTimestamp):
        verify("grafana", body, sign_grafana(body, at=time.time() - 600))
    with pytest.raises(StaleTimestamp, match="X-Grafana-Alerting-Timestamp"):
        verify("grafana", body, {"X-Grafana-Alerting-Signature": "00"})
    # Without a timestamp header configured, Grafana's default one is still required ...
    with pytest.raises(StaleTimestamp, match="missing X-Grafana-Alerting-Timestamp"):
        verify(
            "grafana", body, {"X-Grafana-Alerting-Signature": hex_hmac(body)}, timestamp_header=None
        )
    # ... unless the config says in so many words that unstamped bodies are taken.
    unstamped = {"timestamp_header": None, "allow_unstamped": True}
    verify("grafana", body, {"X-Grafana-Alerting-Signature": hex_hmac(body)}, **unstamped)
    with pytest.raises(InvalidSignature, match="missing X-Grafana-Alerting-Signature"):
        verify("grafana", body, {}, **unstamped)
    verify(
        "grafana",
        body,
        {"Authorization": "Bearer t"},
        secret=None,
        timestamp_header=None,
        token="t",
    )


# ---------------------------------------------------------------- Opsgenie


def test_opsgenie_create_close_and_ignored() -> None:
    [created] = normalise("opsgenie", load("opsgenie/create.json")).incidents
    assert (created.status, created.severity, created.service) == ("firing", "high", "postgres")
    assert created.fingerprint == "disk-db-7"
    assert (
        created.labels["env"] == "prod"
        and created.labels["host"] == "db-7"
        and created.labels["disk"] == "true"
    )
    [closed] = normalise("opsgenie", load("opsgenie/close.json")).incidents
    assert closed.status == "resolved" and closed.fingerprint == created.fingerprint
    ack = normalise("opsgenie", load("opsgenie/acknowledge.json"))
    assert ack.incidents == [] and "Acknowledge" in (ack.ignored or "")


def test_opsgenie_and_datadog_tokens() -> None:
    verify("opsgenie", b"{}", sign_opsgenie(b"{}"))
    with pytest.raises(Unauthenticated, match="missing X-Remediator-Token"):
        verify("opsgenie", b"{}", {})
    with pytest.raises(Unauthenticated, match="does not match"):
        verify("opsgenie", b"{}", sign_opsgenie(b"{}", token="nope"))
    verify("datadog", b"{}", sign_datadog(b"{}"))
    with pytest.raises(Unauthenticated):
        verify("datadog", b"{}", sign_datadog(b"{}", token="nope"))


# ---------------------------------------------------------------- Datadog


def test_datadog_custom_template() -> None:
    [fired] = normalise("datadog", load("datadog/custom-triggered.json")).incidents
    assert (fired.status, fired.severity, fired.service) == ("firing", "high", "web")
    assert fired.title == "High CPU on web hosts" and fired.event_type == "datadog.triggered"
    assert fired.labels["env"] == "prod" and fired.labels["hostname"] == "web-1"
    [recovered] = normalise("datadog", load("datadog/custom-recovered.json")).incidents
    assert recovered.status == "resolved" and recovered.fingerprint == fired.fingerprint


def test_datadog_default_template_reads_the_title() -> None:
    delivery = normalise("datadog", load("datadog/default-triggered.json"))
    [incident] = delivery.incidents
    assert delivery.delivery_id == "7465389723455134512"
    assert (incident.status, incident.title, incident.severity) == (
        "firing",
        "High CPU on web hosts",
        "high",
    )
    recovered = {
        **load("datadog/default-triggered.json"),
        "id": "2",
        "title": "[Recovered on {host:web-1}] High CPU on web hosts",
    }
    assert normalise("datadog", recovered).incidents[0].fingerprint == incident.fingerprint
    event = normalise("datadog", {"id": "3", "title": "Deploy finished"})
    assert event.incidents == [] and event.ignored


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("source", "config", "says"),
    [
        ("rootly", {"token": "t"}, "set `secret`"),
        ("pagerduty", {"secret": "s", "token_header": "X"}, "does not apply"),
        ("opsgenie", {"secret": "s"}, "not a `secret`"),
        ("grafana", {"secret": "s", "token": "t"}, "not both"),
        ("grafana", {"token": "t", "timestamp_header": "X"}, "does not apply"),
        ("alertmanager", {"token": "t", "signature_header": "X"}, "does not apply"),
    ],
)
def test_config_refuses_options_a_platform_does_not_use(
    source: str, config: dict[str, Any], says: str
) -> None:
    with pytest.raises(ConfigError, match=says):
        SOURCES[source].check_config(SourceConfig.model_validate(config))


def test_secrets_are_not_echoed() -> None:
    config = SourceConfig(secret=SecretStr(ROOTLY_SECRET))
    assert ROOTLY_SECRET not in repr(config)


# ---------------------------------------------------------------- Sentry


def sentry(file: str, resource: str) -> Delivery:
    return normalise("sentry", live(load(f"sentry/{file}")), {"Sentry-Hook-Resource": resource})


def test_sentry_issue_alert_is_the_issue_firing() -> None:
    [incident] = sentry("issue-alert.json", "event_alert").incidents
    assert (incident.status, incident.event_type) == ("firing", "event_alert.triggered")
    assert incident.title == "ReferenceError: heck is not defined" and incident.severity == "high"
    assert incident.fingerprint == incident.occurrence == "issue:1117540176"
    assert incident.labels["browser"] == "Chrome 75.0.3770" and incident.labels["project"] == "1"
    assert incident.labels["rule"] == "Very Important Alert Rule!"
    assert incident.url is not None and incident.url.endswith("/issues/1117540176/events/"
                                                              "e4874d664c3540c1a32eab185f12c5ab/")  # fmt: skip
    assert incident.delivery_id.startswith("sha256:")


def test_sentry_issue_resolved_ends_the_alerts_incident_and_other_actions_are_ignored() -> None:
    fired = sentry("issue-alert.json", "event_alert").incidents[0]
    [resolved] = sentry("issue-resolved.json", "issue").incidents
    assert resolved.status == "resolved" and resolved.fingerprint == fired.fingerprint
    assert resolved.labels["project"] == "front-end"
    created = sentry("issue-created.json", "issue")
    assert created.incidents == [] and created.ignored is not None
    other = normalise("sentry", {"action": "created", "data": {"installation": {}}},
                      {"Sentry-Hook-Resource": "installation"})  # fmt: skip
    assert other.incidents == [] and "installation" in (other.ignored or "")


def test_sentry_metric_alert_fires_and_resolves_one_occurrence() -> None:
    [critical] = sentry("metric-critical.json", "metric_alert").incidents
    [resolved] = sentry("metric-resolved.json", "metric_alert").incidents
    assert (critical.status, critical.severity) == ("firing", "critical")
    assert resolved.status == "resolved"
    assert critical.fingerprint == resolved.fingerprint == "metric_alert:7"
    assert critical.occurrence == resolved.occurrence == "metric_alert:4"
    assert critical.title == "Too many errors" and critical.labels["query"] == "level:error"
    assert critical.service == "bar"


def test_sentry_signature_covers_the_body_and_its_timestamp_must_be_fresh() -> None:
    from tests.support.platforms import sign_sentry

    body = json.dumps(live(load("sentry/issue-alert.json"))).encode()
    verify("sentry", body, sign_sentry(body))
    with pytest.raises(InvalidSignature):
        verify("sentry", body + b" ", sign_sentry(body))
    with pytest.raises(InvalidSignature):
        verify("sentry", body, sign_sentry(body, secret="guess"))
    with pytest.raises(StaleTimestamp):
        verify("sentry", body, sign_sentry(body, at=time.time() - 3600))
    with pytest.raises(InvalidSignature, match="missing Sentry-Hook-Signature"):
        verify("sentry", body, {})
    with pytest.raises(ConfigError, match="signs its webhooks"):
        SOURCES["sentry"].check_config(SourceConfig(token=SecretStr("a-token-value")))


def test_sentry_samples_and_actions_are_the_documented_ones() -> None:
    """The samples carry what Sentry documents for their resource, and every action the
    source maps is one Sentry documents."""
    from app.sources.sentry import ISSUE_STATUS, METRIC_STATUS
    from tests.support.contracts import EXTRACTS

    contract = json.loads((EXTRACTS / "sentry-webhooks.json").read_text())
    for file, resource in (("issue-alert.json", "event_alert"),
                           ("metric-critical.json", "metric_alert")):  # fmt: skip
        sample = load(f"sentry/{file}")
        assert sample["action"] in contract[resource]["actions"]
        for path in contract[resource]["attributes"]:
            node: Any = sample
            for key in path.split("."):
                node = node[key]
    assert set(METRIC_STATUS) <= set(contract["metric_alert"]["actions"])
    assert set(ISSUE_STATUS) <= set(contract["issue"]["actions"])


# ---------------------------------------------------------------- incident.io


def test_incidentio_created_opens_and_closed_resolves_one_occurrence() -> None:
    created = normalise("incidentio", live(load("incidentio/incident-created.json")),
                        {"webhook-id": "msg_1"})  # fmt: skip
    [opened] = created.incidents
    assert (opened.status, opened.title, opened.severity) == ("firing", "Our database is sad",
                                                              "high")  # fmt: skip
    assert opened.fingerprint == opened.occurrence == "incident:01FDAG4SAP5TYPT98WGR2N7W91"
    assert opened.service == "checkout-api" and opened.labels["reference"] == "INC-123"
    assert opened.labels["status_category"] == "live" and opened.delivery_id == "msg_1"
    assert opened.url == "https://app.incident.io/my-company/incidents/123"
    [closed] = normalise("incidentio", live(load("incidentio/incident-closed.json"))).incidents
    assert closed.status == "resolved" and closed.fingerprint == opened.fingerprint
    private = normalise("incidentio", load("incidentio/private-incident-created.json"))
    assert private.incidents == [] and "id only" in (private.ignored or "")


def test_incidentio_is_verified_the_standard_webhooks_way_under_either_header_names() -> None:
    from tests.support.platforms import sign_incidentio

    body = json.dumps(live(load("incidentio/incident-created.json"))).encode()
    verify("incidentio", body, sign_incidentio(body))
    verify("incidentio", body, sign_incidentio(body, svix=True))
    with pytest.raises(InvalidSignature):
        verify("incidentio", body + b" ", sign_incidentio(body))
    with pytest.raises(StaleTimestamp):
        verify("incidentio", body, sign_incidentio(body, at=time.time() - 3600))


def test_incidentio_maps_every_documented_status_category_and_event() -> None:
    from app.sources.incidentio import CATEGORY_STATUS, EVENTS
    from tests.support.contracts import EXTRACTS

    contract = json.loads((EXTRACTS / "incidentio-webhooks.json").read_text())
    assert set(CATEGORY_STATUS) == set(contract["status_categories"])
    assert {f"public_incident.{e}" for e in EVENTS} == set(contract["incident_events"])
    sample = load("incidentio/incident-created.json")["public_incident.incident_created_v2"]
    assert set(contract["incident_fields"]) <= set(sample)
