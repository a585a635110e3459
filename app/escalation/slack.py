"""Slack incoming webhook: a readable message with Block Kit sections, one per step.

Everything that came from the incident, or from what a step printed, goes into mrkdwn
through `app.sinks.slack_text`: a title of `<!channel>` stays text, it does not page
the channel, and `<https://evil|Runbook>` does not become a link.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from app.config import SlackTarget
from app.escalation.base import EscalationMessage, attempt_summary, post_json
from app.sinks import slack_text

_MAX_TAIL = 1200  # Slack truncates a section's text at 3,000 characters


class SlackNotifier:
    name = "slack"

    def __init__(self, config: SlackTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        body = json.dumps(slack_body(message)).encode()
        post_json(
            client, self.name, self.config.webhook_url.get_secret_value(),
            content=body, headers={}, timeout_s=self.config.timeout_s,
        )  # fmt: skip


def _incident_line(incident: dict[str, Any]) -> str:
    title = slack_text(incident.get("title", ""))
    url = str(incident.get("url") or "")
    # A link only to a plain http(s) URL: `|` or `>` inside would end Slack's link syntax.
    plain = url.startswith(("https://", "http://")) and not set("|<> ") & set(url)
    linked = f"<{slack_text(url)}|{title}>" if plain else title
    return (
        f"*Incident:* {linked}\n*Source:* {slack_text(incident.get('source'))} · *Severity:* "
        f"{slack_text(incident.get('severity'))} · "
        f"*Service:* {slack_text(incident.get('service') or '—')}"
    )


def slack_body(message: EscalationMessage) -> dict[str, Any]:
    execution = message.execution
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.headline[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _incident_line(execution.incident)}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": f"*Runbook:* `{execution.runbook}` {message.runbook_description}\n"
                f"*Status:* {execution.status}"
                + (f" — {slack_text(execution.error)}" if execution.error else ""),
            },
        },
    ]
    for index, step in enumerate(execution.steps):
        for attempt in step.attempt_log:
            tail = slack_text(attempt.output_tail[-_MAX_TAIL:] or "(no output)")
            summary = attempt_summary(attempt.detail)
            summary = slack_text(summary) if summary else None
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": f"*Step {index + 1} ({step.kind}) attempt {attempt.number}:* "
                        f"{attempt.status}, exit {attempt.rc}, {attempt.duration_s:.1f}s\n"
                        + (f"{summary}\n" if summary else "")
                        + f"```{tail}```",
                    },
                }
            )
    blocks.append(
        {
            "type": "actions",
            "elements": [
                {
                    "type": "button",
                    "text": {"type": "plain_text", "text": "Open execution"},
                    "url": message.execution_url,
                }
            ],
        }
    )
    return {"text": slack_text(message.headline), "blocks": blocks[:50]}
