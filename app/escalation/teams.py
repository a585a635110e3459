"""Microsoft Teams through a Workflows webhook ("When a Teams webhook request is
received"): one Adaptive Card (1.4, what Teams renders everywhere) with the same story as
the Slack message, and a button to the execution's page.

Webhook cards cannot call back, so approval happens on the page. Text from the incident,
or printed by a step, goes only into `TextRun`s, which render no markdown (a TextBlock or
a Fact would turn `[x](https://evil)` into a link); the card's own words are TextBlocks.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from app.config.sections import TeamsTarget
from app.escalation.base import (
    REASONS,
    EscalationMessage,
    attempt_summary,
    not_run_summary,
    outputs_text,
    post_json,
    step_label,
)

CARD_VERSION = "1.4"
_MAX_TAIL = 1200
_MAX_TEXT = 2000


class TeamsNotifier:
    name = "teams"
    follows_incident = False

    def __init__(self, config: TeamsTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        post_json(
            client, self.name, self.config.webhook_url.get_secret_value(),
            content=json.dumps(teams_body(message)).encode(), headers={},
            timeout_s=self.config.timeout_s,
        )  # fmt: skip


def _said(label: str, value: object, *, monospace: bool = False) -> dict[str, Any]:
    """`label` (the card's own word) and `value` (data, shown as plain text)."""
    run: dict[str, Any] = {"type": "TextRun", "text": str(value)[:_MAX_TEXT]}
    if monospace:
        run["fontType"] = "monospace"
    inlines: list[Any] = [{"type": "TextRun", "text": f"{label}: ", "weight": "bolder"}, run]
    return {"type": "RichTextBlock", "inlines": inlines}


def teams_body(message: EscalationMessage) -> dict[str, Any]:
    execution = message.execution
    incident = execution.incident
    why = REASONS.get(message.reason, message.reason)
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": f"remediator: {why}",
            "weight": "bolder",
            "size": "medium",
            "wrap": True,
        },  # fmt: skip
        _said("Incident", incident.get("title", "")),
        _said(
            "Source",
            f"{incident.get('source')} · severity {incident.get('severity')} · "
            f"service {incident.get('service') or '—'}",
        ),  # fmt: skip
        _said("Runbook", f"{execution.runbook} {message.runbook_description}".strip()),
        _said("Status", execution.status + (f" — {execution.error}" if execution.error else "")),
    ]
    if message.approvers:
        body.append(_said("May approve (on the page)", message.approvers))
    for index, step in enumerate(execution.steps):
        label = step_label(index, step)
        if skipped := not_run_summary(step):
            body.append(_said(label, skipped))
        if found := outputs_text(step):
            body.append(_said(f"{label} found", found, monospace=True))
        for attempt in step.attempt_log:
            items: list[dict[str, Any]] = [
                {"type": "TextBlock", "wrap": True, "weight": "bolder",
                 "text": f"{label} attempt {attempt.number}: "
                         f"{attempt.status}, exit {attempt.rc}, {attempt.duration_s:.1f}s"},
            ]  # fmt: skip
            summary = attempt_summary(attempt.detail)
            if summary:
                items.append(_said("Found", summary))
            tail = attempt.output_tail[-_MAX_TAIL:] or "(no output)"
            items.append(_said("Output", tail, monospace=True))
            body.append({"type": "Container", "separator": True, "items": items})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": CARD_VERSION,
        "body": body,
        "actions": [
            {"type": "Action.OpenUrl", "title": "Open execution", "url": message.execution_url}
        ],
    }
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
        ],
    }
