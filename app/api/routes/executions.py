"""Executions: what ran, for which incident, with what result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from app.actions import Action, act
from app.api.deps import ServicesDep, require_token
from app.errors import NotFound
from app.store.models import Execution
from app.store.views import ExecutionSummary, ExecutionView, execution_summary, execution_view

router = APIRouter(prefix="/api", tags=["executions"], dependencies=[Depends(require_token)])


@router.get("/executions")
def list_executions(
    services: ServicesDep,
    status: str | None = None,
    runbook: str | None = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[ExecutionSummary]:
    query = select(Execution).order_by(Execution.created_at.desc()).limit(limit)
    if status:
        query = query.where(Execution.status == status)
    if runbook:
        query = query.where(Execution.runbook == runbook)
    if since:
        query = query.where(Execution.created_at >= since)
    with services.db.read() as session:
        return [execution_summary(e) for e in session.scalars(query)]


@router.get("/executions/{execution_id}")
def get_execution(execution_id: str, services: ServicesDep) -> ExecutionView:
    with services.db.read() as session:
        execution = session.get(Execution, execution_id)
        if execution is None:
            raise NotFound(f"no execution {execution_id}")
        return execution_view(execution)


class ActionRequest(BaseModel):
    """Who acts, and why: kept with the execution and shown in its escalations."""

    by: str = Field(min_length=1, max_length=200, examples=["alice@example.com"])
    reason: str = Field(default="", max_length=2000, examples=["checked the dashboards"])


ACTION_ANSWERS: dict[int | str, dict[str, str]] = {
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
    def handle(execution_id: str, body: ActionRequest, services: ServicesDep) -> ExecutionView:
        return act(services, execution_id, action, by=body.by, reason=body.reason)


_action_route("approve", "Approve an execution that waits for approval: it is queued to run.")
_action_route("reject", "Reject an execution that waits for approval: it ends rejected.")
_action_route(
    "cancel",
    "Cancel an execution: a queued or waiting one ends at once, a running step is stopped "
    "(its process tree ended), a verifying one stops waiting.",
)
