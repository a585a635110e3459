"""incident.io webhooks (Settings → Webhooks: an endpoint, the incident events).

Verification: incident.io's webhooks are sent by Svix, signed the Standard Webhooks way
(`webhook-id`, `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 over
`id.timestamp.body` with the endpoint's `whsec_` signing secret, the timestamp within the
replay window). Svix names the same three headers `svix-id`, `svix-timestamp` and
`svix-signature` too; either set is taken. The check is the generic source's
(app.signing), not a copy of it.

Body: `{"event_type": E, E: {the incident}}`. Private incidents' events carry the id
only, so they are stored and ignored, as are follow-up and action events.

Occurrence: the incident (`incident:<id>`). `incident_created_v2` opens it (a test or
tutorial incident too: the runbook's match decides); `incident_updated_v2` and
`incident_status_updated_v2` update it while its status category is triage, live or
paused, and resolve it once it is closed, learning (post-incident), canceled, declined
or merged; an update back to live after it resolved opens it again.

Mapping: title `name`; severity from `severity.name` (a common word, else by rank: the
lowest-ranked of the organisation's severities is not known here, so medium); service
from a custom field named "Affected service(s)" when present; labels: `reference`,
`status`, `status_category`, `incident_type`, `mode`, `visibility`, and each custom
field's values by its name; url `permalink`; started `created_at`.
Delivery id: `webhook-id` (the signature covers it); without one, a hash of the body.
"""

from __future__ import annotations

import uuid
from typing import Any

from app.config.sections import SourceConfig
from app.errors import UnsupportedPayload
from app.incident import Incident, Status
from app.signing import secret_key, signed_headers, verify
from app.sources.base import (
    Delivery,
    WebhookRequest,
    body_digest,
    iso_time,
    newest,
    require_secret,
    severity_from,
    text,
)

EVENTS = ("incident_created_v2", "incident_updated_v2", "incident_status_updated_v2")
# What each status category means for the occurrence (incident.io's IncidentStatusV2).
CATEGORY_STATUS: dict[str, Status] = {
    "triage": "firing", "live": "firing", "paused": "firing",
    "closed": "resolved", "learning": "resolved", "canceled": "resolved",
    "declined": "resolved", "merged": "resolved",
}  # fmt: skip
SVIX = {"svix-id": "webhook-id", "svix-timestamp": "webhook-timestamp",
        "svix-signature": "webhook-signature"}  # fmt: skip


class IncidentIoSource:
    name = "incidentio"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_secret(self.name, "incident.io", config)
        if config.secret is not None:
            secret_key(config.secret.get_secret_value())

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        headers = dict(request.headers)
        for svix, standard in SVIX.items():
            if standard not in headers and svix in headers:
                headers[standard] = headers[svix]
        verify(secret_key(config.secret.get_secret_value() if config.secret else ""),
               headers=headers, body=request.body, now=request.now,
               window_s=request.replay_window_s)  # fmt: skip

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        key = secret_key(config.secret.get_secret_value() if config.secret else "")
        return signed_headers(key, msg_id=f"msg_{uuid.uuid4().hex}", timestamp=int(now),
                              body=body)  # fmt: skip

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict):
            raise UnsupportedPayload("an incident.io webhook is a JSON object")
        event_type = text(payload.get("event_type"))
        if event_type is None:
            raise UnsupportedPayload("an incident.io webhook has an `event_type`")
        # The signed message id; a call that carries none (a source configured insecure)
        # is known by its body.
        delivery_id = (request.headers.get("webhook-id") or request.headers.get("svix-id")
                       or "sha256:" + body_digest(request.body))  # fmt: skip
        scope, _, event = event_type.partition(".")
        if scope != "public_incident" or event not in EVENTS:
            why = ("a private incident's event carries its id only" if scope == "private_incident"
                   else f"{event_type} does not start or end an incident")  # fmt: skip
            return Delivery(delivery_id, event_type, [], why)
        found = payload.get(event_type)
        if not isinstance(found, dict):
            raise UnsupportedPayload(f"the incident is under `{event_type}`, as an object")
        incident_id, name = text(found.get("id")), text(found.get("name"))
        status_info = found.get("incident_status")
        if not isinstance(status_info, dict):
            status_info = {}
        category = text(status_info.get("category"))
        if incident_id is None or name is None or category not in CATEGORY_STATUS:
            raise UnsupportedPayload(
                "the incident needs its `id`, `name` and an `incident_status.category` of "
                + ", ".join(CATEGORY_STATUS)
            )
        labels = _labels(found, status_info)
        created = iso_time(found.get("created_at"))
        severity = found.get("severity")
        incident = Incident(
            source=self.name, delivery_id=delivery_id, event_type=event_type,
            status=CATEGORY_STATUS[str(category)], title=name,
            severity=severity_from(severity.get("name") if isinstance(severity, dict) else None),
            service=labels.get("Affected services") or labels.get("Affected service"),
            labels=labels,
            annotations={"summary": s} if (s := text(found.get("summary"))) else {},
            url=text(found.get("permalink")), fingerprint=f"incident:{incident_id}",
            received_at=request.received_at, started_at=created,
            occurrence=f"incident:{incident_id}", raw=payload,
        )  # fmt: skip
        sent_at = newest(created, iso_time(found.get("updated_at")))
        return Delivery(delivery_id, event_type, [incident], sent_at=sent_at)


def _labels(found: dict[str, Any], status: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = {}
    kind = found.get("incident_type")
    for key, value in (
        ("reference", text(found.get("reference"))),
        ("status", text(status.get("name"))),
        ("status_category", text(status.get("category"))),
        ("incident_type", text(kind.get("name")) if isinstance(kind, dict) else None),
        ("mode", text(found.get("mode"))),
        ("visibility", text(found.get("visibility"))),
    ):
        if value is not None:
            labels[key] = value
    for entry in found.get("custom_field_entries") or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("custom_field"), dict):
            continue
        field_name = text(entry["custom_field"].get("name"))
        values = [_value(v) for v in entry.get("values") or []]
        shown = [v for v in values if v is not None]
        if field_name is not None and shown:
            labels[field_name] = ", ".join(shown)
    return labels


def _value(value: Any) -> str | None:
    """One custom field value, as text: a catalog entry's or an option's name, a text or
    numeric value."""
    if not isinstance(value, dict):
        return None
    for key in ("value_catalog_entry", "value_option"):
        if isinstance(value.get(key), dict):
            return text(value[key].get("name")) or text(value[key].get("value"))
    for key in ("value_text", "value_numeric", "value_link"):
        if isinstance(value.get(key), str | int | float) and not isinstance(value.get(key), bool):
            return str(value[key])
    return None
