"""GET /api/stats: what the automation is worth, per runbook and overall."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from app.api.auth import Reader
from app.api.deps import QueryTime, ServicesDep
from app.errors import BadRequest
from app.services import Services
from app.store.stats import Stats, remediation_stats

router = APIRouter(prefix="/api", tags=["stats"])

DEFAULT_WINDOW = timedelta(days=7)


@router.get("/stats")
async def stats(
    _: Reader,
    services: ServicesDep,
    since: Annotated[
        QueryTime | None, Query(description="Executions created from here (default: 7 days ago).")
    ] = None,
    until: Annotated[QueryTime | None, Query(description="... up to here (default: now).")] = None,
    runbook: Annotated[str | None, Query(description="One runbook only.")] = None,
) -> Stats:
    """Runs, success and escalation rates, pages avoided, and time to remediate and to
    approval (nearest-rank p50/p90, seconds), over the executions created in the window."""
    end = until if until is not None else datetime.now(UTC)
    start = since if since is not None else end - DEFAULT_WINDOW
    if start >= end:
        raise BadRequest(f"since ({start.isoformat()}) must be before until ({end.isoformat()})")
    return await run_in_threadpool(_read, services, start, end, runbook)


def _read(services: Services, since: datetime, until: datetime, runbook: str | None) -> Stats:
    with services.db.read() as session:
        return remediation_stats(session, since=since, until=until, runbook=runbook)
