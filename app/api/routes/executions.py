"""Executions: what ran, for which incident, with what result."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

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
