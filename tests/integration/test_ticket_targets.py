"""Tickets that follow the incident: Jira (Cloud v3 and Data Center v2) and ServiceNow
(Table API), against stand-ins that check each call against the published contracts.
One ticket per incident: opened by a failed remediation, commented on by a later one,
closed by a success, reopened (not duplicated) when it fails again; payload text inert;
a target that is down, or rate-limits, gets the ticket once when it answers again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.instant import instant_step
from tests.support.service import Api, alert, delivered, runbook
from tests.support.standins.jira import API_TOKEN, EMAIL, PAT, JiraStandIn
from tests.support.standins.servicenow import (
    CLIENT_ID,
    CLIENT_SECRET,
    PASSWORD,
    USERNAME,
    ServiceNowStandIn,
)

HOSTILE = ("*bold* [click|https://evil.example] <a href=https://evil.example>x</a> @here "
           "<!channel> {noformat} {code}x{code} [code]<script>alert(1)</script>[/code] ![i](https://e/x.png)")  # fmt: skip
NO_BREAKER = {"breaker": {"enabled": False}}


@pytest.fixture
def jira() -> Iterator[JiraStandIn]:
    stand_in = JiraStandIn(link_prefix="http://remediator.test/")
    stand_in.start()
    yield stand_in
    stand_in.stop()


@pytest.fixture
def snow() -> Iterator[ServiceNowStandIn]:
    stand_in = ServiceNowStandIn()
    stand_in.start()
    yield stand_in
    stand_in.stop()


def runbooks(tmp_path: Path, target: str) -> list[dict[str, Any]]:
    """`Fail` fails and escalates to `target`; `Fix` succeeds and tells it, resolving."""
    return [
        runbook("fails", "Fail", instant_step(tmp_path / "f", fail=True), escalate=[target],
                **NO_BREAKER),
        runbook("fixes", "Fix", instant_step(tmp_path / "ok", line="ok"),
                notify_on_success=[target], resolve_on_success=True),
    ]  # fmt: skip


def run(api: Api, name: str, fingerprint: str = "fp-ticket", **labels: str) -> dict[str, Any]:
    """An alert `name` for `fingerprint` (a new occurrence each time), once escalated or
    told."""
    answer = api.alertmanager(alert(name, fingerprint=fingerprint, **labels))
    return delivered(api, answer.json()["executions"][0])


def ticket_api(make_api: Any, tmp_path: Path, target: str, config: dict[str, Any]) -> Api:
    api: Api = make_api(runbooks(tmp_path, target), escalation={target: config},
                        escalation_max_backoff_s=0.5)  # fmt: skip
    return api


def jira_api(make_api: Any, tmp_path: Path, jira: JiraStandIn) -> Api:
    way_in = {"email": EMAIL, "api_token": API_TOKEN} if jira.version == 3 else {"token": PAT}
    return ticket_api(make_api, tmp_path, "jira", {
        "url": jira.base, "project": "OPS", "priorities": {"critical": "Highest"}, **way_in})  # fmt: skip


def down_then_back(api: Api, stand_in: JiraStandIn | ServiceNowStandIn, status: int) -> None:
    """A failure while `stand_in` is down, retried; back, it answers `status` once, then
    takes the ticket: delivered once, within the give-up window."""
    stand_in.stop()
    execution_id = api.alertmanager(alert("Fail", fingerprint="fp-down")).json()["executions"][0]
    api.wait(execution_id, until=lambda e: bool(e["escalations"])
             and e["escalations"][0]["attempts"] >= 3)  # fmt: skip
    stand_in.script = [status]
    stand_in.start()
    final = delivered(api, execution_id)
    assert final["escalations"][0]["status"] == "delivered", final["escalations"]
    assert stand_in.violations == []


@pytest.mark.usefixtures("instant_kind")
def test_jira_follows_the_incident_open_comment_close_reopen(
    make_api: Any, tmp_path: Path, jira: JiraStandIn
) -> None:
    api = jira_api(make_api, tmp_path, jira)
    first = run(api, "Fail")
    assert first["escalations"][0]["status"] == "delivered", first["escalations"]
    [issue] = jira.issues
    fields = issue.fields
    assert (fields["project"], fields["issuetype"]) == ({"key": "OPS"}, {"name": "Task"})
    assert fields["priority"] == {"name": "Highest"} and "remediator" in fields["labels"]
    assert fields["summary"].startswith("[remediator] remediation failed: fails")
    texts = [n["text"] for p in fields["description"]["content"] for n in p.get("content", [])]
    assert texts[0] == "Execution in remediator" and any(first["id"] in t for t in texts)

    run(api, "Fail")  # a later execution while the ticket is open: a comment
    assert len(jira.issues) == 1 and len(issue.comments) == 1
    fixed = run(api, "Fix")  # the success: told, and moved by the transition named Done
    assert fixed["escalations"][0]["status"] == "delivered"
    assert issue.status == "Done" and issue.moves == ["Done"] and len(issue.comments) == 2
    run(api, "Fail")  # fires again: reopened, not a second ticket
    assert len(jira.issues) == 1 and issue.moves == ["Done", "Reopen"] and issue.status == "To Do"
    assert len(issue.comments) == 3 and jira.violations == []


def resolved_elsewhere(api: Api, execution_id: str, fingerprint: str) -> None:
    """The incident resolves on its platform; the ticket targets are told, once."""
    api.alertmanager(alert("Fail", status="resolved", fingerprint=fingerprint))
    api.alertmanager(alert("Fail", status="resolved", fingerprint=fingerprint))
    done = api.wait(execution_id, until=lambda e: any(
        x["reason"] == "incident_resolved" and x["status"] == "delivered" for x in e["escalations"]))  # fmt: skip
    assert [x["reason"] for x in done["escalations"]].count("incident_resolved") == 1


@pytest.mark.usefixtures("instant_kind")
def test_a_ticket_is_closed_when_the_incident_resolves_on_its_platform(
    make_api: Any, tmp_path: Path, jira: JiraStandIn
) -> None:
    api = jira_api(make_api, tmp_path, jira)
    failed = run(api, "Fail", fingerprint="fp-gone")
    resolved_elsewhere(api, failed["id"], "fp-gone")
    [issue] = jira.issues
    assert issue.status == "Done" and issue.moves == ["Done"]
    assert "resolved on alertmanager" in json.dumps(issue.comments[-1])
    assert jira.violations == []


@pytest.mark.parametrize("version", [3, 2])
@pytest.mark.usefixtures("instant_kind")
def test_jira_payload_text_is_text_and_data_center_gets_one_noformat_block(
    make_api: Any, tmp_path: Path, version: int
) -> None:
    jira = JiraStandIn(version=version, link_prefix="http://remediator.test/")
    jira.start()
    try:
        api = jira_api(make_api, tmp_path, jira)
        final = run(api, "Fail", instance=HOSTILE)
        assert final["escalations"][0]["status"] == "delivered", final["escalations"]
        [issue] = jira.issues
        description = issue.fields["description"]
        if version == 3:  # the stand-in refused anything but text nodes and our link
            texts = [n["text"] for p in description["content"] for n in p.get("content", [])]
            assert any(HOSTILE in text for text in texts)
        else:
            assert description.startswith("{noformat}\n") and "{ noformat}" in description
        assert jira.violations == []
        assert all(f"/rest/api/{version}/" in call for call in jira.calls)
    finally:
        jira.stop()


@pytest.mark.usefixtures("instant_kind")
def test_jira_down_then_back_and_rate_limited_gets_one_ticket(
    make_api: Any, tmp_path: Path, jira: JiraStandIn
) -> None:
    down_then_back(jira_api(make_api, tmp_path, jira), jira, 429)
    assert len(jira.issues) == 1


def snow_api(make_api: Any, tmp_path: Path, snow: ServiceNowStandIn, **target: Any) -> Api:
    return ticket_api(make_api, tmp_path, "servicenow", {
        "url": snow.base, "username": USERNAME, "password": PASSWORD,
        "assignment_group": "Database", "caller": "remediator", "category": "software",
        **target})  # fmt: skip


@pytest.mark.usefixtures("instant_kind")
def test_servicenow_follows_the_incident_and_keeps_text_inert(
    make_api: Any, tmp_path: Path, snow: ServiceNowStandIn
) -> None:
    api = snow_api(make_api, tmp_path, snow)
    first = run(api, "Fail", instance=HOSTILE)
    assert first["escalations"][0]["status"] == "delivered", first["escalations"]
    [record] = snow.records
    assert record["correlation_id"].startswith("remediator-")
    assert (record["urgency"], record["impact"]) == ("1", "1")  # critical
    assert (record["assignment_group"], record["caller_id"], record["category"]) == (
        "Database", "remediator", "software")  # fmt: skip
    assert "[code]" not in record["description"] and "<script>" in record["description"]
    assert first["id"] in record["description"]

    run(api, "Fail")
    assert len(snow.records) == 1 and len(record["work_notes"]) == 1
    run(api, "Fix")  # resolve_on_success: Resolved, with its close code and notes
    assert record["state"] == "6" and record["close_code"] == "Solution provided"
    run(api, "Fail")  # a Resolved record is reopened
    assert len(snow.records) == 1 and record["state"] == "2" and len(record["work_notes"]) == 3
    record["state"] = "7"  # closed on the ServiceNow side: final, so a new record
    run(api, "Fail")
    assert len(snow.records) == 2 and snow.violations == []


@pytest.mark.usefixtures("instant_kind")
def test_servicenow_record_named_by_the_incident_gets_work_notes_over_oauth(
    make_api: Any, tmp_path: Path, snow: ServiceNowStandIn
) -> None:
    """A generic webhook from a ServiceNow business rule names its record: notes go on
    it, no new record; OAuth client credentials, one token for every call until it is
    revoked, then a new one."""
    api = snow_api(make_api, tmp_path, snow, username=None, password=None,
                   client_id=CLIENT_ID, client_secret=CLIENT_SECRET)  # fmt: skip
    theirs = snow.add(short_description="Orders DB slow", state="2")
    run(api, "Fail", servicenow_sys_id=theirs["sys_id"])
    run(api, "Fail", fingerprint="fp-crafted", servicenow_sys_id=theirs["sys_id"] + "/../x")
    assert len(theirs["work_notes"]) == 1 and len(snow.records) == 2  # the crafted id: a new one
    assert len(snow.tokens) == 1
    snow.tokens.clear()  # revoked on the ServiceNow side
    fixed = run(api, "Fix", servicenow_sys_id=theirs["sys_id"])
    assert fixed["escalations"][0]["status"] == "delivered", fixed["escalations"]
    assert theirs["state"] == "6" and len(theirs["work_notes"]) == 2
    assert len(snow.tokens) == 1 and snow.violations == []


@pytest.mark.usefixtures("instant_kind")
def test_servicenow_resolves_the_record_when_the_incident_resolves(
    make_api: Any, tmp_path: Path, snow: ServiceNowStandIn
) -> None:
    api = snow_api(make_api, tmp_path, snow)
    failed = run(api, "Fail", fingerprint="fp-gone")
    resolved_elsewhere(api, failed["id"], "fp-gone")
    [record] = snow.records
    assert record["state"] == "6" and "resolved on alertmanager" in record["close_notes"]
    assert snow.violations == []


@pytest.mark.usefixtures("instant_kind")
def test_servicenow_down_then_back_gets_one_record(
    make_api: Any, tmp_path: Path, snow: ServiceNowStandIn
) -> None:
    down_then_back(snow_api(make_api, tmp_path, snow), snow, 503)
    assert len(snow.records) == 1
