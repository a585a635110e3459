"""ServiceNow: an `incident` record per incident, through the Table API.

- An incident that carries its ServiceNow record's `sys_id` (the label
  `servicenow_sys_id`, as a generic webhook sent by a ServiceNow business rule can; 32
  hex characters, one path segment, checked) is told on that record: `work_notes` on
  `PATCH /api/now/table/incident/{sys_id}`, and on a success notice with
  `resolve_on_success`, `state` 6 (Resolved) with `close_code` and `close_notes`.
- Any other follows app/escalation/tickets.py: found by `correlation_id` (the ticket key)
  with `GET /api/now/table/incident?sysparm_query=correlation_id=<key>^ORDERBYDESC
  sys_created_on`; opened with `POST /api/now/table/incident` (short description, the
  story as description, caller, assignment group, category, urgency and impact from the
  severity, `correlation_id`, `correlation_display: remediator`); told with `work_notes`;
  a Resolved record (state 6) reopened to In Progress (2); a Closed or Canceled one
  (7, 8) is final, so a new record is opened; a success notice resolves the record when
  the runbook says `resolve_on_success`, and so does the incident resolving on its
  platform after the remediation escalated.

Auth: basic, or OAuth client credentials (`POST /oauth_token.do`, the token kept until a
minute before it expires).

What a payload may fill: only text fields. Journal fields render HTML between `[code]`
tags, so any `[code]` in the text is broken; the short description is one line of at
most 160 characters. A sys_id from an answer is used in a path only in its 32-hex form.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any
from urllib.parse import quote

import httpx

from app.config.sections import ServiceNowTarget
from app.errors import EscalationError
from app.escalation.base import (
    INCIDENT_RESOLVED,
    REMEDIATED,
    EscalationMessage,
    call_json,
    level,
    once,
    story,
)
from app.escalation.tickets import Ticket, follow_incident
from app.fields.sinks import path_segment

SYS_ID = re.compile(r"[0-9a-f]{32}")
_CODE_TAG = re.compile(r"\[(/?code)\]", re.IGNORECASE)
RESOLVED, CLOSED, CANCELED, IN_PROGRESS = "6", "7", "8", "2"
# Urgency and impact (1 high, 2 medium, 3 low) from the incident's severity.
URGENCY = {"critical": "1", "high": "1", "medium": "2", "low": "3", "info": "3"}
IMPACT = {"critical": "1", "high": "2", "medium": "2", "low": "3", "info": "3"}


def inert(text: str) -> str:
    """Text a journal or description field shows as written, within its 4,000
    characters (the base instance's length for each)."""
    return _CODE_TAG.sub(r"[ \1]", text)[:4000]


class ServiceNowNotifier:
    name = "servicenow"
    follows_incident = True

    def __init__(self, config: ServiceNowTarget) -> None:
        self.config = config
        self.base = config.url.rstrip("/")
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        labels = message.execution.incident.get("labels") or {}
        sys_id = path_segment(labels.get("servicenow_sys_id"), SYS_ID)
        if sys_id is None:
            follow_incident(self, message, client)
            return
        record = Ticket(sys_id, open=True)
        text = story(message)
        once(message.progress, "comment", lambda: self.comment(record, text, client))
        if message.reason in (REMEDIATED, INCIDENT_RESOLVED) and self.closes(message):
            once(message.progress, "close", lambda: self.close(record, text, client))

    def find(self, key: str, client: httpx.Client) -> Ticket | None:
        query = quote(f"correlation_id={key}^ORDERBYDESCsys_created_on", safe="=^")
        found = self._call(client, "GET", f"/api/now/table/incident?sysparm_query={query}"
                           "&sysparm_limit=1&sysparm_fields=sys_id,state,number", None)  # fmt: skip
        records = found.get("result") if isinstance(found, dict) else None
        if not isinstance(records, list) or not records or not isinstance(records[0], dict):
            return None
        sys_id, state = records[0].get("sys_id"), str(records[0].get("state"))
        if not isinstance(sys_id, str) or not SYS_ID.fullmatch(sys_id):
            raise EscalationError("servicenow answered a sys_id that is not one")
        return Ticket(sys_id, open=state not in (RESOLVED, CLOSED, CANCELED),
                      reopenable=state == RESOLVED)  # fmt: skip

    def open(self, key: str, message: EscalationMessage, client: httpx.Client) -> None:
        config = self.config
        record = {
            "short_description": " ".join(message.headline.split())[:160],
            "description": inert(story(message)),
            "correlation_id": key,
            "correlation_display": "remediator",
            "urgency": level(message, URGENCY, notice="3", default="2"),
            "impact": level(message, IMPACT, notice="3", default="2"),
            **{field: value for field, value in (
                ("caller_id", config.caller), ("assignment_group", config.assignment_group),
                ("category", config.category)) if value},
        }  # fmt: skip
        self._call(client, "POST", "/api/now/table/incident", record)

    def comment(self, ticket: Ticket, text: str, client: httpx.Client) -> None:
        self._patch(client, ticket, {"work_notes": inert(text)})

    def reopen(self, ticket: Ticket, client: httpx.Client) -> None:
        self._patch(client, ticket, {"state": IN_PROGRESS})

    def close(self, ticket: Ticket, text: str, client: httpx.Client) -> None:
        self._patch(client, ticket, {"state": RESOLVED, "close_code": self.config.close_code,
                                     "close_notes": inert(text)})  # fmt: skip

    def closes(self, message: EscalationMessage) -> bool:
        return message.resolve or message.reason == INCIDENT_RESOLVED

    def _patch(self, client: httpx.Client, ticket: Ticket, fields: dict[str, str]) -> None:
        self._call(client, "PATCH", f"/api/now/table/incident/{ticket.id}", fields)

    def _call(self, client: httpx.Client, method: str, path: str, body: Any) -> Any:
        try:
            return call_json(
                client, self.name, method, self.base + path, timeout_s=self.config.timeout_s,
                headers={"authorization": self._auth(client), "accept": "application/json"},
                content=None if body is None else json.dumps(body).encode(),
            )  # fmt: skip
        except EscalationError as exc:
            if exc.status != 401 or self.config.client_id is None:
                raise
            # An OAuth token revoked or expired early: forget it, and let the retry
            # fetch a new one (a refused client is told by the token endpoint itself).
            with self._lock:
                self._token = None
            raise EscalationError(str(exc), status=401) from exc

    def _auth(self, client: httpx.Client) -> str:
        config = self.config
        if config.client_id is None or config.client_secret is None:
            password = config.password.get_secret_value() if config.password else ""
            return httpx.BasicAuth(config.username or "", password)._auth_header
        with self._lock:
            if self._token is not None and self._token[1] > time.monotonic():
                return f"Bearer {self._token[0]}"
        try:
            answer = client.post(
                f"{self.base}/oauth_token.do", timeout=config.timeout_s,
                data={"grant_type": "client_credentials", "client_id": config.client_id,
                      "client_secret": config.client_secret.get_secret_value()},
            )  # fmt: skip
        except httpx.HTTPError as exc:
            raise EscalationError(f"servicenow unreachable: {type(exc).__name__}") from exc
        if not answer.is_success:
            raise EscalationError(f"servicenow refused the OAuth client ({answer.status_code})",
                                  retryable=answer.status_code not in (400, 401))  # fmt: skip
        try:
            token = answer.json()
            access, lasts = token["access_token"], float(token.get("expires_in") or 1800)
        except (ValueError, TypeError, KeyError, AttributeError):
            raise EscalationError("servicenow answered no access_token") from None
        if not isinstance(access, str) or not access:
            raise EscalationError("servicenow answered no access_token")
        with self._lock:
            self._token = (access, time.monotonic() + max(0.0, lasts - 60))
        return f"Bearer {access}"
