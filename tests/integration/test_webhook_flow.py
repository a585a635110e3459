"""Webhook to recorded execution through the real app: real SQLite, real ansible-playbook."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.service import (
    ESCALATION_SECRET,
    PLAYBOOKS,
    Api,
    Recorder,
    alert,
    ansible_step,
    runbook,
    sign_generic,
)

pytestmark = pytest.mark.ansible


def writes_to(dest: Path) -> list[dict[str, Any]]:
    """One runbook, for alertname Write, whose playbook writes fixed values to `dest`."""
    return [runbook("w", "Write", ansible_step("write.yml", message="m", host="h", dest=str(dest)))]


def test_alert_runs_playbook_with_templated_vars(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    dest = tmp_path / "out.json"
    api = make_api(
        [
            runbook(
                "write-it",
                "Write",
                ansible_step(
                    "write.yml",
                    message="{{ incident.title }}",
                    host="{{ incident.labels.instance }}",
                    dest=str(dest),
                ),
            )
        ]
    )
    # A payload value that looks like a template or a shell command stays data.
    answer = api.alertmanager(alert("Write", instance="web-1; rm -rf / {{ 7*7 }}"))
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["duplicate"] is False and len(body["executions"]) == 1
    execution = api.wait(body["executions"][0])
    assert execution["status"] == "succeeded", execution
    assert execution["incident"]["labels"]["instance"] == "web-1; rm -rf / {{ 7*7 }}"
    written = json.loads(dest.read_text())
    assert written == {
        "message": "Write on web-1; rm -rf / {{ 7*7 }}",
        "host": "web-1; rm -rf / {{ 7*7 }}",
    }
    step = execution["steps"][0]
    assert step["kind"] == "ansible" and step["status"] == "succeeded" and step["rc"] == 0
    assert step["attempts"] == 1 and "PLAY RECAP" in step["output_tail"]
    assert step["started_at"] and step["finished_at"]
    summary = api.executions(status="succeeded", runbook="write-it")
    assert [e["id"] for e in summary] == [execution["id"]]


def test_redelivery_is_a_duplicate_and_starts_nothing(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api(writes_to(tmp_path / "x"))
    payload = alert("Write")
    first = api.alertmanager(payload)
    second = api.alertmanager(payload)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == {
        "event_id": first.json()["event_id"],
        "executions": [],
        "attached": [],
        "duplicate": True,
    }
    api.wait(first.json()["executions"][0])
    assert len(api.executions()) == 1

    body = json.dumps({"title": "x", "labels": {"alertname": "Nothing"}}).encode()
    headers = sign_generic(body)
    assert api.generic(body, headers).status_code == 202
    again = api.generic(body, headers)
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_failing_playbook_is_retried_then_escalated_signed(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    api = make_api(
        [
            runbook(
                "always-fails",
                "Fail",
                {
                    "ansible": {
                        "playbook": "database-failover.yml",
                        "inventory": "inventories/local.ini",
                        "extra_vars": {"cluster": "orders", "lag_seconds": "99"},
                    }
                },
                retry={"attempts": 2, "backoff": "0.1s"},
                escalate=["webhook", "slack"],
            )
        ],
        playbooks_dir=str(PLAYBOOKS),
        escalation={
            "webhook": {"url": recorder.url, "secret": ESCALATION_SECRET},
            "slack": {"webhook_url": recorder.url + "/slack"},
        },
    )
    answer = api.alertmanager(alert("Fail", instance="db-1"))
    execution = api.wait(answer.json()["executions"][0])
    assert execution["status"] == "failed"
    assert "exited with 2" in execution["error"]
    step = execution["steps"][0]
    assert step["attempts"] == 2 and [a["status"] for a in step["attempt_log"]] == [
        "failed",
        "failed",
    ]
    assert "A human must decide" in step["output_tail"]

    requests = recorder.wait_for(2)
    by_path = {r.path: r for r in requests}
    hook = by_path["/hook"]
    # The official Standard Webhooks library accepts our signature.
    message = Webhook(ESCALATION_SECRET).verify(hook.body, hook.headers)
    assert message["reason"] == "failed"
    # People get the page's view (the API would answer them 401); tools get the API's.
    assert message["execution_url"] == f"http://remediator.test/ui/#/executions/{execution['id']}"
    assert message["api_url"] == f"http://remediator.test/api/executions/{execution['id']}"
    story = message["execution"]
    assert story["runbook"] == "always-fails"
    assert story["incident"]["url"] == "http://prometheus.test:9090/graph"
    assert [a["rc"] for a in story["steps"][0]["attempt_log"]] == [2, 2]
    assert "A human must decide" in story["steps"][0]["attempt_log"][1]["output_tail"]

    slack = by_path["/hook/slack"].json()
    assert "remediation failed" in slack["text"]
    texts = json.dumps(slack["blocks"])
    assert "attempt 2" in texts and "exit 2" in texts and "Open execution" in texts

    final = api.wait(
        execution["id"], until=lambda e: all(x["status"] == "delivered" for x in e["escalations"])
    )
    assert {(e["target"], e["status"], e["attempts"]) for e in final["escalations"]} == {
        ("webhook", "delivered", 1),
        ("slack", "delivered", 1),
    }


def test_retry_succeeds_on_second_attempt(make_api: Callable[..., Api], tmp_path: Path) -> None:
    api = make_api(
        [
            runbook(
                "flaky",
                "Flaky",
                ansible_step("flaky.yml", marker=str(tmp_path / "m")),
                retry={"attempts": 3, "backoff": "0.1s"},
            )
        ]
    )
    execution = api.wait(api.alertmanager(alert("Flaky")).json()["executions"][0])
    assert execution["status"] == "succeeded"
    assert [a["status"] for a in execution["steps"][0]["attempt_log"]] == ["failed", "succeeded"]


def test_timeout_stops_the_playbook_and_escalates(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    api = make_api(
        [
            runbook(
                "hangs",
                "Hang",
                ansible_step("hang.yml", timeout="2s", seconds=120),
                escalate=["webhook"],
            )
        ],
        escalation={"webhook": {"url": recorder.url}},
    )
    started = time.monotonic()
    execution = api.wait(api.alertmanager(alert("Hang")).json()["executions"][0])
    assert execution["status"] == "timed_out"
    assert time.monotonic() - started < 30
    assert "within 2s" in execution["steps"][0]["error"]
    assert recorder.wait_for(1)[0].json()["reason"] == "timed_out"


def test_cooldown_refuses_and_escalates_once(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    step = ansible_step("write.yml", message="m", host="h", dest=str(tmp_path / "o"))
    api = make_api(
        [
            runbook(
                "cool",
                "Cool",
                step,
                cooldown="10m",
                concurrency="{{ incident.labels.instance }}",
                escalate=["webhook"],
            )
        ],
        escalation={"webhook": {"url": recorder.url}},
    )
    first = api.alertmanager(alert("Cool", instance="a")).json()["executions"][0]
    other_key = api.alertmanager(alert("Cool", instance="b", fingerprint="fp-2"))
    assert api.wait(first)["status"] == "succeeded"
    assert api.wait(other_key.json()["executions"][0])["status"] == "succeeded"
    answers = [api.alertmanager(alert("Cool", instance="a")).json() for _ in range(3)]
    [refused] = answers[0]["executions"]
    assert all(a["attached"] == [refused] for a in answers[1:])
    state = api.wait(refused)
    assert state["status"] == "refused" and state["error"].startswith("cooldown:")
    assert len(state["escalations"]) == 1
    assert recorder.wait_for(1)[0].json()["reason"] == "refused"


def test_resolved_alert_is_stored_and_matches_nothing_firing(
    make_api: Callable[..., Api], tmp_path: Path
) -> None:
    api = make_api(writes_to(tmp_path / "x"))
    answer = api.alertmanager(alert("Write", status="resolved"))
    assert answer.status_code == 202
    assert answer.json()["executions"] == [] and answer.json()["incidents"] == 1


def test_secret_vars_must_name_extra_vars(make_api: Callable[..., Api], recorder: Recorder) -> None:
    from app.errors import RunbookError

    step = ansible_step("write.yml", message="m", host="h", dest="/nonexistent/out.json")
    with pytest.raises(RunbookError, match=r"secret_vars \['password'\]"):
        make_api([runbook("r", "X", step, secret_vars=["password"])])
