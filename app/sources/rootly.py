"""Rootly webhooks (Configuration → Webhooks): `{"event": {id, type, issued_at}, "data": {...}}`.

Verification: `X-Rootly-Signature: t=<unix seconds>,v1=<hex>`, the hex HMAC-SHA256 of
the timestamp followed directly by the raw body, keyed by the webhook's secret. A
timestamp outside the replay window is refused, so a captured call cannot be replayed.

Delivery id: `event.id` (inside the signed body; the same on every redelivery).

Event types:
- incident.created: firing;
- incident.updated: firing, or resolved when `data.status` is mitigated, resolved,
  cancelled or closed;
- incident.mitigated, incident.resolved, incident.cancelled: resolved (the impact is
  over, so verification counts it);
- alert.created: firing (fingerprint `alert:<id>`);
- anything else (post-mortems, pulses, scheduled maintenance, deleted): no incident,
  answered 202 with the reason in `ignored`.

Occurrence: the incident (or alert) itself, `incident:<id>` / `alert:<id>`.
`incident.created` and `alert.created` open it; `incident.updated` while it is not over
is `updated` (it starts nothing unless a runbook says `on: [updated]`); mitigated,
resolved, cancelled (and an update to one of those) resolve it.

Mapping, incidents (`data` is the incident; a JSON:API `data.attributes` is read too):
- title: `title`; url: `url`, else `short_url`; fingerprint: `incident:<data.id>`;
- severity: `severity.severity` (Rootly's critical/high/medium/low), else its `slug` or
  `name` (SEV0/SEV1 → critical, SEV2 → high, SEV3 → medium, SEV4 → low), else a plain
  string through the same table; absent → medium;
- service: the first of `services[].name` (all of them in label `services`);
- labels: `labels` (an object, or a list of `{key, value}`), plus `environments`,
  `services`, `teams` (`groups`), `incident_types`, `functionalities` as comma lists,
  `kind` and `rootly_incident_id`;
- annotations: `summary`, `mitigation_message`, `resolution_message`, `cancellation_message`.
Alerts: title `summary`; url `external_url`; service the first of `services`; labels
from `labels`, plus `alert_source` and `rootly_alert_id`; severity medium (Rootly alerts
carry an urgency id only).
"""

from __future__ import annotations

from typing import Any

from app.config.sections import SourceConfig
from app.errors import InvalidSignature, UnsupportedPayload
from app.incident import Incident, Severity, Status
from app.signing import parse_timestamp
from app.sources.base import (
    Delivery,
    WebhookRequest,
    any_matches,
    hmac_hex,
    iso_time,
    require_secret,
    severity_from,
    signing_key,
    string_map,
    text,
)

HEADER = "x-rootly-signature"
INCIDENT_STATUS: dict[str, Status] = {
    "incident.created": "firing",
    "incident.updated": "firing",
    "incident.mitigated": "resolved",
    "incident.resolved": "resolved",
    "incident.cancelled": "resolved",
}
OVER = {"mitigated", "resolved", "cancelled", "closed"}
RELATED = {
    "environments": "environments",
    "services": "services",
    "groups": "teams",
    "incident_types": "incident_types",
    "functionalities": "functionalities",
}
MESSAGES = ("summary", "mitigation_message", "resolution_message", "cancellation_message")


def signature_parts(header: str) -> tuple[str, list[str]]:
    """(timestamp, [v1 signatures]) from `t=...,v1=...`; spaces and order do not matter."""
    stamp, signatures = "", []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            stamp = value.strip()
        elif key == "v1":
            signatures.append(value.strip())
    return stamp, signatures


def attributes(value: Any) -> dict[str, Any]:
    """A record, flat as the webhook sends it or wrapped as JSON:API (`data.attributes`)."""
    if not isinstance(value, dict):
        return {}
    for candidate in (value, value.get("data")):
        if isinstance(candidate, dict) and isinstance(candidate.get("attributes"), dict):
            found: dict[str, Any] = candidate["attributes"]
            return found
    return value


def names(value: Any) -> list[str]:
    items = value if isinstance(value, list) else []
    found = [
        text(attributes(item).get("name")) or text(attributes(item).get("slug")) for item in items
    ]
    return [name for name in found if name]


def rootly_labels(value: Any) -> dict[str, str]:
    if isinstance(value, list):
        return {
            str(item["key"]): str(item.get("value", ""))
            for item in value
            if isinstance(item, dict) and "key" in item
        }
    return string_map(value)


def rootly_severity(value: Any) -> Severity:
    if isinstance(value, str):
        return severity_from(value)
    record = attributes(value)
    for key in ("severity", "slug", "name"):
        if isinstance(record.get(key), str) and record[key].strip():
            return severity_from(record[key])
    return "medium"


class RootlySource:
    name = "rootly"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_secret(self.name, "Rootly", config)

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        key = signing_key(config)
        header = request.headers.get(HEADER)
        if not header:
            raise InvalidSignature("missing X-Rootly-Signature header")
        stamp, signatures = signature_parts(header)
        if not stamp or not signatures:
            raise InvalidSignature("X-Rootly-Signature must be t=<timestamp>,v1=<signature>")
        parse_timestamp(stamp, now=request.now, window_s=request.replay_window_s)
        expected = hmac_hex(key, stamp.encode() + request.body)
        if not any_matches(expected, signatures):
            raise InvalidSignature("X-Rootly-Signature does not match the body")

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        stamp = str(int(now))
        signature = hmac_hex(signing_key(config), stamp.encode() + body)
        return {"X-Rootly-Signature": f"t={stamp},v1={signature}"}

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict):
            raise UnsupportedPayload("a Rootly webhook is a JSON object")
        event, data = payload.get("event"), payload.get("data")
        if not isinstance(event, dict):
            raise UnsupportedPayload("`event` must be an object (Rootly: event and data)")
        event_id, event_type = text(event.get("id")), text(event.get("type"))
        if event_id is None or event_type is None:
            raise UnsupportedPayload("`event.id` and `event.type` must be strings")
        if not isinstance(data, dict):
            raise UnsupportedPayload("`data` must be an object")
        record = attributes(data)
        record_id = text(data.get("id")) or text(record.get("id"))
        if event_type in INCIDENT_STATUS or event_type == "alert.created":
            if record_id is None:
                raise UnsupportedPayload("`data.id` must be a string")
        if event_type in INCIDENT_STATUS:
            status = INCIDENT_STATUS[event_type]
            if event_type == "incident.updated" and str(record.get("status")).lower() in OVER:
                status = "resolved"
            incident = self._incident(
                record, record_id or "", event_id, event_type, status, payload, request
            )
        elif event_type == "alert.created":
            incident = self._alert(record, record_id or "", event_id, event_type, payload, request)
        else:
            return Delivery(event_id, event_type, [], f"{event_type} is not an incident event")
        return Delivery(event_id, event_type, [incident])

    def _incident(
        self,
        record: dict[str, Any],
        record_id: str,
        event_id: str,
        event_type: str,
        status: Status,
        payload: dict[str, Any],
        request: WebhookRequest,
    ) -> Incident:
        title = text(record.get("title"))
        if title is None:
            raise UnsupportedPayload("`data.title` must be a non-empty string")
        labels = rootly_labels(record.get("labels"))
        for key, label in RELATED.items():
            found = names(record.get(key))
            if found:
                labels[label] = ",".join(found)
        if text(record.get("kind")):
            labels["kind"] = record["kind"]
        labels["rootly_incident_id"] = record_id
        services = names(record.get("services"))
        return Incident(
            source=self.name,
            delivery_id=event_id,
            event_type=event_type,
            status=status,
            title=title,
            severity=rootly_severity(record.get("severity")),
            service=services[0] if services else None,
            labels=labels,
            annotations={k: record[k] for k in MESSAGES if text(record.get(k))},
            url=text(record.get("url")) or text(record.get("short_url")),
            fingerprint=f"incident:{record_id}",
            phase="updated" if event_type == "incident.updated" else "opened",
            received_at=request.received_at,
            started_at=iso_time(record.get("started_at")) or iso_time(record.get("created_at")),
            raw=payload,
        )

    def _alert(
        self,
        record: dict[str, Any],
        record_id: str,
        event_id: str,
        event_type: str,
        payload: dict[str, Any],
        request: WebhookRequest,
    ) -> Incident:
        labels = rootly_labels(record.get("labels"))
        if text(record.get("source")):
            labels["alert_source"] = record["source"]
        labels["rootly_alert_id"] = record_id
        services = names(record.get("services"))
        return Incident(
            source=self.name,
            delivery_id=event_id,
            event_type=event_type,
            status="firing",
            title=text(record.get("summary")) or "Rootly alert",
            severity="medium",
            service=services[0] if services else None,
            labels=labels,
            annotations={"description": record["description"]}
            if text(record.get("description"))
            else {},
            url=text(record.get("external_url")),
            fingerprint=f"alert:{record_id}",
            received_at=request.received_at,
            started_at=iso_time(record.get("started_at")) or iso_time(record.get("created_at")),
            raw=payload,
        )
