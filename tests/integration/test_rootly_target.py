"""Escalation to Rootly: a timeline event on the Rootly incident and an alert that pages
through the configured escalation policy, each checked against Rootly's published API."""

from __future__ import annotations

import http.server
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.contracts import problems, request_schema
from tests.support.loopback import answer_json, serving
from tests.support.platforms import SOURCES, escalated_from, fails_on, remediates, send_sample, told
from tests.support.service import FAILING_STEP, PLAYBOOKS, Api, alert, delivered, runbook

API_TOKEN = "rootly_0123456789abcdef"
EVENTS = re.compile(r"^/v1/incidents/([^/]+)/events$")
EVENT_SCHEMA = request_schema("rootly-openapi.json", "/v1/incidents/{incident_id}/events")
ALERT_SCHEMA = request_schema("rootly-openapi.json", "/v1/alerts")
RESOLVE = re.compile(r"^/v1/incidents/([^/]+)/resolve$")
RESOLVE_SCHEMA = request_schema("rootly-openapi.json", "/v1/incidents/{id}/resolve", "put")
POLICY = "c3a1f7e2-5b4d-4e6f-8a9b-0c1d2e3f4a5b"


@dataclass
class Rootly:
    url: str = ""
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    resolves: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    alert_script: list[int] = field(default_factory=list)  # answers for /v1/alerts only
    problems: list[str] = field(default_factory=list)


@pytest.fixture
def rootly() -> Iterator[Rootly]:
    state = Rootly()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            if self.headers.get("authorization") != f"Bearer {API_TOKEN}":
                return answer_json(
                    self, 401, {"errors": [{"title": "Unauthorized", "status": "401"}]}
                )
            if self.headers.get("content-type") != "application/vnd.api+json":
                state.problems.append(f"content-type {self.headers.get('content-type')}")
            if state.script:
                status = state.script.pop(0)
                return answer_json(self, status, {"errors": [{"title": "try later", "status": str(status)}]},
                                   {"retry-after": "1"} if status == 429 else None)  # fmt: skip
            if match := EVENTS.match(self.path):
                found = problems(EVENT_SCHEMA, body)
                if not found:
                    state.events.append((match.group(1), body))
            elif self.path == "/v1/alerts" and state.alert_script:
                status = state.alert_script.pop(0)
                return answer_json(
                    self, status, {"errors": [{"title": "down", "status": str(status)}]}
                )
            elif self.path == "/v1/alerts":
                found = problems(ALERT_SCHEMA, body)
                if not found:
                    state.alerts.append(body)
            else:
                return answer_json(self, 404, {"errors": [{"title": "Not found", "status": "404"}]})
            if found:
                state.problems.extend(found)
                return answer_json(
                    self, 422, {"errors": [{"title": p, "status": "422"} for p in found]}
                )
            data = {
                "id": str(uuid.uuid4()),
                "type": body["data"]["type"],
                "attributes": body["data"]["attributes"],
            }
            answer_json(self, 201, {"data": data})

        def do_PUT(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
            if self.headers.get("authorization") != f"Bearer {API_TOKEN}":
                return answer_json(
                    self, 401, {"errors": [{"title": "Unauthorized", "status": "401"}]}
                )
            match = RESOLVE.match(self.path)
            if match is None:
                return answer_json(self, 404, {"errors": [{"title": "Not found", "status": "404"}]})
            found = problems(RESOLVE_SCHEMA, body)
            if found:
                state.problems.extend(found)
                return answer_json(
                    self, 422, {"errors": [{"title": p, "status": "422"} for p in found]}
                )
            state.resolves.append((match.group(1), body))
            attributes = {"status": "resolved", **body["data"]["attributes"]}
            answer_json(self, 200, {"data": {"id": match.group(1), "type": "incidents",
                                             "attributes": attributes}})  # fmt: skip

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        state.url = base
        yield state


def start(make_api: Any, rootly: Rootly, runbooks: list[dict[str, Any]]) -> Api:
    target = {"api_token": API_TOKEN, "base_url": rootly.url,
              "notification_target_type": "EscalationPolicy", "notification_target_id": POLICY}  # fmt: skip
    api: Api = make_api(runbooks, playbooks_dir=str(PLAYBOOKS), escalation={"rootly": target},
                        sources=SOURCES, escalation_max_backoff_s=0.5)  # fmt: skip
    return api


def test_rootly_incident_gets_its_timeline_event_and_a_page(make_api: Any, rootly: Rootly) -> None:
    api = start(make_api, rootly, fails_on("rootly", "rootly"))
    final = escalated_from(api, "rootly", "incident-created.json")
    assert final["escalations"][0]["status"] == "delivered", final["escalations"]
    assert rootly.problems == []
    [(incident_id, event)] = rootly.events
    assert incident_id == "b7eed587-50e6-44fe-b010-7a2bb05d737a"
    text = event["data"]["attributes"]["event"]
    assert "attempt 1: failed, exit 2" in text and final["id"] in text
    [page] = rootly.alerts
    attributes = page["data"]["attributes"]
    assert attributes["notification_target_type"] == "EscalationPolicy"
    assert attributes["notification_target_id"] == POLICY
    assert attributes["external_url"].endswith(final["id"])
    assert (
        attributes["external_id"]
        == "remediator/rootly/incident:b7eed587-50e6-44fe-b010-7a2bb05d737a"
    )


def test_other_incidents_get_an_alert_with_the_context(make_api: Any, rootly: Rootly) -> None:
    rootly.script = [429, 502]
    api = start(make_api, rootly, [runbook("fails", "Fail", FAILING_STEP, escalate=["rootly"])])
    final = delivered(
        api, api.alertmanager(alert("Fail", fingerprint="fp-r")).json()["executions"][0]
    )
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 3)
    assert rootly.events == [] and rootly.problems == []
    [page] = rootly.alerts
    attributes = page["data"]["attributes"]
    assert attributes["source"] == "api" and "fails" in attributes["summary"]
    assert {"key": "alertname", "value": "Fail"} in attributes["labels"]
    assert attributes["data"]["execution"]["steps"][0]["attempt_log"][0]["rc"] == 2
    assert API_TOKEN not in json.dumps(page)


def test_a_retry_after_a_partial_delivery_does_not_repeat_the_timeline_event(
    make_api: Any, rootly: Rootly
) -> None:
    rootly.alert_script = [503, 503]  # the timeline event lands, the alert fails twice
    api = start(make_api, rootly, fails_on("rootly", "rootly"))
    final = escalated_from(api, "rootly", "incident-created.json")
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 3)
    assert len(rootly.events) == 1 and len(rootly.alerts) == 1


def test_a_wrong_token_gives_up_with_the_platforms_answer(make_api: Any, rootly: Rootly) -> None:
    target = {"api_token": "rootly_wrong_token_value", "base_url": rootly.url}
    api: Api = make_api([runbook("fails", "Fail", FAILING_STEP, escalate=["rootly"])],
                        playbooks_dir=str(PLAYBOOKS), escalation={"rootly": target}, sources=SOURCES)  # fmt: skip
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    [escalation] = final["escalations"]
    assert escalation["status"] == "gave_up" and "answered 401" in escalation["last_error"]
    assert "rootly_wrong_token_value" not in escalation["last_error"]
    assert rootly.alerts == []


def test_a_remediated_rootly_incident_gets_a_timeline_event_and_is_resolved(
    make_api: Any, rootly: Rootly, tmp_path: Path
) -> None:
    api = start(make_api, rootly, remediates("rootly", "rootly", tmp_path, resolve_on_success=True))
    execution_id = send_sample(api, "rootly", "incident-created.json")
    final = told(api, execution_id)
    assert final["status"] == "succeeded" and final["escalations"][0]["status"] == "delivered"
    assert rootly.problems == [] and rootly.alerts == []  # nobody paged
    [(incident_id, event)] = rootly.events
    assert incident_id == "b7eed587-50e6-44fe-b010-7a2bb05d737a"
    text = event["data"]["attributes"]["event"]
    assert text.startswith("Remediated automatically by fixes in ") and execution_id in text
    [(resolved_id, body)] = rootly.resolves
    assert resolved_id == incident_id
    assert body == {"data": {"type": "incidents", "attributes": {"resolution_message": text}}}


def test_a_success_notice_without_a_rootly_incident_sends_nothing(
    make_api: Any, rootly: Rootly, tmp_path: Path
) -> None:
    api = start(make_api, rootly, remediates("alertmanager", "rootly", tmp_path,
                                             resolve_on_success=True))  # fmt: skip
    final = told(api, api.alertmanager(alert("CacheFull")).json()["executions"][0])
    assert final["escalations"][0]["status"] == "delivered"
    assert rootly.events == [] and rootly.alerts == [] and rootly.resolves == []
