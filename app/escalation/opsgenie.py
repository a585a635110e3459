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

A success notice (`notify_on_success`) opens no alert: on the alert the incident came
from, a note "remediated automatically by <runbook> in 42 s: ..." and, with
`resolve_on_success`, `POST /v2/alerts/{id}/close?identifierType=id`. For any other
incident, `resolve_on_success` closes the alert remediator opened for it, by its alias
(`/v2/alerts/<alias, percent-encoded>/close?identifierType=alias`; Opsgenie answers 202
and ignores it when there is none). Each call is recorded as done once it lands.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from app.config.sections import OpsgenieTarget
from app.escalation.base import (
    DIAGNOSED,
    REMEDIATED,
    EscalationMessage,
    dedup_key,
    level,
    note_text,
    notice_text,
    once,
    own_id,
    post_json,
)
from app.fields.sinks import url_part

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
    follows_incident = False

    def __init__(self, config: OpsgenieTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        alert_id = own_id(message, "opsgenie", "opsgenie_alert_id", ALERT_ID)
        if message.reason in (REMEDIATED, DIAGNOSED):
            self._notice(message, client, alert_id)
        elif alert_id is not None:
            note = {"note": note_text(message)[:25000], "source": "remediator"}
            self._post(client, f"/v2/alerts/{alert_id}/notes?identifierType=id", note)
        else:
            self._post(client, "/v2/alerts", alert_body(message, self.config.responders))

    def _notice(
        self, message: EscalationMessage, client: httpx.Client, alert_id: str | None
    ) -> None:
        note = {"note": notice_text(message), "source": "remediator"}
        if alert_id is not None:
            notes = f"/v2/alerts/{alert_id}/notes?identifierType=id"
            once(message.progress, "note", lambda: self._post(client, notes, note))
            close = f"/v2/alerts/{alert_id}/close?identifierType=id"
        else:
            # The alert remediator opened for this incident, if it did.
            close = f"/v2/alerts/{url_part(dedup_key(message)[:512])}/close?identifierType=alias"
        if message.resolve:
            once(message.progress, "resolve", lambda: self._post(client, close, note))

    def _post(self, client: httpx.Client, path: str, body: dict[str, Any]) -> None:
        post_json(
            client, self.name, f"{self.config.base_url.rstrip('/')}{path}",
            content=json.dumps(body).encode(),
            headers={"authorization": f"GenieKey {self.config.api_key.get_secret_value()}"},
            timeout_s=self.config.timeout_s,
        )  # fmt: skip
