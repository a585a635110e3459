"""Grouped alert notifications, as Alertmanager sends them and Grafana copies: one
Incident per alert of the group, each with its own status and fingerprint.

Mapping (shared by both platforms):
- status: the alert's `status` (firing|resolved), not the group's;
- title: `annotations.summary`, else `labels.alertname`;
- severity: `labels.severity` through the common table in `base.SEVERITY_WORDS`
  (critical; error/high/major → high; warning → medium; minor/low → low; info → info;
  absent or other → medium);
- service: `labels.service`, else `labels.job`, else `labels.app`;
- labels/annotations: the alert's own (`commonLabels`/`commonAnnotations` are by
  definition the ones every alert has, so copying them in would add nothing from an
  honest sender and multiply a hostile sender's body by its number of alerts);
- url: the alert's `generatorURL`, else the group's `externalURL`;
- fingerprint: the alert's `fingerprint` (a hash of its labels where absent);
- event_type: `alert.firing` or `alert.resolved`; raw: the group's fields (`raw.receiver`,
  `raw.commonLabels`, ...) and the alert itself as `raw.alert`. The group's fields are
  stored once with the event, each incident stores its own alert: a body of 3,000 alerts
  costs about its own size in the database, not 3,000 times it.

Occurrence: `<fingerprint>@<startsAt>`; a firing alert is `opened`, and stored as
`updated` when that occurrence is already open (a group re-sent because another alert
joined it, or its repeat interval came round): only a new `startsAt` runs again.

Delivery id: neither platform sends one, so it is a hash of the body. A notification
repeated unchanged is recognised as a duplicate; a new firing has a new `startsAt`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.errors import UnsupportedPayload
from app.incident import Incident
from app.sources.base import (
    Delivery,
    WebhookRequest,
    body_digest,
    iso_time,
    newest,
    severity_from,
    stable_fingerprint,
    string_map,
)

# The platform's own extra per-alert fields, as annotations.
Extras = Callable[[dict[str, Any]], dict[str, str]]


def group_delivery(
    source: str,
    platform: str,
    payload: Any,
    request: WebhookRequest,
    *,
    version: str,
    extras: Extras | None = None,
) -> Delivery:
    if not isinstance(payload, dict):
        raise UnsupportedPayload(f"a {platform} notification is a JSON object")
    given = payload.get("version")
    if str(given) != version:
        raise UnsupportedPayload(f'`version` must be "{version}" ({platform}), got {given!r}')
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise UnsupportedPayload("`alerts` must be a list")
    delivery_id = "sha256:" + body_digest(request.body)
    group = {key: value for key, value in payload.items() if key != "alerts"}
    shared = frozenset(group)
    incidents = []
    sent_at = None
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise UnsupportedPayload(f"alerts[{index}] must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise UnsupportedPayload(f"alerts[{index}].status must be firing or resolved")
        if not isinstance(alert.get("labels"), dict):
            raise UnsupportedPayload(f"alerts[{index}].labels must be an object")
        labels = string_map(alert["labels"])
        annotations = string_map(alert.get("annotations"))
        if extras is not None:
            annotations |= extras(alert)
        sent_at = newest(sent_at, iso_time(alert.get("startsAt")), iso_time(alert.get("endsAt")))
        fingerprint = alert.get("fingerprint")
        if not (isinstance(fingerprint, str) and fingerprint):
            fingerprint = stable_fingerprint(labels)
        started = alert.get("startsAt")
        url = alert.get("generatorURL") or payload.get("externalURL")
        incidents.append(
            Incident(
                source=source,
                delivery_id=delivery_id,
                event_type=f"alert.{status}",
                status=status,
                title=annotations.get("summary") or labels.get("alertname") or f"{platform} alert",
                severity=severity_from(labels.get("severity")),
                service=labels.get("service") or labels.get("job") or labels.get("app"),
                labels=labels,
                annotations=annotations,
                url=url if isinstance(url, str) and url else None,
                fingerprint=fingerprint,
                received_at=request.received_at,
                started_at=iso_time(started),
                occurrence=f"{fingerprint}@{started}" if isinstance(started, str) else "",
                raw={**group, "alert": alert},
                raw_shared=shared,
            )
        )
    return Delivery(
        delivery_id=delivery_id,
        event_type="alert",
        incidents=incidents,
        shared=group,
        sent_at=sent_at,
    )
