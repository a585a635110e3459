"""Datadog Webhooks integration, with its default payload or the custom one below.

Verification: Datadog does not sign webhooks; the webhook's custom headers carry a
token. `Authorization: Bearer <token>` by default, or the raw token in the header named
by `token_header`.

Default payload (Datadog's template variables): `id` ($ID), `title` ($EVENT_TITLE),
`body` ($EVENT_MSG), `event_type`, `date`, `last_updated`, `org {id, name}`.
The custom payload documented for remediator adds what a runbook wants to match on:

    {"id": "$ID", "title": "$EVENT_TITLE", "body": "$EVENT_MSG",
     "event_type": "$EVENT_TYPE", "date": "$DATE", "last_updated": "$LAST_UPDATED",
     "org": {"id": "$ORG_ID", "name": "$ORG_NAME"},
     "alert_id": "$ALERT_ID", "alert_title": "$ALERT_TITLE",
     "alert_transition": "$ALERT_TRANSITION", "alert_status": "$ALERT_STATUS",
     "alert_priority": "$ALERT_PRIORITY", "alert_scope": "$ALERT_SCOPE",
     "alert_cycle_key": "$ALERT_CYCLE_KEY", "aggreg_key": "$AGGREG_KEY",
     "hostname": "$HOSTNAME", "tags": "$TAGS", "link": "$LINK"}

Transition: `alert_transition`, else the `[...]` prefix of the title
(`[Triggered on {host:web-1}] ...`):
| transition                                          | incident |
|-----------------------------------------------------|----------|
| Triggered, Re-Triggered, Warn, Re-Warn, No Data, Re-No Data, Renotify | firing |
| Recovered                                           | resolved |
| none found, or any other (muted, events that are not monitor alerts) | none: 202, ignored |

Mapping: title `alert_title`, else the title without its prefixes; url `link`;
fingerprint `alert_cycle_key` (the same for a trigger and its recovery), else
`aggreg_key` with `alert_scope`, else `alert_id` with `alert_scope`, else a hash of the
bare title. Labels: `tags` (`key:value` → key → value), plus `alert_id`, `hostname`,
`alert_scope`, `transition`, `priority`, `org`. Service: the `service` tag.
Severity: `alert_priority` (P1 → critical, P2 → high, P3 → medium, P4 → low, P5 →
info), else the transition (Triggered/Re-Triggered → high, Warn/Re-Warn → medium,
No Data → low, else medium). Annotations: `body`.

Occurrence: the alert cycle (`alert_cycle_key`, the fingerprint when sent); without it
the fingerprint with the notification's `date`. Triggered, Warn and No Data open it;
Re-Triggered, Re-Warn, Re-No Data and Renotify are `updated` (they start nothing unless
a runbook says `on: [updated]`); Recovered resolves it.

Delivery id: `id` ($ID, the notification's event id), else a hash of the body.
"""

from __future__ import annotations

import re
from typing import Any

from app.config.sections import SourceConfig
from app.errors import UnsupportedPayload
from app.incident import Incident, Severity, Status
from app.sources.base import (
    Delivery,
    WebhookRequest,
    bearer_headers,
    body_digest,
    epoch_time,
    newest,
    require_token,
    severity_from,
    stable_fingerprint,
    tag_labels,
    text,
    verify_bearer,
)

TRANSITION_STATUS: dict[str, Status] = {
    "triggered": "firing", "re-triggered": "firing", "warn": "firing", "re-warn": "firing",
    "no data": "firing", "re-no data": "firing", "renotify": "firing", "recovered": "resolved",
}  # fmt: skip
TRANSITION_SEVERITY: dict[str, Severity] = {
    "triggered": "high", "re-triggered": "high", "warn": "medium", "re-warn": "medium",
    "no data": "low", "re-no data": "low",
}  # fmt: skip
PREFIX = re.compile(r"^\s*(?:\[(P[1-5])\]\s*)?\[([A-Za-z -]+?)(?: on \{[^}]*\})?\]\s*")


def scalar(value: Any) -> str | None:
    """A template variable's value: Datadog sends strings, sometimes numbers."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return text(value)


class DatadogSource:
    name = "datadog"
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
            raise UnsupportedPayload("a Datadog webhook is a JSON object")
        raw_title = scalar(payload.get("title")) or scalar(payload.get("alert_title"))
        if raw_title is None:
            raise UnsupportedPayload("a Datadog webhook has a `title` ($EVENT_TITLE)")
        delivery_id = scalar(payload.get("id")) or "sha256:" + body_digest(request.body)
        prefix = PREFIX.match(raw_title)
        bare_title = raw_title[prefix.end() :] if prefix else raw_title
        transition = scalar(payload.get("alert_transition")) or (
            prefix.group(2) if prefix else None
        )
        key = (transition or "").strip().lower()
        event_type = f"datadog.{key.replace(' ', '_')}" if key else "datadog.event"
        if key not in TRANSITION_STATUS:
            why = f"transition {transition!r}" if transition else "no alert transition"
            return Delivery(
                delivery_id, event_type, [], f"{why}: not a monitor alert starting or ending"
            )
        labels = tag_labels((scalar(payload.get("tags")) or "").split(","))
        org = payload.get("org")
        for name, value in (
            ("alert_id", scalar(payload.get("alert_id"))),
            ("hostname", scalar(payload.get("hostname"))),
            ("alert_scope", scalar(payload.get("alert_scope"))),
            ("transition", transition),
            (
                "priority",
                scalar(payload.get("alert_priority")) or (prefix.group(1) if prefix else None),
            ),
            ("org", scalar(org.get("name")) if isinstance(org, dict) else None),
        ):
            if value is not None:
                labels[name] = value
        title = scalar(payload.get("alert_title")) or bare_title.strip() or raw_title
        fingerprint = self._fingerprint(payload, title)
        cycle = scalar(payload.get("alert_cycle_key"))
        date = scalar(payload.get("date")) or delivery_id
        opens = not (key.startswith("re-") or key == "renotify")
        incident = Incident(
            source=self.name,
            delivery_id=delivery_id,
            event_type=event_type,
            status=TRANSITION_STATUS[key],
            title=title,
            severity=severity_from(labels["priority"])
            if "priority" in labels
            else TRANSITION_SEVERITY.get(key, "medium"),
            service=labels.get("service"),
            labels=labels,
            annotations={"body": body} if (body := scalar(payload.get("body"))) else {},
            url=scalar(payload.get("link")),
            fingerprint=fingerprint,
            received_at=request.received_at,
            started_at=epoch_time(payload.get("date")),
            occurrence=fingerprint if cycle or not opens else f"{fingerprint}@{date}",
            phase="opened" if opens else "updated",
            raw=payload,
        )
        sent_at = newest(epoch_time(payload.get("date")), epoch_time(payload.get("last_updated")))
        return Delivery(delivery_id, event_type, [incident], sent_at=sent_at)

    @staticmethod
    def _fingerprint(payload: dict[str, Any], title: str) -> str:
        cycle = scalar(payload.get("alert_cycle_key"))
        if cycle is not None:
            return f"cycle:{cycle}"
        scope = scalar(payload.get("alert_scope")) or ""
        for field in ("aggreg_key", "alert_id"):
            value = scalar(payload.get(field))
            if value is not None:
                return f"{field}:{value}:{scope}"
        return stable_fingerprint(title)
