"""Rootly: the story on the incident's timeline when the incident came from Rootly, and
an alert that pages (or, for an approval notice, only informs).

Endpoints (Rootly's published API, base `https://api.rootly.com`, JSON:API bodies,
`Authorization: Bearer`, `Content-Type: application/vnd.api+json`):
- `POST /v1/incidents/{incident_id}/events` (`data.type: incident_events`, internal
  visibility): what was attempted, each step and attempt, on the Rootly incident the
  responders already have; only for incidents from the `rootly` source.
- `POST /v1/alerts` (`data.type: alerts`, source `api`): the headline, the story as
  description, the execution as `external_url`, the incident's labels, and
  `notification_target_type`/`_id` from the configuration, so Rootly On-Call pages that
  escalation policy, team, service or user directly; without a target, or for the
  approval notice, the alert informs without paging. (`POST /v1/alerts/{id}/escalate`
  is not needed: the notification target on creation already routes the page.)
Rootly has no dedup key on alert creation: `external_id` carries the incident key
(`remediator/<source>/<fingerprint>`) so repeats can be grouped by Rootly's alert rules.
The timeline event is recorded as done once posted, so a retry after the alert failed
(or after a crash) does not post it twice.

A success notice (`notify_on_success`) raises no alert: on the Rootly incident it came
from, a timeline event "remediated automatically by <runbook> in 42 s: ..." and, with
`resolve_on_success`, `PUT /v1/incidents/{id}/resolve` (`data.type: incidents`, the
notice as `resolution_message`). An incident from elsewhere has no Rootly incident to
tell: nothing is sent. Each call is recorded as done once it lands.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from app.config.sections import RootlyTarget
from app.escalation.base import (
    DIAGNOSED,
    REMEDIATED,
    EscalationMessage,
    dedup_key,
    note_text,
    notice_text,
    once,
    own_id,
    post_json,
)

JSON_API = "application/vnd.api+json"
# Rootly record ids: UUIDs (and slugs of letters, digits, `-`, `_`).
INCIDENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def alert_body(message: EscalationMessage, config: RootlyTarget) -> dict[str, Any]:
    execution = message.execution
    incident = execution.incident
    labels = [
        {"key": "runbook", "value": execution.runbook},
        {"key": "reason", "value": message.reason},
    ]
    labels += [{"key": str(k), "value": str(v)} for k, v in (incident.get("labels") or {}).items()]
    attributes: dict[str, Any] = {
        "source": "api",
        "summary": message.headline,
        "description": note_text(message),
        "external_id": dedup_key(message),
        "external_url": message.execution_url,
        "labels": labels[:50],
        "data": {"execution": execution.model_dump(mode="json")},
    }
    if config.notification_target_type and message.reason != "waiting_approval":
        attributes["notification_target_type"] = config.notification_target_type
        attributes["notification_target_id"] = config.notification_target_id
    return {"data": {"type": "alerts", "attributes": attributes}}


class RootlyNotifier:
    name = "rootly"
    follows_incident = False

    def __init__(self, config: RootlyTarget) -> None:
        self.config = config

    def _send(
        self, client: httpx.Client, what: str, path: str, body: dict[str, Any], method: str = "POST"
    ) -> None:
        post_json(
            client, f"{self.name} ({what})", f"{self.config.base_url.rstrip('/')}{path}",
            content=json.dumps(body).encode(),
            headers={"authorization": f"Bearer {self.config.api_token.get_secret_value()}",
                     "content-type": JSON_API, "accept": JSON_API},
            timeout_s=self.config.timeout_s, method=method,
        )  # fmt: skip

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        incident_id = own_id(message, "rootly", "rootly_incident_id", INCIDENT_ID)
        if message.reason in (REMEDIATED, DIAGNOSED):
            if incident_id is not None:
                self._notice(message, client, incident_id)
            return
        if incident_id is not None:
            self._timeline(message, client, incident_id, note_text(message))
        self._send(client, "alert", "/v1/alerts", alert_body(message, self.config))

    def _timeline(
        self, message: EscalationMessage, client: httpx.Client, incident_id: str, text: str
    ) -> None:
        attributes = {"event": text, "visibility": "internal"}
        event = {"data": {"type": "incident_events", "attributes": attributes}}
        path = f"/v1/incidents/{incident_id}/events"
        once(message.progress, "timeline",
             lambda: self._send(client, "timeline event", path, event))  # fmt: skip

    def _notice(self, message: EscalationMessage, client: httpx.Client, incident_id: str) -> None:
        text = notice_text(message)
        self._timeline(message, client, incident_id, text)
        if message.resolve:
            attributes = {"resolution_message": text}
            body = {"data": {"type": "incidents", "attributes": attributes}}
            path = f"/v1/incidents/{incident_id}/resolve"
            once(message.progress, "resolve",
                 lambda: self._send(client, "resolve", path, body, method="PUT"))  # fmt: skip
