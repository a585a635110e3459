"""Runbooks: what is loaded and from where, reload, a manual run, and simulate (which
runbooks a payload would start and why, with the rendered steps; nothing runs)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import Admin, Operator, Reader, acting_as
from app.api.deps import ServicesDep
from app.errors import NotFound
from app.manual import run_manually
from app.runbooks.matcher import Matcher
from app.runbooks.models import Runbook, RunbookFile
from app.services import Services, reload_runbooks
from app.simulate import Trust, simulate
from app.sources.registry import SOURCES
from app.store.trust import breakers

router = APIRouter(prefix="/api", tags=["runbooks"])


class RunbookInfo(BaseModel):
    file: str
    line: int
    runbook: Runbook
    breaker_open: bool = Field(default=False, description="Its circuit breaker is open.")
    breaker_opened_at: datetime | None = None


class RunbookSet(BaseModel):
    loaded_at: datetime
    runbooks: list[RunbookInfo]


def _info(item: RunbookFile, opened: dict[str, datetime] | None = None) -> RunbookInfo:
    at = (opened or {}).get(item.runbook.name)
    return RunbookInfo(file=item.file, line=item.line, runbook=item.runbook,
                       breaker_open=at is not None, breaker_opened_at=at)  # fmt: skip


def _set(matcher: Matcher, opened: dict[str, datetime] | None = None) -> RunbookSet:
    return RunbookSet(loaded_at=matcher.loaded_at,
                      runbooks=[_info(i, opened) for i in matcher.runbooks])  # fmt: skip


def _open_breakers(services: Services) -> dict[str, datetime]:
    with services.db.read() as session:
        return {n: b.opened_at for n, b in breakers(session).items() if b.opened_at is not None}


@router.get("/runbooks", response_model_exclude_none=True)
def list_runbooks(_: Reader, services: ServicesDep) -> RunbookSet:
    """Every loaded runbook, by name, with the file and line it came from, and whether its
    circuit breaker is open."""
    matcher = services.matcher
    return _set(matcher, _open_breakers(services))


@router.get(
    "/runbooks/{name}",
    response_model_exclude_none=True,
    responses={404: {"description": "No such runbook loaded."}},
)
def get_runbook(name: str, _: Reader, services: ServicesDep) -> RunbookInfo:
    item = services.matcher.get(name)
    if item is None:
        raise NotFound(f"no runbook {name!r} is loaded")
    return _info(item, _open_breakers(services))


@router.post(
    "/runbooks/reload",
    response_model_exclude_none=True,
    responses={422: {"description": "The files do not load: every problem, file:line; "
                                    "the runbooks in use stay as they were."}},
)  # fmt: skip
def reload(_: Admin, services: ServicesDep) -> RunbookSet:
    """Load `runbooks_dir` again and swap the whole set at once (SIGHUP does the same)."""
    matcher = reload_runbooks(services)
    return _set(matcher)


class Sources(BaseModel):
    known: list[str] = Field(description="Every platform this build understands.")
    configured: list[str] = Field(description="Those with a `sources` entry here.")


@router.get("/sources")
def list_sources(_: Reader, services: ServicesDep) -> Sources:
    """The sources `simulate` can read, and which of them take webhooks here."""
    return Sources(known=list(SOURCES), configured=sorted(services.settings.sources))


class ManualRun(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "reason": "cache full again, alert is flapping",
                    "incident": {
                        "title": "Cache volume on web-1 is 97% full",
                        "severity": "high",
                        "service": "web",
                        "labels": {"alertname": "CacheDirFull", "instance": "web-1"},
                    },
                }
            ]
        }
    )

    reason: str = Field(default="", max_length=2000)
    by: str | None = Field(
        default=None, max_length=200, json_schema_extra={"deprecated": True},
        description="Refused (422) unless it is the caller's own name.",
    )  # fmt: skip
    incident: dict[str, Any] = Field(
        description="A generic-source incident: `title` required; `severity`, `service`, "
        "`labels`, `annotations`, `url`, `fingerprint`, and `source` to tie the run to a "
        "platform's incident (default `manual`)."
    )


@router.post(
    "/runbooks/{name}/run",
    status_code=202,
    responses={
        200: {"description": "The same Idempotency-Key was used before: nothing new started."},
        404: {"description": "No such runbook loaded."},
        422: {"description": "The incident is not a generic-source incident."},
    },
)
def run(
    name: str,
    body: ManualRun,
    identity: Operator,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Run a runbook now for the incident given, whatever its `match` says. Guards and
    approval apply as for a webhook; the answer lists the execution started, or the open
    one for the same incident it was attached to."""
    acting_as(identity, body.by)
    accepted = run_manually(
        services, name, body.incident, by=identity, reason=body.reason,
        idempotency_key=idempotency_key,
    )  # fmt: skip
    content = {
        "event_id": accepted.event_id,
        "executions": accepted.executions,
        "attached": accepted.attached,
        "duplicate": accepted.duplicate,
    }
    return JSONResponse(content, status_code=200 if accepted.duplicate else 202)


class SimulateRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "source": "generic",
                    "payload": {"title": "Disk full on db-1", "labels": {"alertname": "DiskFull"}},
                }
            ]
        }
    )

    source: str = Field(description="The platform whose payload this is (`alertmanager`, ...).")
    payload: Any = Field(description="The webhook body, as the platform would send it.")


@router.post("/simulate", responses={404: {"description": "Unknown source."}})
def simulate_payload(body: SimulateRequest, _: Operator, services: ServicesDep) -> dict[str, Any]:
    """Normalise the payload as the source would (no signature needed) and report, per
    incident, the runbooks that match with the conditions that decided it, the rendered
    steps (and for terraform the version a revert would apply), and why each other
    runbook does not match. Nothing is stored and nothing runs."""
    raw = json.dumps(body.payload).encode()
    trust = Trust(services.db, services.trust)
    return simulate(services.matcher, body.source, raw, services.executors, trust)
