"""ServiceNow as the tests play it: the Table API on `incident` (GET with sysparm_query,
POST, PATCH by sys_id) and the OAuth token endpoint, as its REST API reference describes
them (tests/fixtures/contracts/servicenow-table-api.json): basic auth or a client
credentials token; fields checked against the incident table's (unknown ones refused,
lengths, choice values); a Resolved record needs its close code and notes; journal
fields appended; errors as `{"error": {"message", "detail"}, "status": "failure"}`."""

from __future__ import annotations

import base64
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.contracts import contract
from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json

USERNAME, PASSWORD = "remediator.integration", "snow-password-0123"
CLIENT_ID, CLIENT_SECRET = "4fa4e6b1c0d04a6c9e2b7c1d2e3f4a5b", "snow-client-secret"
RECORD = re.compile(r"^/api/now/table/incident/(?P<sys_id>[0-9a-f]{32})$")


@dataclass
class ServiceNowStandIn(LoopbackStandIn):
    handler_name = "snow"
    records: list[dict[str, Any]] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    script: list[int] = field(default_factory=list)

    def record(self, sys_id: str) -> dict[str, Any] | None:
        return next((r for r in self.records if r["sys_id"] == sys_id), None)

    def add(self, **fields: Any) -> dict[str, Any]:
        """A record made on the ServiceNow side (by a person, or a business rule)."""
        record = {"sys_id": secrets.token_hex(16), "number": f"INC{1000 + len(self.records):07d}",
                  "state": "1", "work_notes": [], **fields}  # fmt: skip
        self.records.append(record)
        return record

    def handler_class(self) -> type[StandInHandler]:
        return _Handler


class _Handler(StandInHandler):
    snow: ServiceNowStandIn

    def refuse(self, status: int, why: str) -> None:
        self.violations.append(f"{self.command} {self.path}: {why}")
        answer_json(self, status, {"error": {"message": why, "detail": ""}, "status": "failure"})

    def do_PATCH(self) -> None:  # noqa: N802
        self.answer("PATCH", self._body())

    def answer(self, method: str, raw: bytes) -> None:
        snow, parts = self.snow, urlsplit(self.path)
        with snow.lock:
            snow.calls.append(f"{method} {parts.path}")
            scripted = snow.script.pop(0) if snow.script else None
        if method == "POST" and parts.path == "/oauth_token.do":
            self._token(raw)
            return
        if not self._authorised():
            answer_json(self, 401, {"error": {"message": "User Not Authenticated",
                                              "detail": "Required to provide Auth information"},
                                    "status": "failure"})  # fmt: skip
            return
        if scripted is not None:
            answer_json(self, scripted, {"error": {"message": "Service unavailable", "detail": ""},
                                         "status": "failure"}, {"Retry-After": "1"})  # fmt: skip
            return
        if method == "GET" and parts.path == "/api/now/table/incident":
            self._query(parse_qs(parts.query))
        elif method == "POST" and parts.path == "/api/now/table/incident":
            fields = self._fields(raw, new=True)
            if fields is not None:
                record = snow.add(**{k: v for k, v in fields.items() if k != "work_notes"})
                answer_json(self, 201, {"result": self._shown(record)})
        elif method == "PATCH" and (match := RECORD.match(parts.path)):
            found = snow.record(match["sys_id"])
            fields = self._fields(raw, new=False)
            if found is None:
                self.refuse(404, "No Record found")
            elif fields is not None and self._may_change(found, fields):
                notes = fields.pop("work_notes", None)
                if notes is not None:
                    found["work_notes"].append(notes)
                found.update(fields)
                answer_json(self, 200, {"result": self._shown(found)})
        else:
            self.refuse(400, f"no {method} {parts.path} here")

    def _authorised(self) -> bool:
        given = self.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
        return given == basic or given.removeprefix("Bearer ") in self.snow.tokens

    def _token(self, raw: bytes) -> None:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if (form.get("grant_type"), form.get("client_id"), form.get("client_secret")) != (
                "client_credentials", CLIENT_ID, CLIENT_SECRET):  # fmt: skip
            answer_json(self, 401, {"error_description": "access_denied", "error": "server_error"})
            return
        token = secrets.token_urlsafe(24)
        self.snow.tokens.append(token)
        answer_json(self, 200, {"access_token": token, "scope": "useraccount",
                                "token_type": "Bearer", "expires_in": 1799})  # fmt: skip

    def _query(self, query: dict[str, list[str]]) -> None:
        asked = query.get("sysparm_query", [""])[0]
        match = re.fullmatch(r"correlation_id=([A-Za-z0-9-]+)\^ORDERBYDESCsys_created_on", asked)
        if match is None:
            self.refuse(400, f"unexpected sysparm_query {asked!r}")
            return
        found = [r for r in reversed(self.snow.records) if r.get("correlation_id") == match[1]]
        limit = int(query.get("sysparm_limit", ["10000"])[0])
        wanted = query.get("sysparm_fields", [""])[0].split(",")
        answer_json(self, 200, {"result": [{k: v for k, v in self._shown(r).items() if k in wanted}
                                           for r in found[:limit]]})  # fmt: skip

    def _fields(self, raw: bytes, *, new: bool) -> dict[str, Any] | None:
        """The body's fields if the incident table has them, each a string in its limits."""
        table = contract("servicenow-table-api.json")["incident"]
        try:
            body = json.loads(raw)
        except ValueError:
            self.refuse(400, "Exception while reading request")
            return None
        wrong = [f"{name}: not a field of incident" for name in body if name not in table["fields"]]
        for name, value in body.items():
            limit = table["fields"].get(name)
            if limit is not None and (not isinstance(value, str) or len(value) > limit):
                wrong.append(f"{name}: a string of at most {limit} characters")
        for name, choices in table["choices"].items():
            if name in body and body[name] not in choices:
                wrong.append(f"{name}: {body[name]!r} is not a choice")
        if new and not body.get("short_description"):
            wrong.append("short_description: mandatory")
        if wrong:
            self.refuse(400, "; ".join(wrong))
            return None
        return dict(body)

    def _may_change(self, record: dict[str, Any], fields: dict[str, Any]) -> bool:
        """The incident form's data policy: Resolved needs a close code and close notes;
        a Closed or Canceled record is read-only."""
        if record["state"] in ("7", "8"):
            self.refuse(403, "Operation against file 'incident' was aborted by Business Rule")
            return False
        if fields.get("state") == "6" and not (
            fields.get("close_code") and fields.get("close_notes")
        ):
            self.refuse(
                403, "Data Policy Exception: Resolution code, Resolution notes are mandatory"
            )
            return False
        return True

    def _shown(self, record: dict[str, Any]) -> dict[str, Any]:
        return {k: ("\n\n".join(v) if k == "work_notes" else v) for k, v in record.items()}
