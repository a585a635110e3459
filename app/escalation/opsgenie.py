"""Opsgenie: an alert through the Alert API, or a note on the alert it came from.
(Atlassian ends Opsgenie support in April 2027: this target stays small.)

Endpoints (Opsgenie Alert API v2, `Authorization: GenieKey <api_key>`; both answer 202
and process the request asynchronously):
- an incident from the `opsgenie` source: `POST /v2/alerts/{alertId}/notes` with what
  automation tried, on the alert the responders already have;
- any other: `POST /v2/alerts` with `alias` tied to the incident
  (`remediator/<source>/<fingerprint>`), which Opsgenie deduplicates on while the alert
  is open, so a retried delivery does not open a second alert. `message` is the
  headline (130 characters at most), `description` the steps and attempts, `details`
  the runbook, status and execution URL, `priority` from the severity (critical → P1,
  high → P2, medium → P3, low → P4, info and the approval notice → P5), and
  `responders` from the configuration.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from app.config import OpsgenieTarget
from app.escalation.base import EscalationMessage, dedup_key, level, note_text, post_json
from app.sinks import path_segment

# Opsgenie alert ids are UUIDs, with a `-<epoch ms>` suffix on older accounts.
ALERT_ID = re.compile(r"[A-Za-z0-9-]{1,128}")
PRIORITY = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4", "info": "P5"}


def alert_body(message: EscalationMessage, responders: list[dict[str, str]]) -> dict[str, Any]:
    execution = message.execution
    incident = execution.incident
    details = {
        "runbook": execution.runbook,
        "reason": message.reason,
        "status": execution.status,
        "execution_url": message.execution_url,
        "api_url": message.api_url,
        "incident_source": str(incident.get("source")),
        "incident_url": str(incident.get("url") or ""),
    }
    body: dict[str, Any] = {
        "message": message.headline[:130],
        "alias": dedup_key(message)[:512],
        "description": note_text(message)[:15000],
        "details": {k: v for k, v in details.items() if v},
        "tags": ["remediator", message.reason],
        "source": "remediator",
        "priority": level(message, PRIORITY, notice="P5", default="P3"),
    }
    if incident.get("service"):
        body["entity"] = str(incident["service"])[:512]
    if responders:
        body["responders"] = responders
    return body


class OpsgenieNotifier:
    name = "opsgenie"

    def __init__(self, config: OpsgenieTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        incident = message.execution.incident
        alert_id = path_segment((incident.get("labels") or {}).get("opsgenie_alert_id"), ALERT_ID)
        base = self.config.base_url.rstrip("/")
        if incident.get("source") == "opsgenie" and alert_id:
            url = f"{base}/v2/alerts/{alert_id}/notes?identifierType=id"
            body: dict[str, Any] = {"note": note_text(message)[:25000], "source": "remediator"}
        else:
            url = f"{base}/v2/alerts"
            body = alert_body(message, self.config.responders)
        post_json(
            client, self.name, url, content=json.dumps(body).encode(),
            headers={"authorization": f"GenieKey {self.config.api_key.get_secret_value()}"},
            timeout_s=self.config.timeout_s,
        )  # fmt: skip
