"""The Microsoft Teams target: a Workflows webhook gets an Adaptive Card that validates
against the published schema (cut into tests/fixtures/contracts), with payload text only
where Teams renders no markdown, and a button to the execution's page."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema

from tests.support.service import (
    FAILING_STEP,
    FIXTURES,
    PLAYBOOKS,
    Api,
    Recorder,
    alert,
    delivered,
    runbook,
)

SCHEMA = json.loads((FIXTURES / "contracts" / "adaptive-card-1.4.json").read_text())
HOSTILE = "[click me](https://evil.example) **now** {{DATE(2017-02-14T06:08:39Z, SHORT)}}"


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_a_failure_reaches_teams_as_a_valid_adaptive_card(
    make_api: Callable[..., Api], recorder: Recorder
) -> None:
    recorder.replies = [202]  # what a Workflows trigger answers
    api = make_api(
        [runbook("always-fails", "Fail", FAILING_STEP, escalate=["teams"],
                 description="Fails on purpose")],
        escalation={"teams": {"webhook_url": recorder.url + "/workflows/abc"}},
        playbooks_dir=str(PLAYBOOKS),
    )  # fmt: skip
    payload = alert("Fail")
    payload["alerts"][0]["annotations"]["summary"] = HOSTILE
    execution_id = api.alertmanager(payload).json()["executions"][0]
    final = delivered(api, execution_id)
    assert [(e["target"], e["status"]) for e in final["escalations"]] == [("teams", "delivered")]

    [request] = recorder.wait_for(1)
    assert request.path == "/hook/workflows/abc"
    assert request.headers["content-type"] == "application/json"
    message = request.json()
    assert message["type"] == "message"
    [attachment] = message["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    jsonschema.validate(card, SCHEMA)
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    [button] = card["actions"]
    assert button == {"type": "Action.OpenUrl", "title": "Open execution",
                      "url": f"http://remediator.test/ui/#/executions/{execution_id}"}  # fmt: skip

    # The payload's text is there, whole, and only as TextRuns (no markdown, no functions).
    holders = [n for n in walk(card) if HOSTILE in json.dumps(n.get("text", ""))]
    assert holders and {n["type"] for n in holders} == {"TextRun"}
    texts = [n for n in walk(card) if n.get("type") == "TextBlock"]
    assert all("evil" not in block["text"] for block in texts)
    assert any("remediation failed" in block["text"] for block in texts)
    outputs = [n["text"] for n in walk(card) if n.get("fontType") == "monospace"]
    assert outputs and "promoting it would lose writes" in outputs[0]
