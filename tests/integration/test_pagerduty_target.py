"""Escalation to PagerDuty: a page through the Events API v2 in its published shape, a
note on the originating PagerDuty incident, retries through 429 and 5xx, one alert."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.platforms import (
    SIGNERS,
    SOURCES,
    clears_cache,
    escalated_from,
    fails_on,
    live,
    load,
    remediates,
    send_sample,
    told,
)
from tests.support.service import FAILING_STEP, PLAYBOOKS, Api, Recorder, alert, delivered, runbook
from tests.support.standins.pagerduty import PagerDuty, pagerduty_server

ROUTING_KEY = "R0UT1NGKEYR0UT1NGKEYR0UT1NGKEY12"
API_TOKEN = "pd-rest-api-token-u+1"


@pytest.fixture
def pagerduty() -> Iterator[PagerDuty]:
    with pagerduty_server(API_TOKEN) as server:
        yield server


def start(
    make_api: Any, pagerduty: PagerDuty, runbooks: list[dict[str, Any]], **config: Any
) -> Api:
    target = {"routing_key": ROUTING_KEY, "api_token": API_TOKEN, "from_email": "remediator@example.com",
              "events_url": pagerduty.url, "api_url": pagerduty.url}  # fmt: skip
    api: Api = make_api(
        runbooks,
        playbooks_dir=str(PLAYBOOKS),
        escalation={"pagerduty": target},
        sources={**SOURCES, "generic": {"secret": "whsec_dGVzdA=="}},
        escalation_max_backoff_s=0.5,
        **config,
    )
    return api


def test_failed_remediation_pages_with_the_whole_story(make_api: Any, pagerduty: PagerDuty) -> None:
    api = start(
        make_api, pagerduty, [runbook("fails", "Fail", FAILING_STEP, escalate=["pagerduty"])]
    )
    answer = api.alertmanager(alert("Fail", fingerprint="fp-db"))
    final = delivered(api, answer.json()["executions"][0])
    assert final["status"] == "failed" and final["escalations"][0]["status"] == "delivered"
    assert pagerduty.problems == []
    [event] = pagerduty.events
    body = event.body
    assert body["routing_key"] == ROUTING_KEY and body["event_action"] == "trigger"
    assert body["dedup_key"] == "remediator/alertmanager/fp-db"
    assert body["payload"]["severity"] == "critical" and "fails" in body["payload"]["summary"]
    assert body["links"][0]["href"] == f"http://remediator.test/ui/#/executions/{final['id']}"
    assert body["payload"]["custom_details"]["api_url"].endswith(f"/api/executions/{final['id']}")
    [step] = body["payload"]["custom_details"]["steps"]
    attempt = step["attempts"][0]
    assert attempt["exit_status"] == 2 and attempt["status"] == "failed"
    assert "promoting it would lose writes" in attempt["output_tail"]
    assert pagerduty.notes == []  # the incident did not come from PagerDuty
    assert ROUTING_KEY not in json.dumps(body["payload"])


def test_pagerduty_incident_gets_a_note_on_its_own_timeline(
    make_api: Any, pagerduty: PagerDuty
) -> None:
    api = start(make_api, pagerduty, fails_on("pagerduty", "pagerduty"))
    final = escalated_from(api, "pagerduty", "incident-triggered.json")
    assert final["escalations"][0]["status"] == "delivered", final["escalations"]
    assert pagerduty.problems == []
    [note] = pagerduty.notes
    assert note.path == "/incidents/PGR0VU2/notes"
    assert note.headers["from"] == "remediator@example.com"
    assert note.headers["accept"] == "application/vnd.pagerduty+json;version=2"
    assert "fails" in note.body["note"]["content"] and final["id"] in note.body["note"]["content"]
    assert pagerduty.events[0].body["dedup_key"] == "remediator/pagerduty/PGR0VU2"


def test_rate_limit_and_outage_are_retried_into_one_alert(
    make_api: Any, pagerduty: PagerDuty
) -> None:
    pagerduty.script = [
        (429, {"retry-after": "1"}, {"status": "throttle event", "message": "Requests for this service are arriving too quickly."}),
        (500, {}, {"status": "error", "message": "Internal Server Error"}),
    ]  # fmt: skip
    api = start(
        make_api, pagerduty, [runbook("fails", "Fail", FAILING_STEP, escalate=["pagerduty"])]
    )
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 3)
    assert len(pagerduty.events) == 1 and pagerduty.script == []


def test_a_refused_event_is_given_up_not_retried_forever(
    make_api: Any, pagerduty: PagerDuty
) -> None:
    pagerduty.script = [
        (
            400,
            {},
            {"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]},
        )
    ]
    api = start(
        make_api, pagerduty, [runbook("fails", "Fail", FAILING_STEP, escalate=["pagerduty"])]
    )
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    [escalation] = final["escalations"]
    assert escalation["status"] == "gave_up" and "400" in escalation["last_error"]
    assert ROUTING_KEY not in escalation["last_error"]


def test_a_remediated_pagerduty_incident_gets_a_note_and_is_resolved_only_after_verify(
    make_api: Any, pagerduty: PagerDuty, recorder: Recorder, tmp_path: Path
) -> None:
    recorder.replies = [503] * 1000  # the service is not back yet
    check = {"url": recorder.url, "within": "60s", "interval": "0.2s"}
    book = remediates("pagerduty", "pagerduty", tmp_path, verify={"http": check},
                      resolve_on_success=True)  # fmt: skip
    api = start(make_api, pagerduty, book, verify_allowed_hosts=["127.0.0.1"])
    # The resolve fails once (PagerDuty is down): its retry must not repeat the note.
    pagerduty.update_script = [(503, {}, {"error": {"message": "Service Unavailable"}})]
    execution_id = send_sample(api, "pagerduty", "incident-triggered.json")
    recorder.wait_for(3)
    assert api.execution(execution_id)["status"] == "verifying"
    assert pagerduty.notes == [] and pagerduty.updates == [], "told before verify passed"
    recorder.replies.clear()
    final = told(api, execution_id)
    assert final["status"] == "succeeded"
    [notice] = final["escalations"]
    assert (notice["reason"], notice["status"], notice["attempts"]) == (
        "remediated",
        "delivered",
        2,
    )
    assert pagerduty.problems == [] and pagerduty.events == []  # nobody paged
    [note] = pagerduty.notes
    assert note.path == "/incidents/PGR0VU2/notes"
    content = note.body["note"]["content"]
    assert content.startswith("Remediated automatically by fixes in ") and "verified" in content
    assert f"/ui/#/executions/{execution_id}" in content
    [update] = pagerduty.updates
    assert (
        update.path == "/incidents/PGR0VU2" and update.headers["from"] == "remediator@example.com"
    )
    assert update.body["incident"]["type"] == "incident_reference"
    assert update.body["incident"]["status"] == "resolved"
    assert update.body["incident"]["resolution"] == content


def test_a_remediated_incident_from_elsewhere_resolves_the_page_by_its_dedup_key(
    make_api: Any, pagerduty: PagerDuty, tmp_path: Path
) -> None:
    api = start(make_api, pagerduty, remediates("alertmanager", "pagerduty", tmp_path,
                                                resolve_on_success=True))  # fmt: skip
    answer = api.alertmanager(alert("CacheFull", fingerprint="fp-cache"))
    final = told(api, answer.json()["executions"][0])
    assert final["escalations"][0]["status"] == "delivered"
    [event] = pagerduty.events
    assert event.body == {"routing_key": ROUTING_KEY, "event_action": "resolve",
                          "dedup_key": "remediator/alertmanager/fp-cache"}  # fmt: skip
    assert pagerduty.notes == [] and pagerduty.updates == [] and pagerduty.problems == []


def test_an_incident_the_platform_resolved_first_gets_the_note_and_no_resolve(
    make_api: Any, pagerduty: PagerDuty, tmp_path: Path
) -> None:
    book = remediates("pagerduty", "pagerduty", tmp_path, verify={"resolved_within": "60s"},
                      resolve_on_success=True)  # fmt: skip
    api = start(make_api, pagerduty, book)
    execution_id = send_sample(api, "pagerduty", "incident-triggered.json")
    api.wait(execution_id, until=lambda e: e["status"] == "verifying")
    assert pagerduty.notes == []
    # The platform resolves it: that is what verify waits for.
    body = json.dumps(live(load("pagerduty/incident-resolved.json"))).encode()
    resolved = api.client.post(
        "/webhooks/pagerduty", content=body, headers=SIGNERS["pagerduty"](body)
    )
    assert resolved.status_code == 202
    final = told(api, execution_id)
    assert final["status"] == "succeeded"
    assert len(pagerduty.notes) == 1 and pagerduty.updates == []


def test_a_diagnose_only_runbook_posts_its_findings_to_the_incident_as_one_note(
    make_api: Any, pagerduty: PagerDuty, tmp_path: Path
) -> None:
    """The paged engineer sees the facts on the incident before opening a terminal: the
    example replica-lag check (its set_stats) and a step without outputs (its output's
    end), under the runbook's headline, as one note, checked against PagerDuty's
    contract; nobody is paged, and the post is not repeated."""
    (tmp_path / "orders-db-2.lag_s").write_text("17")
    lag = {
        "playbook": "replica-lag.yml",
        "inventory": "inventories/local.ini",
        "extra_vars": {"replica": "orders-db-2", "state_dir": str(tmp_path)},
    }
    book = {"name": "looks", "match": {"source": "pagerduty"}, "diagnose": {
        "steps": [{"id": "lag", "ansible": lag}, {"ansible": clears_cache(tmp_path)["ansible"]}],
        "post_to": ["pagerduty"],
        "headline": "orders-db-2 is {{ steps.lag.outputs.lag_s }}s behind: “{{ incident.title }}”",
    }}  # fmt: skip
    api = start(make_api, pagerduty, [book])
    execution_id = send_sample(api, "pagerduty", "incident-triggered.json")
    final = api.wait(execution_id, until=lambda e: e["status"] == "diagnosed" and all(
        x["status"] != "pending" for x in e["escalations"]))  # fmt: skip
    assert [(s["phase"], s["status"]) for s in final["steps"]] == [
        ("diagnose", "succeeded"), ("diagnose", "succeeded")]  # fmt: skip
    [told_] = final["escalations"]
    assert (told_["reason"], told_["status"]) == ("diagnosed", "delivered")
    assert pagerduty.problems == [] and pagerduty.events == []  # nobody paged
    [note] = pagerduty.notes
    assert note.path == "/incidents/PGR0VU2/notes"
    content = note.body["note"]["content"].splitlines()
    assert content[0].startswith("[remediator] orders-db-2 is 17s behind: “")
    assert content[1] == 'lag: {"lag_s": 17, "replica": "orders-db-2"}'
    assert content[2].startswith("ansible: ") and "PLAY RECAP" in content[2]
    assert content[-1].endswith(f"/ui/#/executions/{execution_id}")
