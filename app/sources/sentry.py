"""Sentry, through an internal integration's webhooks (Settings → Developer Settings:
Webhook URL, the "Alert Rule Action" switch for alerts, the `issue` resource for issue
state changes).

Verification: `Sentry-Hook-Signature` is the HMAC-SHA256 (hex) of the body with the
integration's Client Secret (`secret`). Sentry signs the body only, not its
`Sentry-Hook-Timestamp` or `Request-ID`, so neither can be trusted to tell a replay: the
delivery id is a hash of the body (Sentry's retries send the same body), and a body
whose own time is older than the dedup window is refused as a possible replay; the
timestamp header, when sent, must be within the replay window too.

`Sentry-Hook-Resource` decides the shape:
- `event_alert` (an issue alert rule fired, action `triggered`) → firing. Occurrence and
  fingerprint: the issue (`issue:<issue_id>`); title the event's; severity from its
  `level`; labels from its tags, plus project, environment, rule.
- `metric_alert`, action `critical` or `warning` → firing, `resolved` → resolved.
  Occurrence: the metric alert incident; fingerprint `metric_alert:<alert rule id>`;
  title the alert rule's name; severity critical or medium (warning).
- `issue`, action `resolved` → resolved, `unresolved` (a regression) → firing, for the
  same `issue:<id>` as its alerts; other actions (created, assigned, archived) carry no
  incident.
- other resources (installation, error, comment, ...) → no incident, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from app.config.sections import SourceConfig
from app.errors import InvalidSignature, UnsupportedPayload
from app.incident import Incident, Severity, Status
from app.signing import parse_timestamp
from app.sources.base import (
    Delivery,
    WebhookRequest,
    any_matches,
    body_digest,
    epoch_time,
    hmac_hex,
    iso_time,
    newest,
    require_secret,
    severity_from,
    signing_key,
    text,
)

SIGNATURE = "sentry-hook-signature"
TIMESTAMP = "sentry-hook-timestamp"
RESOURCE = "sentry-hook-resource"
METRIC_STATUS: dict[str, tuple[Status, Severity]] = {
    "critical": ("firing", "critical"),
    "warning": ("firing", "medium"),
    "resolved": ("resolved", "medium"),
}
ISSUE_STATUS: dict[str, Status] = {"resolved": "resolved", "unresolved": "firing"}


class SentrySource:
    name = "sentry"
    default_replay_window_s: int | None = None
    calls_out = False

    def check_config(self, config: SourceConfig) -> None:
        require_secret(self.name, "Sentry", config)

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        key = signing_key(config)
        signature = request.headers.get(SIGNATURE)
        if not signature:
            raise InvalidSignature("missing Sentry-Hook-Signature header")
        if not any_matches(hmac_hex(key, request.body), [signature]):
            raise InvalidSignature("Sentry-Hook-Signature does not match the body")
        stamp = request.headers.get(TIMESTAMP)
        if stamp:
            parse_timestamp(stamp.split(".")[0], now=request.now, window_s=request.replay_window_s)

    def sign(self, body: bytes, config: SourceConfig, now: float) -> dict[str, str]:
        return {
            "Sentry-Hook-Signature": hmac_hex(signing_key(config), body),
            "Sentry-Hook-Timestamp": str(int(now)),
            "Sentry-Hook-Resource": _resource(body),
        }

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), dict):
            raise UnsupportedPayload("a Sentry webhook is a JSON object with a `data` object")
        resource = request.headers.get(RESOURCE) or _resource(request.body)
        action = text(payload.get("action")) or ""
        call = _Call(payload, request, "sha256:" + body_digest(request.body),
                     f"{resource}.{action}", action)  # fmt: skip
        data: dict[str, Any] = payload["data"]
        if resource == "event_alert":
            return _event_alert(call, data)
        if resource == "metric_alert" and action in METRIC_STATUS:
            return _metric_alert(call, data)
        if resource == "issue" and action in ISSUE_STATUS:
            return _issue(call, data)
        why = (f"{resource} {action or 'event'} does not start or end an incident"
               if resource in ("metric_alert", "issue")
               else f"Sentry {resource or 'webhook'} is not an alert")  # fmt: skip
        return Delivery(call.delivery_id, call.event_type, [], why)


@dataclass(frozen=True)
class _Call:
    """One delivery, as each shape's reader needs it."""

    payload: dict[str, Any]
    request: WebhookRequest
    delivery_id: str
    event_type: str
    action: str

    def incident(self, **fields: Any) -> Incident:
        """An incident of this delivery: what every shape shares, and its own `fields`."""
        return Incident(source=SentrySource.name, delivery_id=self.delivery_id,
                        event_type=self.event_type, received_at=self.request.received_at,
                        raw=self.payload, **fields)  # fmt: skip

    def delivery(self, incident: Incident, *times: datetime | None) -> Delivery:
        return Delivery(self.delivery_id, self.event_type, [incident], sent_at=newest(*times))


def _named(data: dict[str, Any], key: str, id_key: str) -> tuple[dict[str, Any], str, str]:
    """`data[key]` with its id and title, or UnsupportedPayload naming what is missing."""
    found = data.get(key)
    if not isinstance(found, dict):
        raise UnsupportedPayload(f"this Sentry webhook has a `data.{key}` object")
    found_id, title = _id(found.get(id_key)), text(found.get("title"))
    if found_id is None or title is None:
        raise UnsupportedPayload(f"`data.{key}.{id_key}` and `data.{key}.title` are needed")
    return found, found_id, title


def _event_alert(call: _Call, data: dict[str, Any]) -> Delivery:
    event, issue_id, title = _named(data, "event", "issue_id")
    labels = _tags(event.get("tags"))
    for key, value in (("sentry_issue_id", issue_id), ("project", _id(event.get("project"))),
                       ("rule", text(data.get("triggered_rule"))),
                       ("platform", text(event.get("platform")))):  # fmt: skip
        if value is not None:
            labels[key] = value
    started = iso_time(event.get("datetime")) or epoch_time(event.get("timestamp"))
    incident = call.incident(
        status="firing", title=title, severity=severity_from(event.get("level"), "high"),
        service=labels.get("project"), labels=labels,
        annotations=_annotations(("culprit", event.get("culprit"))),
        url=text(event.get("web_url")), fingerprint=f"issue:{issue_id}", started_at=started,
        occurrence=f"issue:{issue_id}",
    )  # fmt: skip
    return call.delivery(incident, started)


def _metric_alert(call: _Call, data: dict[str, Any]) -> Delivery:
    alert = data.get("metric_alert")
    rule = alert.get("alert_rule") if isinstance(alert, dict) else None
    if not isinstance(alert, dict) or not isinstance(rule, dict):
        raise UnsupportedPayload("a metric alert has `data.metric_alert.alert_rule`")
    incident_id, rule_id = _id(alert.get("id")), _id(rule.get("id"))
    name = text(rule.get("name")) or text(data.get("description_title"))
    if incident_id is None or rule_id is None or name is None:
        raise UnsupportedPayload("a metric alert needs its id, its rule's id and a name")
    status, severity = METRIC_STATUS[call.action]
    projects = [p for p in rule.get("projects") or [] if isinstance(p, str)]
    labels = {"sentry_metric_incident_id": incident_id, "sentry_alert_rule_id": rule_id,
              "action": call.action}  # fmt: skip
    for key, value in (("project", projects[0] if projects else None),
                       ("query", text(rule.get("query"))),
                       ("aggregate", text(rule.get("aggregate"))),
                       ("environment", text(rule.get("environment")))):  # fmt: skip
        if value is not None:
            labels[key] = value
    started = iso_time(alert.get("date_started"))
    incident = call.incident(
        status=status, title=name, severity=severity, service=labels.get("project"),
        labels=labels,
        annotations=_annotations(("description", data.get("description_text")),
                                 ("summary", data.get("description_title"))),
        url=text(data.get("web_url")), fingerprint=f"metric_alert:{rule_id}",
        started_at=started, occurrence=f"metric_alert:{incident_id}",
    )  # fmt: skip
    return call.delivery(incident, started, iso_time(alert.get("date_closed")),
                         iso_time(alert.get("date_detected")))  # fmt: skip


def _issue(call: _Call, data: dict[str, Any]) -> Delivery:
    issue, issue_id, title = _named(data, "issue", "id")
    project = issue.get("project")
    labels = {"sentry_issue_id": issue_id}
    slug = text(project.get("slug")) if isinstance(project, dict) else None
    if slug is not None:
        labels["project"] = slug
    incident = call.incident(
        status=ISSUE_STATUS[call.action], title=title,
        severity=severity_from(issue.get("level"), "high"), service=slug, labels=labels,
        url=text(issue.get("permalink")) or text(issue.get("web_url")),
        fingerprint=f"issue:{issue_id}", started_at=iso_time(issue.get("firstSeen")),
        occurrence=f"issue:{issue_id}",
    )  # fmt: skip
    return call.delivery(
        incident, iso_time(issue.get("lastSeen")), iso_time(issue.get("firstSeen"))
    )


def _resource(body: bytes) -> str:
    """Which resource a body is, for `remediator send` (Sentry says it in a header)."""
    if b'"metric_alert"' in body:
        return "metric_alert"
    if b'"issue_alert"' in body or b'"triggered_rule"' in body:
        return "event_alert"
    return "issue"


def _id(value: Any) -> str | None:
    """An id Sentry sends as a string or a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return text(value)


def _tags(tags: Any) -> dict[str, str]:
    """An event's tags (`[[key, value], ...]`, or `[{key, value}, ...]`) as labels."""
    labels: dict[str, str] = {}
    for tag in tags if isinstance(tags, list) else []:
        pair = (tag.get("key"), tag.get("value")) if isinstance(tag, dict) else tag
        if isinstance(pair, list | tuple) and len(pair) == 2:
            key, value = pair
            if isinstance(key, str) and isinstance(value, str):
                labels[key] = value
    return labels


def _annotations(*pairs: tuple[str, Any]) -> dict[str, str]:
    return {key: value for key, value in pairs if isinstance(value, str) and value.strip()}
