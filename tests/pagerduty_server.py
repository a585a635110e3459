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

from tests.contracts import problems as contract_problems
from tests.contracts import request_schema
from tests.loopback import answer_json, serving

NOTES_PATH = re.compile(r"^/incidents/([A-Z0-9]+)/notes$")
EVENTS_SCHEMA = request_schema("pagerduty-events-v2-openapi.json", "/enqueue")
NOTES_SCHEMA = request_schema("pagerduty-rest-openapi.json", "/incidents/{id}/notes")


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
    # Answers to give before the normal one: (status, headers, body).
    script: list[tuple[int, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


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
                if found or not body.get("routing_key") or not body.get("payload"):
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
                if headers.get("authorization") != f"Token token={api_token}":
                    return self._answer(
                        401, {}, {"error": {"message": "Unauthorized", "code": 2006}}
                    )
                if "@" not in headers.get("from", ""):
                    return self._answer(
                        400,
                        {},
                        {
                            "error": {
                                "message": "Invalid Input Provided",
                                "code": 2001,
                                "errors": ["From header is required"],
                            }
                        },
                    )
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

        def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
            answer_json(self, status, body, headers)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        box["pd"] = PagerDuty(url=base)
        yield box["pd"]
