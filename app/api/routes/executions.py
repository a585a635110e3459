"""Executions: what ran, for which incident, with what result."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select, tuple_

from app.api.auth import Admin, Operator, Reader, acting_as
from app.api.deps import QueryTime, ServicesDep
from app.api.pagination import link_next
from app.errors import BadRequest, NotFound
from app.executions.actions import Action, act, redeliver
from app.store.models import Execution, IncidentRow
from app.store.views import execution_summaries, execution_view
from app.views import ExecutionSummary, ExecutionView

router = APIRouter(prefix="/api", tags=["executions"])


@router.get("/executions")
def list_executions(
    _: Reader,
    services: ServicesDep,
    request: Request,
    response: Response,
    status: Annotated[list[str] | None, Query(description="One or more statuses.")] = None,
    runbook: str | None = None,
    source: Annotated[str | None, Query(description="The incident's platform.")] = None,
    trigger: Annotated[str | None, Query(pattern="^(webhook|manual)$")] = None,
    since: QueryTime | None = None,
    until: QueryTime | None = None,
    cursor: Annotated[
        str | None, Query(description="From the previous page's `Link: rel=next`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionSummary]:
    """Newest first. A full page carries `Link: <...>; rel="next"` (and `X-Next-Cursor`)
    for the page after it: keyset pagination, so new executions never shift a page."""
    query = (
        select(Execution).order_by(Execution.created_at.desc(), Execution.id.desc()).limit(limit)
    )
    if status:
        query = query.where(Execution.status.in_(status))
    if runbook:
        query = query.where(Execution.runbook == runbook)
    if source:
        query = query.where(Execution.incident.has(IncidentRow.source == source))
    if trigger:
        query = query.where(Execution.trigger == trigger)
    if since:
        query = query.where(Execution.created_at >= since)
    if until:
        query = query.where(Execution.created_at < until)
    if cursor:
        created_at, execution_id = _read_cursor(cursor)
        query = query.where(
            tuple_(Execution.created_at, Execution.id) < tuple_(created_at, execution_id)
        )
    with services.db.read() as session:
        page = list(session.scalars(query))
        summaries = execution_summaries(session, page)
    if len(page) == limit:
        last = page[-1]
        link_next(request, response, _cursor(last.created_at, last.id))
    return summaries


def _cursor(created_at: datetime, execution_id: str) -> str:
    raw = f"{created_at.isoformat()}|{execution_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _read_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created_at, execution_id = raw.split("|", 1)
        moment = datetime.fromisoformat(created_at)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has its zone")
        return moment, execution_id
    except ValueError as exc:
        raise BadRequest(f"cursor {cursor!r} is not one this API gave out") from exc


@router.get("/executions/{execution_id}")
def get_execution(execution_id: str, _: Reader, services: ServicesDep) -> ExecutionView:
    with services.db.read() as session:
        execution = session.get(Execution, execution_id)
        if execution is None:
            raise NotFound(f"no execution {execution_id}")
        return execution_view(execution, services.secrets)


class ActionRequest(BaseModel):
    """Why: kept with the execution and shown in its escalations. Who acts is the
    caller's identity; `by` is for old clients and must be that identity's name."""

    reason: str = Field(default="", max_length=2000, examples=["checked the dashboards"])
    by: str | None = Field(
        default=None, max_length=200, json_schema_extra={"deprecated": True},
        description="Refused (422) unless it is the caller's own name.",
    )  # fmt: skip


ACTION_ANSWERS: dict[int | str, dict[str, str]] = {
    403: {"description": "The caller's role, or the four-eyes rule, does not allow it."},
    404: {"description": "No such execution."},
    409: {"description": "The execution's status does not allow this action."},
}


def _action_route(action: Action, summary: str) -> None:
    @router.post(
        f"/executions/{{execution_id}}/{action}",
        summary=summary,
        responses=ACTION_ANSWERS,
        name=f"{action}_execution",
    )
    def handle(
        execution_id: str, body: ActionRequest, identity: Operator, services: ServicesDep
    ) -> ExecutionView:
        acting_as(identity, body.by)
        return act(services, execution_id, action, by=identity, reason=body.reason)


@router.post(
    "/escalations/{escalation_id}/redeliver",
    summary="Send a delivered or given-up escalation again (recorded as an action).",
    responses={404: {"description": "No such escalation."},
               409: {"description": "It is still being delivered."}},
)  # fmt: skip
def redeliver_escalation(
    escalation_id: str, body: ActionRequest, identity: Admin, services: ServicesDep
) -> ExecutionView:
    acting_as(identity, body.by)
    return redeliver(services, escalation_id, by=identity, reason=body.reason)


_action_route("approve", "Approve an execution that waits for approval: it is queued to run.")
_action_route("reject", "Reject an execution that waits for approval: it ends rejected.")
_action_route(
    "cancel",
    "Cancel an execution: a queued or waiting one ends at once, a running step is stopped "
    "(its process tree ended), a verifying one stops waiting.",
)
