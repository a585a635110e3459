"""Slack: an incoming webhook's message with Block Kit sections, one per step; and, with
the Slack app's signing secret, Approve and Reject buttons on approval notices whose
clicks come back signed to /integrations/slack/interactions.

Everything that came from the incident, or from what a step printed, goes into mrkdwn
through `app.fields.sinks.slack_text` (`slack_label` in a link's label, `slack_code` in a code
block): a title of `<!channel>` stays text, it does not page the channel,
`<https://evil|Runbook>` does not become a link and `*now*` is not bold. Sections that
carry it are `verbatim`, so Slack does not link URLs or channel names in it either.

A click is believed only with a valid `X-Slack-Signature` (HMAC-SHA256 of
`v0:<timestamp>:<raw body>` with the signing secret) and a timestamp within five
minutes; its fields are then data: the execution id is looked up, the Slack user id
mapped through the configuration, and `response_url` used only under the configured
Slack prefix.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx

from app.config.sections import SlackTarget
from app.errors import EscalationError, InvalidSignature, UnsupportedPayload
from app.escalation.base import (
    EscalationMessage,
    attempt_summary,
    not_run_summary,
    outputs_text,
    post_json,
    step_label,
)
from app.fields.sinks import slack_code, slack_label, slack_text
from app.signing import parse_timestamp

# Slack's own advice: refuse a request whose timestamp is more than five minutes away.
CLICK_WINDOW_S = 300
APPROVE, REJECT = "remediator_approve", "remediator_reject"

log = logging.getLogger("remediator.slack")

_MAX_TAIL = 1200  # Slack truncates a section's text at 3,000 characters


class SlackNotifier:
    name = "slack"
    follows_incident = False

    def __init__(self, config: SlackTarget) -> None:
        self.config = config

    def deliver(self, message: EscalationMessage, *, client: httpx.Client) -> None:
        interactive = self.config.signing_secret is not None
        body = json.dumps(slack_body(message, interactive=interactive)).encode()
        post_json(
            client, self.name, self.config.webhook_url.get_secret_value(),
            content=body, headers={}, timeout_s=self.config.timeout_s,
        )  # fmt: skip


def _incident_line(incident: dict[str, Any]) -> str:
    title = incident.get("title", "")
    url = str(incident.get("url") or "")
    # A link only to a plain http(s) URL: `|` or `>` inside would end Slack's link syntax.
    plain = url.startswith(("https://", "http://")) and not set("|<> ") & set(url)
    linked = f"<{slack_code(url)}|{slack_label(title)}>" if plain else slack_text(title)
    return (
        f"*Incident:* {linked}\n*Source:* {slack_text(incident.get('source'))} · *Severity:* "
        f"{slack_text(incident.get('severity'))} · "
        f"*Service:* {slack_text(incident.get('service') or '—')}"
    )


def slack_body(message: EscalationMessage, *, interactive: bool = False) -> dict[str, Any]:
    execution = message.execution
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": message.headline[:150]}},
        {"type": "section", "text": _verbatim(_incident_line(execution.incident))},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "verbatim": True,
                "text": f"*Runbook:* `{execution.runbook}` {message.runbook_description}\n"
                f"*Status:* {execution.status}"
                + (f" — {slack_text(execution.error)}" if execution.error else ""),
            },
        },
    ]
    for index, step in enumerate(execution.steps):
        label = step_label(index, step)
        if skipped := not_run_summary(step):
            blocks.append(
                {"type": "section", "text": _verbatim(f"*{label}:* {slack_text(skipped)}")}
            )
        for attempt in step.attempt_log:
            tail = slack_code(attempt.output_tail[-_MAX_TAIL:] or "(no output)")
            summary = attempt_summary(attempt.detail)
            summary = slack_text(summary) if summary else None
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "verbatim": True,
                        "text": f"*{label} attempt {attempt.number}:* "
                        f"{attempt.status}, exit {attempt.rc}, {attempt.duration_s:.1f}s\n"
                        + (f"{summary}\n" if summary else "")
                        + f"```{tail}```",
                    },
                }
            )
        if found := outputs_text(step):
            blocks.append({"type": "section",
                           "text": _verbatim(f"*Found:* ```{slack_code(found)}```")})  # fmt: skip
    buttons: list[dict[str, Any]] = [
        {
            "type": "button",
            "text": {"type": "plain_text", "text": "Open execution"},
            "url": message.execution_url,
        }
    ]
    if message.approvers:
        blocks.append(
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"*May approve:* {slack_text(message.approvers)}"}
            ]}
        )  # fmt: skip
    if message.reason == "waiting_approval" and interactive:
        buttons[:0] = [
            _button("Approve", APPROVE, execution.id, "primary"),
            _button("Reject", REJECT, execution.id, "danger"),
        ]
    # The buttons last, and always there: past 50 blocks Slack refuses the whole message.
    blocks = blocks[:49]
    blocks.append({"type": "actions", "block_id": "remediator_actions", "elements": buttons})
    return {"text": slack_text(message.headline), "blocks": blocks}


def _verbatim(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "verbatim": True, "text": text}


def _button(text: str, action_id: str, execution_id: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "style": style,
        "value": execution_id,
    }


def verify_click(secret: str, headers: Mapping[str, str], body: bytes, now: float) -> None:
    """Slack's request signing, over the raw bytes, before anything is parsed."""
    stamp = headers.get("x-slack-request-timestamp")
    given = headers.get("x-slack-signature")
    if not stamp or not given:
        raise InvalidSignature("missing X-Slack-Signature or X-Slack-Request-Timestamp")
    parse_timestamp(stamp, now=now, window_s=CLICK_WINDOW_S)
    base = b"v0:" + stamp.strip().encode() + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise InvalidSignature("X-Slack-Signature does not match the body")


@dataclass(frozen=True)
class Click:
    """An Approve or Reject button clicked, as a signed block_actions payload tells it."""

    user_id: str
    action: Literal["approve", "reject"]
    execution_id: str
    response_url: str | None


def read_click(body: bytes) -> Click | None:
    """The click in a form-encoded `payload=<json>` body; None for a click that is not
    one of ours (the "Open execution" link button also reports clicks)."""
    try:
        [raw] = parse_qs(body.decode(), strict_parsing=True)["payload"]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError) as exc:
        raise UnsupportedPayload("not a Slack interaction: a form with one `payload`") from exc
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    user = payload.get("user")
    ours = [
        a for a in actions or [] if isinstance(a, dict) and a.get("action_id") in (APPROVE, REJECT)
    ]
    if not ours:
        return None
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise UnsupportedPayload("a block_actions payload without user.id")
    value, response_url = ours[0].get("value"), payload.get("response_url")
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise UnsupportedPayload("the button's value is not an execution id")
    return Click(
        user_id=user["id"],
        action="approve" if ours[0]["action_id"] == APPROVE else "reject",
        execution_id=value,
        response_url=response_url if isinstance(response_url, str) else None,
    )


def answer_click(config: SlackTarget, click: Click, text: str, *, replace: bool) -> None:
    """Tell the channel what the click did (`replace`: the message itself, so its buttons
    go), through the click's response_url, and only if Slack's prefix starts it."""
    url = click.response_url
    if url is None or not url.startswith(config.response_url_prefix):
        return
    body = {"replace_original": replace, "text": text}
    if not replace:
        body["response_type"] = "ephemeral"
    with httpx.Client() as client:
        try:
            post_json(client, "slack", url, content=json.dumps(body).encode(), headers={},
                      timeout_s=config.timeout_s)  # fmt: skip
        except EscalationError as exc:
            # The action stands whatever the message shows; the page and the API say it.
            log.warning("slack: the message was not updated: %s", exc)
