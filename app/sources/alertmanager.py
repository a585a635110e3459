"""Prometheus Alertmanager, webhook_config payload version 4.

Verification: `Authorization: Bearer <token>` (Alertmanager's `http_config.authorization`).

Mapping, one Incident per alert of the group (each its own fingerprint):
- status: the alert's `status` (firing|resolved), not the group's;
- title: `annotations.summary`, else `labels.alertname`;
- severity: `labels.severity` (critical; error/high/major → high; warning → medium;
  minor/low → low; info/none → info; absent or other → medium);
- service: `labels.service`, else `labels.job`, else `labels.app`;
- labels/annotations: the alert's own, on top of the group's common ones;
- url: the alert's `generatorURL`, else the group's `externalURL`;
- fingerprint: the alert's `fingerprint` (a hash of its labels where absent);
- event_type: `alert.firing` or `alert.resolved`; raw: the whole group payload.

Delivery id: Alertmanager sends none, so it is a hash of the body. A notification
repeated on `repeat_interval` is byte-identical and so is recognised as a duplicate; a
new firing has a new `startsAt` and is new.
"""

from __future__ import annotations

from typing import Any

from app.config import SourceConfig
from app.errors import UnsupportedPayload
from app.incident import Incident
from app.sources.base import (
    Delivery,
    WebhookRequest,
    body_digest,
    require_token,
    severity_from,
    stable_fingerprint,
    string_map,
    verify_bearer,
)


class AlertmanagerSource:
    name = "alertmanager"

    def check_config(self, config: SourceConfig) -> None:
        require_token(self.name, config)

    def verify(self, request: WebhookRequest, config: SourceConfig) -> None:
        verify_bearer(request, config)

    def normalise(self, payload: Any, request: WebhookRequest) -> Delivery:
        if not isinstance(payload, dict):
            raise UnsupportedPayload("an Alertmanager notification is a JSON object")
        version = payload.get("version")
        if str(version) != "4":
            raise UnsupportedPayload(f'`version` must be "4" (Alertmanager), got {version!r}')
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise UnsupportedPayload("`alerts` must be a list")
        delivery_id = "sha256:" + body_digest(request.body)
        common_labels = string_map(payload.get("commonLabels"))
        common_annotations = string_map(payload.get("commonAnnotations"))
        incidents = [
            self._incident(
                alert, index, payload, delivery_id, request, common_labels, common_annotations
            )
            for index, alert in enumerate(alerts)
        ]
        return Delivery(delivery_id=delivery_id, event_type="alert", incidents=incidents)

    def _incident(
        self,
        alert: Any,
        index: int,
        payload: dict[str, Any],
        delivery_id: str,
        request: WebhookRequest,
        common_labels: dict[str, str],
        common_annotations: dict[str, str],
    ) -> Incident:
        if not isinstance(alert, dict):
            raise UnsupportedPayload(f"alerts[{index}] must be an object")
        status = alert.get("status")
        if status not in ("firing", "resolved"):
            raise UnsupportedPayload(f"alerts[{index}].status must be firing or resolved")
        if not isinstance(alert.get("labels"), dict):
            raise UnsupportedPayload(f"alerts[{index}].labels must be an object")
        labels = common_labels | string_map(alert["labels"])
        annotations = common_annotations | string_map(alert.get("annotations"))
        title = annotations.get("summary") or labels.get("alertname") or "Alertmanager alert"
        fingerprint = alert.get("fingerprint")
        url = alert.get("generatorURL") or payload.get("externalURL")
        return Incident(
            source=self.name,
            delivery_id=delivery_id,
            event_type=f"alert.{status}",
            status=status,
            title=title,
            severity=severity_from(labels.get("severity")),
            service=labels.get("service") or labels.get("job") or labels.get("app"),
            labels=labels,
            annotations=annotations,
            url=url if isinstance(url, str) and url else None,
            fingerprint=fingerprint
            if isinstance(fingerprint, str) and fingerprint
            else stable_fingerprint(labels),
            received_at=request.received_at,
            raw=payload,
        )
