"""A local stand-in for PagerDuty's Events API v2 and REST API: it checks each request
against PagerDuty's published OpenAPI files (when `../shared/contracts/` is present) and
against the documented headers, and answers as PagerDuty does, including the error and
rate-limit answers a test scripts for it."""

from __future__ import annotations

import http.server
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.contracts import problems as contract_problems
from tests.support.contracts import request_schema
from tests.support.loopback import answer_json, serving

NOTES_PATH = re.compile(r"^/incidents/([A-Z0-9]+)/notes$")
INCIDENT_PATH = re.compile(r"^/incidents/([A-Z0-9]+)$")
EVENTS_SCHEMA = request_schema("pagerduty-events-v2-openapi.json", "/enqueue")
NOTES_SCHEMA = request_schema("pagerduty-rest-openapi.json", "/incidents/{id}/notes")
UPDATE_SCHEMA = request_schema("pagerduty-rest-openapi.json", "/incidents/{id}", "put")


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class PagerDuty:
    url: str
    events: list[Received] = field(default_factory=list)
    notes: list[Received] = field(default_factory=list)
    # PUT /incidents/{id}: status changes (a resolve), in order.
    updates: list[Received] = field(default_factory=list)
    # Answers to give before the normal one: (status, headers, body).
    script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # Answers to give to PUT /incidents/{id} before the normal one.
    update_script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)


@contextmanager
def pagerduty_server(api_token: str) -> Iterator[PagerDuty]:
    box: dict[str, PagerDuty] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            state = box["pd"]
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                body = json.loads(raw)
            except ValueError:
                return self._answer(
                    400,
                    {},
                    {
                        "status": "invalid event",
                        "message": "Event object is invalid",
                        "errors": ["not JSON"],
                    },
                )
            if headers.get("content-type", "").split(";")[0] != "application/json":
                state.problems.append(f"content-type {headers.get('content-type')}")
            if state.script:
                return self._answer(*state.script.pop(0))
            if self.path == "/v2/enqueue":
                found = contract_problems(EVENTS_SCHEMA, body)
                # `payload` is required to trigger; `dedup_key` to acknowledge or resolve.
                action = body.get("event_action")
                missing = (
                    not body.get("payload") if action == "trigger" else not body.get("dedup_key")
                )
                if found or not body.get("routing_key") or missing:
                    state.problems.extend(found)
                    return self._answer(
                        400,
                        {},
                        {
                            "status": "invalid event",
                            "message": "Event object is invalid",
                            "errors": found,
                        },
                    )
                state.events.append(Received(self.path, headers, body))
                return self._answer(
                    202,
                    {},
                    {
                        "status": "success",
                        "message": "Event processed",
                        "dedup_key": body.get("dedup_key"),
                    },
                )
            if NOTES_PATH.match(self.path):
                refused = self._rest_refusal(headers)
                if refused is not None:
                    return self._answer(*refused)
                found = contract_problems(NOTES_SCHEMA, body)
                if found:
                    state.problems.extend(found)
                    return self._answer(
                        400,
                        {},
                        {
                            "error": {
                                "message": "Invalid Input Provided",
                                "code": 2001,
                                "errors": found,
                            }
                        },
                    )
                state.notes.append(Received(self.path, headers, body))
                return self._answer(
                    201,
                    {},
                    {"note": {"id": f"PN{len(state.notes)}", "content": body["note"]["content"]}},
                )
            return self._answer(404, {}, {"error": {"message": "Not Found", "code": 2100}})

        def do_PUT(self) -> None:  # noqa: N802
            state = box["pd"]
            raw = self.rfile.read(int(self.headers.get("content-length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            match = INCIDENT_PATH.match(self.path)
            if match is None:
                return self._answer(404, {}, {"error": {"message": "Not Found", "code": 2100}})
            refused = self._rest_refusal(headers)
            if refused is not None:
                return self._answer(*refused)
            body = json.loads(raw)
            found = contract_problems(UPDATE_SCHEMA, body)
            if found or not isinstance(body.get("incident"), dict):
                state.problems.extend(found or ["incident: required"])
                errors = {"message": "Invalid Input Provided", "code": 2001, "errors": found}
                return self._answer(400, {}, {"error": errors})
            if state.update_script:
                return self._answer(*state.update_script.pop(0))
            state.updates.append(Received(self.path, headers, body))
            incident = {"id": match.group(1), "type": "incident",
                        "status": body["incident"].get("status", "triggered")}  # fmt: skip
            return self._answer(200, {}, {"incident": incident})

        def _rest_refusal(
            self, headers: dict[str, str]
        ) -> tuple[int, dict[str, str], dict[str, Any]] | None:
            """The REST API's answer to a call without its token or its `From` header."""
            if headers.get("authorization") != f"Token token={api_token}":
                return 401, {}, {"error": {"message": "Unauthorized", "code": 2006}}
            if "@" not in headers.get("from", ""):
                errors = ["From header is required"]
                return 400, {}, {"error": {"message": "Invalid Input Provided", "code": 2001,
                                           "errors": errors}}  # fmt: skip
            return None

        def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
            answer_json(self, status, body, headers)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        box["pd"] = PagerDuty(url=base)
        yield box["pd"]
