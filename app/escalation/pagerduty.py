"""PagerDuty: a page through the Events API v2, and a note on the incident when it came
from PagerDuty.

Endpoints (PagerDuty's published contracts):
- `POST {events_url}/v2/enqueue` (Events API v2), `event_action: trigger`. The
  `dedup_key` is tied to the incident (`remediator/<source>/<fingerprint>`), so a retried
  delivery, or a second escalation for the same incident, groups into the one alert
  instead of paging twice. `payload.custom_details` carries the runbook, each step and
  attempt (exit status, duration, output tail) and the execution; `links` and
  `client_url` point at the execution. Severity: critical → critical, high → error,
  medium → warning, low/info → info; the approval notice is always `info`.
- `POST {api_url}/incidents/{id}/notes` (REST API v2, `Authorization: Token token=...`,
  `From: <from_email>`), only when the incident came from the `pagerduty` source and
  `api_token` is configured: the responders see on their own incident what automation
  tried. The page is sent first and recorded as done, so a retry after the note
  failed (or after a crash) sends only the note.

A success notice (`notify_on_success`) pages nobody: on the PagerDuty incident it came
from, a note "remediated automatically by <runbook> in 42 s: ..." and, with
`resolve_on_success`, `PUT {api_url}/incidents/{id}` with `status: resolved` (the
`From` header names who resolved it). For any other incident, `resolve_on_success` sends
an Events API v2 `resolve` with the incident's dedup key: the page remediator raised for
it, if any, is resolved (PagerDuty drops a resolve that matches no open alert). Each
call is recorded as done once it lands, so a retry repeats none.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from app.config.sections import PagerDutyTarget
from app.errors import EscalationError
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
    steps_detail,
)

# PagerDuty object ids: letters and digits (PT4KHLK, Q0RIJJZL24RC6W).
INCIDENT_ID = re.compile(r"[A-Za-z0-9]{1,32}")
SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info"}


def event_body(message: EscalationMessage, routing_key: str) -> dict[str, Any]:
    execution = message.execution
    incident = execution.incident
    links = [{"href": message.execution_url, "text": "remediator execution"}]
    if incident.get("url"):
        links.append({"href": incident["url"], "text": f"incident in {incident.get('source')}"})
    return {
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key(message),
        "client": "remediator",
        "client_url": message.execution_url,
        "links": links,
        # PagerDuty's schema has no nulls: optional fields are left out instead.
        "payload": {
            k: v
            for k, v in {
                "summary": message.headline[:1024],
                "source": incident.get("service") or str(incident.get("source")),
                "severity": level(message, SEVERITY, notice="info", default="info"),
                "component": incident.get("service"),
                "group": execution.runbook,
                "class": message.reason,
                "custom_details": {
                    "reason": message.reason,
                    "runbook": {
                        "name": execution.runbook,
                        "description": message.runbook_description,
                    },
                    "status": execution.status,
                    "error": execution.error,
                    "guard": execution.guard,
                    "incident": {
                        k: incident.get(k)
                        for k in (
                            "source",
                            "title",
                            "severity",
                            "service",
                            "url",
                            "fingerprint",
                            "labels",
                        )
                    },
                    "steps": steps_detail(message),
                    "execution_url": message.execution_url,
                    "api_url": message.api_url,
                },
            }.items()
            if v is not None
        },
    }


class PagerDutyNotifier:
    name = "pagerduty"
    follows_incident = False

    def __init__(self, config: PagerDutyTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        if message.reason in (REMEDIATED, DIAGNOSED):
            self._notice(message, client)
            return
        body = event_body(message, self.config.routing_key.get_secret_value())
        once(message.progress, "page", lambda: self._event(client, body))
        pagerduty_id = self._own_incident(message)
        if pagerduty_id is not None:
            note = {"note": {"content": note_text(message)}}
            self._rest(client, "incident note", "POST", f"/incidents/{pagerduty_id}/notes", note)

    def _notice(self, message: EscalationMessage, client: httpx.Client) -> None:
        """A note on the incident it came from (a success, a diagnosis); and for a success,
        with `resolve`, the incident resolved (or the page remediator raised)."""
        pagerduty_id = self._own_incident(message)
        text = notice_text(message)
        if pagerduty_id is not None:
            note = {"note": {"content": text}}
            path = f"/incidents/{pagerduty_id}"
            once(
                message.progress,
                "note",
                lambda: self._rest(client, "incident note", "POST", f"{path}/notes", note),
            )
            if message.resolve:
                status = {"type": "incident_reference", "status": "resolved", "resolution": text}
                once(
                    message.progress,
                    "resolve",
                    lambda: self._rest(client, "resolve", "PUT", path, {"incident": status}),
                )
        elif message.resolve:
            resolve = {
                "routing_key": self.config.routing_key.get_secret_value(),
                "event_action": "resolve",
                "dedup_key": dedup_key(message),
            }
            once(message.progress, "resolve", lambda: self._event(client, resolve))

    def _own_incident(self, message: EscalationMessage) -> str | None:
        """The PagerDuty incident this one came from, when the REST API can reach it."""
        if self.config.api_token is None:
            return None
        return own_id(message, "pagerduty", "pagerduty_incident_id", INCIDENT_ID)

    def _event(self, client: httpx.Client, body: dict[str, Any]) -> None:
        post_json(
            client, self.name, f"{self.config.events_url.rstrip('/')}/v2/enqueue",
            content=json.dumps(body).encode(), headers={}, timeout_s=self.config.timeout_s,
        )  # fmt: skip

    def _rest(
        self, client: httpx.Client, what: str, method: str, path: str, body: dict[str, Any]
    ) -> None:
        token = self.config.api_token
        if token is None:
            raise EscalationError("pagerduty: the REST API needs api_token", retryable=False)
        post_json(
            client, f"{self.name} ({what})", f"{self.config.api_url.rstrip('/')}{path}",
            content=json.dumps(body).encode(),
            headers={
                "authorization": f"Token token={token.get_secret_value()}",
                "accept": "application/vnd.pagerduty+json;version=2",
                "from": self.config.from_email or "",
            },
            timeout_s=self.config.timeout_s, method=method,
        )  # fmt: skip
