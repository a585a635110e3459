"""The trust switches: pause and resume all automation (or some runbooks), whether it is
paused and which freezes are active or next, and a runbook's breaker: its state and its
reset. Every change is audited (the audit trail records each call that changes state),
and the name recorded is the caller's credential's."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.auth import Operator, Reader
from app.api.deps import QueryTime, ServicesDep
from app.config.trust import Freeze
from app.errors import BadRequest, NotFound
from app.fields.duration import parse_duration
from app.services import Services
from app.store.models import BreakerRow
from app.store.trust import (
    breakers,
    clear_pause,
    close_breaker,
    read_breaker,
    read_pause,
    set_pause,
)

router = APIRouter(prefix="/api", tags=["automation"])
log = logging.getLogger("remediator.automation")


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000, description="Why; shown and audited.")
    until: QueryTime | None = Field(default=None, description="Ends by itself at this time.")
    for_: str | None = Field(
        default=None, alias="for", description="Or for this long (`2h`, `30m`), from now."
    )
    runbooks: list[Annotated[str, Field(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=100, description="Globs of the runbooks paused; all if absent."
    )

    @field_validator("for_")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class ResumeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2000)


class PauseState(BaseModel):
    paused: bool
    by: str | None = None
    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    runbooks: list[str] | None = Field(default=None, description="None: every runbook.")
    mode: str = Field(description="What new runs of paused runbooks become.")


class FreezeState(BaseModel):
    name: str
    runbooks: list[str]
    mode: str
    active: bool
    start: datetime
    end: datetime


class AutomationState(BaseModel):
    pause: PauseState
    freezes: list[FreezeState] = Field(description="Each freeze's active or next window.")
    breakers_open: list[str] = Field(description="Runbooks whose breaker is open.")


class BreakerState(BaseModel):
    runbook: str
    open: bool
    opened_at: datetime | None = None
    failures: list[str] = Field(default_factory=list, description="The executions that tripped it.")
    reset_at: datetime | None = None
    reset_by: str | None = None
    reset_reason: str | None = None


class BreakerReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


def automation_state(services: Services, now: datetime) -> AutomationState:
    with services.db.read() as session:
        row = read_pause(session, now)
        opened = sorted(name for name, b in breakers(session).items() if b.opened_at is not None)
        pause = PauseState(paused=False, mode=services.settings.pause_mode)
        if row is not None:
            pause = PauseState(paused=True, by=row.by, reason=row.reason, since=row.since,
                               until=row.until, runbooks=row.runbooks,
                               mode=services.settings.pause_mode)  # fmt: skip
    return AutomationState(pause=pause, freezes=_freezes(services.trust.freezes, now),
                           breakers_open=opened)  # fmt: skip


def _freezes(freezes: tuple[Freeze, ...], now: datetime) -> list[FreezeState]:
    shown = []
    for freeze in freezes:
        window = freeze.window(now)
        if window is not None:
            shown.append(FreezeState(name=freeze.name, runbooks=freeze.runbooks, mode=freeze.mode,
                                     active=window[0] <= now, start=window[0],
                                     end=window[1]))  # fmt: skip
    return shown


@router.get("/automation")
def get_automation(_: Reader, services: ServicesDep) -> AutomationState:
    """Whether automation is paused (by whom, why, since and until when), which freezes
    are active or next, and which runbooks' breakers are open."""
    return automation_state(services, datetime.now(UTC))


@router.post("/automation/pause", responses={400: {"description": "`until` is past."}})
def pause(body: PauseRequest, identity: Operator, services: ServicesDep) -> AutomationState:
    """New executions of the runbooks named (all, without `runbooks`) run in the config's
    `pause_mode` (shadow, or approve) until resumed or `until`; running ones finish."""
    now = datetime.now(UTC)
    until = body.until
    if body.for_ is not None:
        until = now + timedelta(seconds=parse_duration(body.for_))
    if until is not None and until <= now:
        raise BadRequest(f"until ({until.isoformat()}) is already past")
    with services.db.write() as session:
        set_pause(session, by=identity.label, reason=body.reason, since=now, until=until,
                  runbooks=body.runbooks)  # fmt: skip
    log.warning("automation paused by %s until %s for %s: %s", identity.label,
                until or "resumed", body.runbooks or "every runbook", body.reason)  # fmt: skip
    return automation_state(services, now)


@router.post("/automation/resume")
def resume(body: ResumeRequest, identity: Operator, services: ServicesDep) -> AutomationState:
    """Automation runs as each runbook says again (resuming when not paused is no error)."""
    with services.db.write() as session:
        was = clear_pause(session)
    if was is not None:
        log.warning("automation resumed by %s (paused by %s since %s): %s", identity.label,
                    was.by, was.since, body.reason or "no reason given")  # fmt: skip
    return automation_state(services, datetime.now(UTC))


def breaker_state(name: str, row: BreakerRow | None) -> BreakerState:
    if row is None:
        return BreakerState(runbook=name, open=False)
    return BreakerState(
        runbook=name, open=row.opened_at is not None, opened_at=row.opened_at,
        failures=list(row.failures or []), reset_at=row.reset_at, reset_by=row.reset_by,
        reset_reason=row.reset_reason,
    )  # fmt: skip


@router.get("/runbooks/{name}/breaker", responses={404: {"description": "No such runbook."}})
def get_breaker(name: str, _: Reader, services: ServicesDep) -> BreakerState:
    if services.matcher.get(name) is None:
        raise NotFound(f"no runbook {name!r} is loaded")
    with services.db.read() as session:
        return breaker_state(name, read_breaker(session, name))


@router.post("/runbooks/{name}/breaker/reset", responses={404: {"description": "No such runbook."}})
def reset_breaker(
    name: str, body: BreakerReset, identity: Operator, services: ServicesDep
) -> BreakerState:
    """Close the breaker: the runbook runs in its own mode again, and only failures from
    now on count towards tripping it again."""
    if services.matcher.get(name) is None:
        raise NotFound(f"no runbook {name!r} is loaded")
    with services.db.write() as session:
        close_breaker(session, runbook=name, by=identity.label, reason=body.reason,
                      now=datetime.now(UTC))  # fmt: skip
    log.warning("breaker of %s reset by %s: %s", name, identity.label, body.reason)
    with services.db.read() as session:
        return breaker_state(name, read_breaker(session, name))
