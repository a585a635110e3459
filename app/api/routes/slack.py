"""POST /integrations/slack/interactions: Approve and Reject clicked in Slack.

Slack wants an answer within 3 s: the action is one short transaction, and the message
update through `response_url` is sent after the answer.
"""

from __future__ import annotations

import time
from dataclasses import replace

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from app.api.auth import authenticator
from app.api.bodies import read_body
from app.api.deps import get_services
from app.api.errors import answer_for, error_body
from app.config.sections import SlackTarget, SlackUser
from app.errors import Conflict, Forbidden, NotFound
from app.escalation.slack import answer_click, read_click, verify_click
from app.executions.actions import act
from app.fields.sinks import slack_text
from app.identity import Identity

router = APIRouter(tags=["integrations"])


def _identity(request: Request, config: SlackTarget, user_id: str) -> Identity:
    mapped = config.users.get(user_id)
    if isinstance(mapped, SlackUser):
        return Identity(mapped.name, frozenset(mapped.roles), "slack")
    known = authenticator(request).named(mapped) if mapped is not None else None
    if known is None:
        raise Forbidden(f"Slack user {user_id} is not mapped to anyone (escalation.slack.users)")
    return replace(known, via="slack")


@router.post(
    "/integrations/slack/interactions",
    summary="Slack's interactivity request URL: Approve and Reject buttons.",
    responses={403: {"description": "The Slack user is unknown, or may not do this."},
               409: {"description": "The execution no longer waits for approval."}},
)  # fmt: skip
async def slack_interactions(request: Request) -> JSONResponse:
    services = get_services(request)
    config = services.settings.escalation.slack
    if config is None or config.signing_secret is None:
        raise NotFound("Slack interactivity is not configured (escalation.slack.signing_secret)")
    settings = services.settings
    body = await read_body(
        request.receive, request.headers, settings.max_body_bytes, settings.body_timeout_s
    )
    verify_click(config.signing_secret.get_secret_value(), request.headers, body, time.time())
    click = read_click(body)
    if click is None:
        return JSONResponse({})
    identity = _identity(request, config, click.user_id)
    request.state.identity = identity
    try:
        view = await run_in_threadpool(
            act, services, click.execution_id, click.action, by=identity, reason="from Slack"
        )
    except (Forbidden, Conflict, NotFound) as refused:
        # The person who clicked hears why, in Slack; the answer itself is audited.
        status, kind = answer_for(refused)
        tell = BackgroundTask(answer_click, config, click, f"Not done: {refused}", replace=False)
        return JSONResponse(error_body(kind, str(refused)), status_code=status, background=tell)
    done = (
        f"{'Approved' if click.action == 'approve' else 'Rejected'} by {identity.label}: "
        f"`{view.runbook}` for “{slack_text(view.incident.get('title', ''))}” is now "
        f"{view.status}."
    )
    update = BackgroundTask(answer_click, config, click, done, replace=True)
    return JSONResponse({}, background=update)
