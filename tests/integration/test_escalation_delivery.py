"""Escalation delivery through the real app: a success told to chat and webhook once, a
target that is down or hangs retried without holding up another, a client error given up
loudly, payload text that cannot mention or link in Slack, and a delivered or given-up
escalation sent again on request."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from tests.support.loopback import serving
from tests.support.platforms import clears_cache
from tests.support.service import (
    ESCALATION_SECRET,
    FAILING_STEP,
    PLAYBOOKS,
    Api,
    Recorder,
    alert,
    delivered,
    runbook,
    slack_marked,
)

pytestmark = pytest.mark.ansible


def test_success_is_told_to_chat_and_webhook_once_and_failure_never_is(
    make_api: Callable[..., Api], recorder: Recorder, tmp_path: Path
) -> None:
    told = ["webhook", "slack"]
    api = make_api(
        [runbook("w", "Write", clears_cache(tmp_path), notify_on_success=told),
         runbook("f", "Fail", FAILING_STEP, notify_on_success=told)],
        playbooks_dir=str(PLAYBOOKS),
        escalation={"webhook": {"url": recorder.url, "secret": ESCALATION_SECRET},
                    "slack": {"webhook_url": recorder.url + "/slack"}},
    )  # fmt: skip
    failed = api.wait(api.alertmanager(alert("Fail")).json()["executions"][0])
    assert failed["status"] == "failed" and failed["escalations"] == []  # no escalate: none
    execution = api.wait(
        api.alertmanager(alert("Write")).json()["executions"][0],
        until=lambda e: (
            len(e["escalations"]) == 2 and all(x["status"] == "delivered" for x in e["escalations"])
        ),
    )
    assert {x["reason"] for x in execution["escalations"]} == {"remediated"}
    by_path = {r.path: r for r in recorder.wait_for(2)}
    assert len(recorder.requests) == 2
    message = Webhook(ESCALATION_SECRET).verify(by_path["/hook"].body, by_path["/hook"].headers)
    assert message["type"] == "remediation.succeeded" and message["reason"] == "remediated"
    assert message["summary"].startswith("[remediator] remediated by w in ")
    assert message["execution"]["status"] == "succeeded"
    slack = by_path["/hook/slack"].json()
    assert slack["text"].startswith("[remediator] remediated by w in ")


def failing_runbooks() -> list[dict[str, Any]]:
    """The example runbook that fails on purpose, escalating to the webhook target."""
    return [runbook("fails", "Fail", FAILING_STEP, escalate=["webhook"])]


def failing_config(recorder: Recorder) -> dict[str, Any]:
    return {"playbooks_dir": str(PLAYBOOKS), "escalation": {"webhook": {"url": recorder.url}}}


def test_escalation_survives_a_target_that_is_down(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    recorder.replies = [500, 503]
    api = make_api(failing_runbooks(), **failing_config(recorder), escalation_max_backoff_s=0.5)
    execution_id = api.alertmanager(alert("Fail")).json()["executions"][0]
    final = delivered(api, execution_id)
    escalation = final["escalations"][0]
    assert escalation["status"] == "delivered"
    assert escalation["attempts"] == 3 and escalation["last_error"] is None
    ids = {r.headers["webhook-id"] for r in recorder.requests}
    assert len(recorder.requests) == 3 and ids == {escalation["id"]}


def test_client_error_from_target_gives_up_loudly(
    make_api: Callable[..., Api], recorder: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    recorder.replies = [400]
    api = make_api(failing_runbooks(), **failing_config(recorder))
    execution_id = api.alertmanager(alert("Fail")).json()["executions"][0]
    final = delivered(api, execution_id)
    assert final["escalations"][0]["status"] == "gave_up"
    assert "answered 400" in final["escalations"][0]["last_error"]
    assert "ESCALATION GIVEN UP" in caplog.text


def test_a_hanging_target_times_out_and_is_retried(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    recorder.replies = ["hang"]
    config = failing_config(recorder)
    config["escalation"]["webhook"]["timeout_s"] = 0.5
    api = make_api(failing_runbooks(), **config, escalation_max_backoff_s=0.5)
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 2)
    assert len(recorder.requests) == 1  # the hung request never completed


def test_payload_text_cannot_mention_or_link_in_slack(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    api = make_api(
        [runbook("always-fails", "Fail", FAILING_STEP, escalate=["slack"])],
        playbooks_dir=str(PLAYBOOKS),
        escalation={"slack": {"webhook_url": recorder.url + "/slack"}},
    )
    hostile = "<!channel> <https://evil.test|Runbook> & <@U0123>"
    api.wait(api.alertmanager(alert("Fail", instance=hostile)).json()["executions"][0])
    [slack] = recorder.wait_for(1)
    message = slack.json()
    marked = slack_marked(message)
    for markup in ("<!channel>", "<https://evil.test|Runbook>", "<@U0123>"):
        assert not any(markup in text for text in marked)
    assert any("&lt;!channel&gt; &lt;https://evil.test|Runbook&gt; &amp; &lt;@U0123&gt;" in text
               for text in marked)  # fmt: skip


@pytest.mark.serial  # timed: it needs the machine to itself
def test_a_hanging_target_does_not_hold_up_another(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    """The webhook receiver takes 8 s to answer each call; Slack's escalations of the same
    failures arrive at once, each target being delivered by its own worker."""
    stalled = threading.Event()

    class Hanging(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            stalled.wait(8)
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with serving(Hanging) as hanging:
        api = make_api(
            [runbook("always-fails", "Fail", FAILING_STEP, escalate=["webhook", "slack"])],
            playbooks_dir=str(PLAYBOOKS),
            escalation={
                "webhook": {"url": hanging + "/hook", "timeout_s": 30},
                "slack": {"webhook_url": recorder.url + "/slack"},
            },
        )
        ids = [
            api.alertmanager(alert("Fail", fingerprint=f"fp-{i}")).json()["executions"][0]
            for i in range(3)
        ]
        for execution_id in ids:
            api.wait(execution_id)
        started = time.monotonic()
        recorder.wait_for(3, timeout=6)
        assert time.monotonic() - started < 6
        stalled.set()


def test_a_receiver_mid_deploy_gets_it_once_and_a_redelivery_sends_it_again(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    """404 (a load balancer mid-deploy) is retried, not given up: delivered exactly once
    when the receiver is back. A human can send it again; a given-up one too."""
    recorder.replies = [404, 404, 404]
    api = make_api(failing_runbooks(), **failing_config(recorder), escalation_max_backoff_s=0.5)
    execution_id = api.alertmanager(alert("Fail")).json()["executions"][0]
    final = delivered(api, execution_id)
    [escalation] = final["escalations"]
    assert (escalation["status"], escalation["attempts"]) == ("delivered", 4)
    assert len(recorder.requests) == 4  # three 404s, then the one delivery

    body = {"reason": "the receiver lost its queue"}
    again = api.client.post(f"/api/escalations/{escalation['id']}/redeliver", json=body,
                            headers=api.auth)  # fmt: skip
    assert again.status_code == 200, again.text
    recorder.wait_for(5)
    assert {r.headers["webhook-id"] for r in recorder.requests} == {escalation["id"]}
    final = delivered(api, execution_id)
    assert final["escalations"][0]["status"] == "delivered"
    [action] = final["actions"]
    assert (action["action"], action["by"]) == ("redeliver", "ops-admin")
    assert escalation["id"] in action["reason"] and "lost its queue" in action["reason"]

    missing = api.client.post("/api/escalations/nope/redeliver", json=body, headers=api.auth)
    assert missing.status_code == 404


def test_a_given_up_escalation_can_be_redelivered(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    recorder.replies = [401]
    api = make_api(failing_runbooks(), **failing_config(recorder), escalation_max_backoff_s=0.5)
    execution_id = api.alertmanager(alert("Fail")).json()["executions"][0]
    [escalation] = delivered(api, execution_id)["escalations"]
    assert escalation["status"] == "gave_up"
    answer = api.client.post(f"/api/escalations/{escalation['id']}/redeliver",
                             json={}, headers=api.auth)  # fmt: skip
    assert answer.status_code == 200, answer.text
    final = api.wait(execution_id, until=lambda e: e["escalations"][0]["status"] == "delivered")
    assert final["escalations"][0]["attempts"] == 2


def test_runbook_secret_vars_never_reach_the_api_or_an_escalation(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    step = {"ansible": {"playbook": "database-failover.yml", "inventory": "inventories/local.ini",
                        "extra_vars": {"cluster": "orders-hunter2-secret", "lag_seconds": "99"}}}  # fmt: skip
    runbooks = [runbook("fails", "Fail", step, escalate=["webhook"], secret_vars=["cluster"])]
    api = make_api(runbooks, **failing_config(recorder))
    final = delivered(api, api.alertmanager(alert("Fail")).json()["executions"][0])
    shown = json.dumps(final)
    assert "hunter2" not in shown
    assert "replica of *** is 99s behind" in final["steps"][0]["output_tail"]
    assert final["steps"][0]["spec"]["extra_vars"]["cluster"] == "***"
    [hook] = recorder.wait_for(1)
    assert b"hunter2" not in hook.body and b"replica of *** is" in hook.body
