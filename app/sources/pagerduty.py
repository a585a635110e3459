"""PagerDuty webhooks v3 (webhook subscriptions): `{"event": {id, event_type,
resource_type, occurred_at, agent, client, data}}`, one event per call.

Verification: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>...]`, the hex HMAC-SHA256 of
the raw body keyed by the subscription's secret; any listed v1 signature may match, so
PagerDuty can rotate the secret without downtime. The signature covers no timestamp:
replay is stopped by the event id (a redelivery starts nothing) and by refusing an
`occurred_at` outside the replay window (default here 3600 s, since PagerDuty retries
failed deliveries for a while; `replay_window_s` sets it).

Delivery id: `event.id`, which is signed and the same on every retry and across
subscriptions. The `X-Webhook-Id` header is not covered by the signature, so it is
kept as the annotation `pagerduty_webhook_id` for tracing, never used for dedup.
PagerDuty wants a 2xx within 5 seconds: the answer comes once the event is stored,
before any remediation work.

Event types (`event.data.type` must be `incident`):
- incident.triggered, incident.reopened: firing;
- incident.acknowledged, incident.escalated, incident.priority_updated: firing, the same
  incident, so they attach to its open execution (a runbook that should act on new
  incidents only matches `event_type: incident.triggered`);
- incident.resolved: resolved;

Occurrence and phase: `incident.triggered` and `incident.reopened` open an occurrence
(`<incident id>@<event id>`: a reopen is a new one, and runs again); acknowledged,
escalated, priority_updated are `updated` (of the incident's latest occurrence: they
start nothing unless a runbook says `on: [updated]`); resolved is `resolved`.
- anything else (annotated, delegated, responder.*, service.*, pagey.ping, ...): no
  incident, answered 202 with the reason in `ignored`.

Mapping: title `data.title`; url `data.html_url`; fingerprint `data.id` (the PagerDuty
incident, the same across all its events); service `data.service.summary`.
Severity: the priority's name when the account uses priorities, else the urgency:
| priority.summary | urgency | severity |
|------------------|---------|----------|
| P1               |         | critical |
| P2               | high    | high     |
| P3               |         | medium   |
| P4               | low     | low      |
| P5               |         | info     |
Labels: `pagerduty_incident_id`, `incident_number`, `incident_key`, `urgency`,
`priority`, `service_id`, `escalation_policy`, `teams` (comma list).
Annotations: `pagerduty_agent` (who acted), `resolve_reason`, `pagerduty_webhook_id`.
"""

from __future__ import annotations

import json
from typing import Any

from app.config.sections import SourceConfig
from app.errors import InvalidSignature, StaleTimestamp, UnsupportedPayload
from app.incident import Incident, Severity, Status
from app.sources.base import (
    Delivery,
    WebhookRequest,
    any_matches,
    hmac_hex,
    iso_time,
    require_secret,
    severity_from,
    signing_key,
    text,
)

HEADER = "x-pagerduty-signature"
EVENT_STATUS: dict[str, Status] = {
    "incident.triggered": "firing",
    "incident.reopened": "firing",
    "incident.acknowledged": "firing",
    "incident.escalated": "firing",
    "incident.priority_updated": "firing",
    "incident.resolved": "resolved",
}
URGENCY: dict[str, Severity] = {"high": "high", "low": "low"}


def summary(value: Any) -> str | None:
    """The display name of a PagerDuty reference object (`{id, type, summary, ...}`)."""
    return text(value.get("summary")) if isinstance(value, dict) else None


OPENS = frozenset({"incident.triggered", "incident.reopened"})


class PagerDutySource:
    name = "pagerduty"
    default_replay_window_s: int | None = 3600
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_secret(self.name, "PagerDuty", config)

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        key = signing_key(config)
        header = request.headers.get(HEADER)
        if not header:
            raise InvalidSignature("missing X-PagerDuty-Signature header")
        offered = [
            value.strip()
            for key, _, value in (part.strip().partition("=") for part in header.split(","))
            if key == "v1"
        ]
        if not offered:
            raise InvalidSignature("X-PagerDuty-Signature carries no v1 signature")
        expected = hmac_hex(key, request.body)
        if not any_matches(expected, offered):
            raise InvalidSignature("X-PagerDuty-Signature does not match the body")
        self._check_age(request)

    def _check_age(self, request: WebhookRequest) -> None:
        """Refuse a genuine but old event (a replay once its id is no longer remembered)."""
        try:
            event = json.loads(request.body).get("event")
            stamp = event.get("occurred_at")
        except (ValueError, AttributeError, RecursionError):
            return  # not the platform's shape: normalise says what is wrong (422)
        occurred = iso_time(stamp)
        if occurred is None:
            # Without a time the signature alone would let a captured body be replayed
            # as soon as its event id is no longer remembered.
            raise StaleTimestamp(
                f"event.occurred_at {str(stamp)[:40]!r} is not a time with a zone: "
                "the replay window cannot be checked"
            )
        age = request.now - occurred.timestamp()
        if abs(age) > request.replay_window_s:
            raise StaleTimestamp(
                f"event.occurred_at {occurred.isoformat()} is outside the "
                f"{request.replay_window_s}s replay window"
            )

    def sign(self, body: bytes, config: SourceConfig, _now: float) -> dict[str, str]:
        # Its time is the event's own (`occurred_at`, checked by `_check_age`).
        return {"X-PagerDuty-Signature": f"v1={hmac_hex(signing_key(config), body)}"}

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        event = payload.get("event") if isinstance(payload, dict) else None
        if not isinstance(event, dict):
            raise UnsupportedPayload("a PagerDuty v3 webhook is an object with an `event` object")
        event_id, event_type = text(event.get("id")), text(event.get("event_type"))
        if event_id is None or event_type is None:
            raise UnsupportedPayload("`event.id` and `event.event_type` must be strings")
        if event_type not in EVENT_STATUS:
            return Delivery(event_id, event_type, [], f"{event_type} is not an incident event")
        data = event.get("data")
        if not isinstance(data, dict) or data.get("type") != "incident":
            raise UnsupportedPayload(f"{event_type}: `event.data` must be an incident object")
        incident_id, title = text(data.get("id")), text(data.get("title"))
        if incident_id is None or title is None:
            raise UnsupportedPayload("`event.data.id` and `event.data.title` must be strings")
        service = data["service"] if isinstance(data.get("service"), dict) else {}
        teams = data["teams"] if isinstance(data.get("teams"), list) else []
        labels = {"pagerduty_incident_id": incident_id}
        for key, value in (
            ("incident_number", data.get("number")),
            ("incident_key", text(data.get("incident_key"))),
            ("urgency", text(data.get("urgency"))),
            ("priority", summary(data.get("priority"))),
            ("service_id", text(service.get("id"))),
            ("escalation_policy", summary(data.get("escalation_policy"))),
            ("teams", ",".join(name for name in map(summary, teams) if name) or None),
        ):
            if isinstance(value, str | int) and not isinstance(value, bool):
                labels[key] = str(value)
        annotations = {
            key: value
            for key, value in (
                ("pagerduty_agent", summary(event.get("agent"))),
                ("resolve_reason", text(data.get("resolve_reason"))),
                ("pagerduty_webhook_id", request.headers.get("x-webhook-id")),
            )
            if value
        }
        incident = Incident(
            source=self.name,
            delivery_id=event_id,
            event_type=event_type,
            status=EVENT_STATUS[event_type],
            title=title,
            severity=self._severity(labels),
            service=summary(service),
            labels=labels,
            annotations=annotations,
            url=text(data.get("html_url")),
            fingerprint=incident_id,
            received_at=request.received_at,
            started_at=iso_time(data.get("created_at")),
            occurrence=f"{incident_id}@{event_id}" if event_type in OPENS else incident_id,
            phase="opened" if event_type in OPENS else "updated",
            raw=payload,
        )
        return Delivery(event_id, event_type, [incident])

    @staticmethod
    def _severity(labels: dict[str, str]) -> Severity:
        if "priority" in labels:
            return severity_from(labels["priority"])
        return URGENCY.get(labels.get("urgency", ""), "medium")
