"""Escalation to Opsgenie: an alert through the Alert API in its documented shape, or a
note on the alert the incident came from; a rate limit is waited out into one alert."""

from __future__ import annotations

import http.server
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from tests.support.loopback import answer_json, serving
from tests.support.platforms import (
    SIGNERS,
    SOURCES,
    escalated_from,
    fails_on,
    live,
    load,
    remediates,
    send_sample,
    told,
)
from tests.support.service import FAILING_STEP, PLAYBOOKS, Api, alert, delivered, runbook

API_KEY = "eb243592-faa2-4ba2-a551-1afdf565c889"
NOTES = re.compile(r"^/v2/alerts/([^/]+)/notes$")
CLOSE = re.compile(r"^/v2/alerts/([^/]+)/close$")
RESPONDER_TYPES = {"team", "user", "escalation", "schedule"}


@dataclass
class Opsgenie:
    url: str = ""
    alerts: list[dict[str, Any]] = field(default_factory=list)
    notes: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    closes: list[tuple[str, dict[str, str], dict[str, Any]]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def close_problems(query: dict[str, str], body: dict[str, Any]) -> list[str]:
    """The Alert API's Close Alert (`POST /v2/alerts/:identifier/close`): an optional
    `identifierType` of id, tiny or alias; a body of `user`, `source` (at most 100
    characters each) and `note` (at most 25,000), nothing else."""
    problems = []
    if query.get("identifierType", "id") not in {"id", "tiny", "alias"}:
        problems.append(f"identifierType {query.get('identifierType')}")
    for name in set(body) - {"user", "source", "note"}:
        problems.append(f"{name}: not a field of a close request")
    for name, limit in (("user", 100), ("source", 100), ("note", 25000)):
        if name in body and (not isinstance(body[name], str) or len(body[name]) > limit):
            problems.append(f"{name}: a string of at most {limit} characters")
    return problems


def alert_problems(body: dict[str, Any]) -> list[str]:
    """The Alert API's documented limits for `POST /v2/alerts`."""
    problems = []
    if not isinstance(body.get("message"), str) or not 0 < len(body["message"]) <= 130:
        problems.append("message: required, at most 130 characters")
    for name, limit in (("alias", 512), ("description", 15000), ("entity", 512), ("source", 100)):
        if name in body and (not isinstance(body[name], str) or len(body[name]) > limit):
            problems.append(f"{name}: a string of at most {limit} characters")
    if "tags" in body and not all(isinstance(t, str) and len(t) <= 50 for t in body["tags"]):
        problems.append("tags: strings of at most 50 characters")
    if "details" in body and not all(isinstance(v, str) for v in body["details"].values()):
        problems.append("details: a map of strings")
    if body.get("priority", "P3") not in {"P1", "P2", "P3", "P4", "P5"}:
        problems.append("priority: P1..P5")
    for responder in body.get("responders", []):
        if responder.get("type") not in RESPONDER_TYPES or not (
            responder.get("id") or responder.get("name") or responder.get("username")
        ):
            problems.append(f"responders: {responder}")
    return problems


@pytest.fixture
def opsgenie() -> Iterator[Opsgenie]:
    state = Opsgenie()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            if self.headers.get("authorization") != f"GenieKey {API_KEY}":
                return self.answer(
                    401, {"message": "Could not authenticate", "took": 0.0, "requestId": "r"}
                )
            if state.script:
                return self.answer(
                    state.script.pop(0),
                    {"message": "Too many requests", "took": 0.0, "requestId": "r"},
                )
            parts = urlsplit(self.path)
            if parts.path == "/v2/alerts":
                problems = alert_problems(body)
                state.problems.extend(problems)
                if problems:
                    return self.answer(
                        422, {"message": "; ".join(problems), "took": 0.0, "requestId": "r"}
                    )
                state.alerts.append(body)
            elif match := NOTES.match(parts.path):
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                if not isinstance(body.get("note"), str) or len(body["note"]) > 25000:
                    state.problems.append("note: required, at most 25000 characters")
                    return self.answer(422, {"message": "note", "took": 0.0, "requestId": "r"})
                state.notes.append((match.group(1), query, body))
            elif match := CLOSE.match(parts.path):
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                problems = close_problems(query, body)
                state.problems.extend(problems)
                if problems:
                    return self.answer(
                        422, {"message": "; ".join(problems), "took": 0.0, "requestId": "r"}
                    )
                state.closes.append((unquote(match.group(1)), query, body))
            else:
                return self.answer(404, {"message": "Not found", "took": 0.0, "requestId": "r"})
            self.answer(
                202, {"result": "Request will be processed", "took": 0.107, "requestId": "43a29c5c"}
            )

        def answer(self, status: int, body: dict[str, Any]) -> None:
            answer_json(self, status, body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        state.url = base
        yield state


def start(make_api: Any, opsgenie: Opsgenie, runbooks: list[dict[str, Any]]) -> Api:
    target = {
        "api_key": API_KEY,
        "base_url": opsgenie.url,
        "responders": [{"type": "team", "name": "dba"}],
    }
    api: Api = make_api(runbooks, playbooks_dir=str(PLAYBOOKS), escalation={"opsgenie": target},
                        sources=SOURCES, escalation_max_backoff_s=0.5)  # fmt: skip
    return api


def test_failed_remediation_opens_an_alert_with_the_story(
    make_api: Any, opsgenie: Opsgenie
) -> None:
    api = start(make_api, opsgenie, [runbook("fails", "Fail", FAILING_STEP, escalate=["opsgenie"])])
    final = delivered(
        api, api.alertmanager(alert("Fail", fingerprint="fp-og")).json()["executions"][0]
    )
    assert final["escalations"][0]["status"] == "delivered" and opsgenie.problems == []
    [body] = opsgenie.alerts
    assert body["alias"] == "remediator/alertmanager/fp-og" and body["priority"] == "P1"
    assert body["responders"] == [{"type": "team", "name": "dba"}]
    assert body["details"]["execution_url"].endswith(final["id"])
    assert "attempt 1: failed, exit 2" in body["description"]
    assert API_KEY not in json.dumps(body)


def test_opsgenie_alert_gets_a_note_instead_of_a_second_alert(
    make_api: Any, opsgenie: Opsgenie
) -> None:
    api = start(make_api, opsgenie, fails_on("opsgenie", "opsgenie"))
    final = escalated_from(api, "opsgenie", "create.json")
    assert final["escalations"][0]["status"] == "delivered" and opsgenie.problems == []
    assert opsgenie.alerts == []
    [(alert_id, query, note)] = opsgenie.notes
    assert alert_id == "44f717bf-44bd-11c9-44c7-2d0cf1d07b23-1542112011032"
    assert query == {"identifierType": "id"} and final["id"] in note["note"]


def test_rate_limit_is_waited_out_into_one_alert(make_api: Any, opsgenie: Opsgenie) -> None:
    opsgenie.script = [429, 503]
    api = start(make_api, opsgenie, [runbook("fails", "Fail", FAILING_STEP, escalate=["opsgenie"])])
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 3)
    assert len(opsgenie.alerts) == 1


def test_a_crafted_alert_id_never_reaches_another_endpoint(
    make_api: Any, opsgenie: Opsgenie
) -> None:
    """An alert whose id is `VICTIM-ID/close?`: the GenieKey must not close the victim's
    alert. The id is not an Opsgenie id, so no note is posted on it; a new alert carries
    the story instead, and the stand-in sees only well-formed paths."""
    api = start(make_api, opsgenie, fails_on("opsgenie", "opsgenie"))
    payload = live(load("opsgenie/create.json"))
    payload["alert"]["alertId"] = "VICTIM-ID/close?"
    body = json.dumps(payload).encode()
    answer = api.client.post("/webhooks/opsgenie", content=body, headers=SIGNERS["opsgenie"](body))
    assert answer.status_code == 202, answer.text
    final = delivered(api, answer.json()["executions"][0])
    assert final["escalations"][0]["status"] == "delivered" and opsgenie.problems == []
    assert opsgenie.notes == [] and len(opsgenie.alerts) == 1


def test_a_remediated_opsgenie_alert_gets_a_note_and_is_closed(
    make_api: Any, opsgenie: Opsgenie, tmp_path: Path
) -> None:
    api = start(make_api, opsgenie, remediates("opsgenie", "opsgenie", tmp_path,
                                               resolve_on_success=True))  # fmt: skip
    execution_id = send_sample(api, "opsgenie", "create.json")
    final = told(api, execution_id)
    assert final["status"] == "succeeded" and final["escalations"][0]["status"] == "delivered"
    assert opsgenie.problems == [] and opsgenie.alerts == []  # no new alert
    [(alert_id, query, note)] = opsgenie.notes
    assert alert_id == "44f717bf-44bd-11c9-44c7-2d0cf1d07b23-1542112011032" and query == {
        "identifierType": "id"
    }
    assert note["note"].startswith("Remediated automatically by fixes in ")
    [(closed, close_query, body)] = opsgenie.closes
    assert (closed, close_query) == (alert_id, {"identifierType": "id"})
    assert body == {"note": note["note"], "source": "remediator"}


def test_a_remediated_incident_from_elsewhere_closes_the_alert_remediator_opened(
    make_api: Any, opsgenie: Opsgenie, tmp_path: Path
) -> None:
    api = start(make_api, opsgenie, remediates("alertmanager", "opsgenie", tmp_path,
                                               resolve_on_success=True))  # fmt: skip
    answer = api.alertmanager(alert("CacheFull", fingerprint="fp/with spaces"))
    final = told(api, answer.json()["executions"][0])
    assert final["escalations"][0]["status"] == "delivered"
    [(alias, query, _)] = opsgenie.closes
    # The alias is one path segment, percent-encoded: its `/` and spaces stay in it.
    assert alias == "remediator/alertmanager/fp/with spaces"
    assert query == {"identifierType": "alias"}
    assert opsgenie.notes == [] and opsgenie.alerts == [] and opsgenie.problems == []
