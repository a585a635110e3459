"""One remediation per occurrence, for every platform, through a real `remediator serve`:
the event that opens an occurrence runs its runbook once; each later event of the same
occurrence (acknowledged, updated, escalated, a repeat), sent after the run finished,
starts nothing and appears on that execution; once resolved, the incident opening again
runs again; and a runbook that asks for `on: [updated]` runs on exactly that update."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.instant import instant_step
from tests.support.platforms import (
    FIRING,
    FOLLOW_UPS,
    RESOLVED,
    SIGNERS,
    SOURCES,
    Sample,
    live,
    load,
)
from tests.support.servers import Server, start_server
from tests.support.service import write_config

pytestmark = [pytest.mark.server]


def step(out: Path, name: str) -> dict[str, Any]:
    """Writes what ran as JSON (the instant kind: occurrences are the subject here)."""
    return instant_step(out / f"{name}.json",
                        values={"message": "{{ incident.phase }}", "host": "{{ incident.occurrence }}"})  # fmt: skip


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    out = tmp_path / "out"
    out.mkdir()
    runbooks = [
        {"name": f"{sample.source}-remediate",
         "match": {"source": sample.source,
                   "all": [{"field": "labels.zone", "equals": "us-1"}] if sample.source == "grafana" else []},
         "steps": [step(out, sample.source)]}
        for sample in FIRING
    ] + [
        {"name": "p1-escalated", "match": {"source": "pagerduty", "on": ["updated"],
         "all": [{"field": "event_type", "equals": "incident.priority_updated"},
                 {"field": "labels.priority", "equals": "P1"}]},
         "steps": [step(out, "p1")]},
    ]  # fmt: skip
    running = start_server(write_config(tmp_path, runbooks, sources=SOURCES), instant=True)
    yield running
    running.close()


def post(server: Server, source: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = json.dumps(payload).encode()
    answer = httpx.post(f"{server.base}/webhooks/{source}", content=body, timeout=30,
                        headers={**SIGNERS[source](body), "content-type": "application/json"})  # fmt: skip
    assert answer.status_code == 202, answer.text
    result: dict[str, Any] = answer.json()
    return result


def reopened(source: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The incident opening again, as each platform sends it: a new delivery."""
    copy: dict[str, Any] = json.loads(json.dumps(payload))
    if source == "rootly":
        copy["event"]["id"] = str(uuid.uuid4())
    elif source == "pagerduty":
        copy["event"].update(id=uuid.uuid4().hex[:26].upper(), event_type="incident.reopened")
    elif source == "grafana":
        later = (datetime.now(UTC) + timedelta(seconds=5)).isoformat()
        for alert in copy["alerts"]:
            alert["startsAt"] = later
    elif source == "opsgenie":
        copy["alert"]["updatedAt"] = time.time_ns()
    elif source == "datadog":
        copy["id"] = str(int(time.time() * 1000))
    elif source == "sentry":  # a new event of the issue, after it resolved: a regression
        copy["data"]["event"]["event_id"] = uuid.uuid4().hex
    elif source == "azure_monitor":  # a stateful alert fires again as a new alert instance
        essentials = copy["data"]["essentials"]
        essentials["alertId"] = essentials["alertId"].rsplit("/", 1)[0] + f"/{uuid.uuid4()}"
    return copy


def final(server: Server, execution_id: str) -> dict[str, Any]:
    [execution] = server.wait_all_final([execution_id])
    return execution


@pytest.mark.parametrize(
    ("firing", "resolved"), list(zip(FIRING, RESOLVED, strict=True)), ids=lambda s: s.source
)
def test_an_occurrence_runs_once_and_a_reopen_runs_again(
    server: Server, firing: Sample, resolved: Sample
) -> None:
    opened = live(load(f"{firing.source}/{firing.file}"))
    [first] = post(server, firing.source, opened)["executions"]
    done = final(server, first)
    assert done["status"] == "succeeded", done
    assert done["incident"]["phase"] == "opened"

    later = post(server, firing.source, FOLLOW_UPS[firing.source](opened))
    assert later["executions"] == [] and later["attached"] == [first]
    attached = server.api(f"/executions/{first}")["attached"]
    assert [a["phase"] for a in attached] == ["updated"]
    assert attached[0]["occurrence"] == done["incident"]["occurrence"]

    assert (
        post(server, resolved.source, live(load(f"{resolved.source}/{resolved.file}")))[
            "executions"
        ]
        == []
    )
    [again] = post(server, firing.source, reopened(firing.source, opened))["executions"]
    second = final(server, again)
    assert second["status"] == "succeeded" and second["incident"]["phase"] == "opened"
    if firing.source in ("pagerduty", "grafana"):  # these carry the occurrence's start
        assert second["incident"]["occurrence"] != done["incident"]["occurrence"]


def test_a_runbook_on_updated_runs_on_exactly_that_update(server: Server) -> None:
    opened = live(load("pagerduty/incident-triggered.json"))
    [first] = post(server, "pagerduty", opened)["executions"]
    assert final(server, first)["runbook"] == "pagerduty-remediate"
    acknowledged = FOLLOW_UPS["pagerduty"](opened)
    assert post(server, "pagerduty", acknowledged)["executions"] == []
    update = live(load("pagerduty/incident-priority-updated.json"))
    assert update["event"]["data"]["id"] == opened["event"]["data"]["id"]
    assert update["event"]["data"]["priority"]["summary"] == "P1"
    [p1] = post(server, "pagerduty", update)["executions"]
    ran = final(server, p1)
    assert ran["runbook"] == "p1-escalated" and ran["incident"]["phase"] == "updated"
    escalated = FOLLOW_UPS["pagerduty"](update)
    escalated["event"].update(id=uuid.uuid4().hex, event_type="incident.escalated")
    assert post(server, "pagerduty", escalated)["executions"] == []  # P1 still, not an update of it
