"""Opsgenie outgoing Webhook integration: `{"action", "alert": {...}, "source",
"integrationName", "integrationId", "integrationType"}`.

(Atlassian ends Opsgenie support in April 2027: this source stays small.)

Verification: Opsgenie does not sign webhooks; the integration's custom headers carry
a token. `Authorization: Bearer <token>` by default, or the raw token in the header
named by `token_header`.

Actions: Create → firing; Close → resolved; anything else (Acknowledge, AddNote,
AddTags, Escalate, TakeOwnership, Delete, ...) → no incident, answered 202 with the
reason in `ignored` (a deleted alert is not a resolved one).

Mapping: title `alert.message`; fingerprint `alert.alias` (Opsgenie's own dedup key),
else `alert.alertId`; service `alert.entity`, else the `service` detail or tag;
url `https://app.opsgenie.com/alert/detail/<alertId>/details`.
Severity from `alert.priority`: P1 → critical, P2 → high, P3 → medium, P4 → low,
P5 → info; absent → medium.
Labels: `alert.details` (key → value), `alert.tags` (`key:value` → key → value, a bare
tag → "true"), plus `opsgenie_alert_id`, `tiny_id`, `team`, `alert_source`, `priority`.
Annotations: `description`, `opsgenie_user`.

Delivery id: Opsgenie sends none, so it is a hash of the body; a retried call is
byte-identical (its `updatedAt` is the action's) and is recognised as a duplicate.
"""

from __future__ import annotations

from typing import Any

from app.config.sections import SourceConfig
from app.errors import UnsupportedPayload
from app.incident import Incident, Status
from app.sources.base import (
    Delivery,
    WebhookRequest,
    bearer_headers,
    body_digest,
    epoch_time,
    newest,
    require_token,
    severity_from,
    string_map,
    tag_labels,
    text,
    verify_bearer,
)

# Occurrence: the alert id. `Create` opens it (a second Create of the same alert, a
# re-notification, is stored as `updated`), `Close` resolves it.
ACTION_STATUS: dict[str, Status] = {"Create": "firing", "Close": "resolved"}
ALERT_URL = "https://app.opsgenie.com/alert/detail/{}/details"


class OpsgenieSource:
    name = "opsgenie"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_token(self.name, config, "token_header")

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        verify_bearer(request, config)

    def sign(self, _body: bytes, config: SourceConfig, _now: float) -> dict[str, str]:
        return bearer_headers(config)

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict):
            raise UnsupportedPayload("an Opsgenie webhook is a JSON object")
        action, alert = text(payload.get("action")), payload.get("alert")
        if action is None or not isinstance(alert, dict):
            raise UnsupportedPayload("an Opsgenie webhook has an `action` and an `alert` object")
        delivery_id = "sha256:" + body_digest(request.body)
        event_type = f"alert.{action.lower()}"
        if action not in ACTION_STATUS:
            return Delivery(delivery_id, event_type, [], f"{action} does not start or end an alert")
        alert_id, message = text(alert.get("alertId")), text(alert.get("message"))
        if alert_id is None or message is None:
            raise UnsupportedPayload("`alert.alertId` and `alert.message` must be strings")
        labels = string_map(alert.get("details")) | tag_labels(alert.get("tags"))
        for key, value in (
            ("opsgenie_alert_id", alert_id),
            ("tiny_id", text(alert.get("tinyId"))),
            ("team", text(alert.get("team"))),
            ("alert_source", text(alert.get("source"))),
            ("priority", text(alert.get("priority"))),
        ):
            if value is not None:
                labels[key] = value
        annotations = {
            key: value
            for key, value in (
                ("description", text(alert.get("description"))),
                ("opsgenie_user", text(alert.get("username"))),
            )
            if value is not None
        }
        incident = Incident(
            source=self.name,
            delivery_id=delivery_id,
            event_type=event_type,
            status=ACTION_STATUS[action],
            title=message,
            severity=severity_from(alert.get("priority")),
            service=text(alert.get("entity")) or labels.get("service"),
            labels=labels,
            annotations=annotations,
            url=ALERT_URL.format(alert_id),
            fingerprint=text(alert.get("alias")) or alert_id,
            received_at=request.received_at,
            started_at=epoch_time(alert.get("createdAt")),
            occurrence=alert_id,
            raw=payload,
        )
        sent_at = newest(epoch_time(alert.get("createdAt")), epoch_time(alert.get("updatedAt")))
        return Delivery(delivery_id, event_type, [incident], sent_at=sent_at)
