"""How far automation is trusted, as runbooks and the config write it: a runbook's mode,
its circuit breaker, the blast-radius budgets, change freezes; and the rule that decides
a new execution's mode from all of them (the strictest wins: refuse > shadow > approve >
auto). Pure: what the store says (the pause, open breakers, spent budget) is handed in.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.runbooks.duration import Duration

if TYPE_CHECKING:
    from app.config import Settings
    from app.runbooks.models import Runbook

Mode = Literal["auto", "approve", "shadow"]
# What a breaker or a freeze may turn a run into; `refuse` ends it at once.
Then = Literal["approve", "shadow", "refuse"]
Decided = Literal["auto", "approve", "shadow", "refuse"]
STRICTNESS: dict[Decided, int] = {"auto": 0, "approve": 1, "shadow": 2, "refuse": 3}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Breaker(_Strict):
    """Trip after `failures` executions of the runbook ended failed, timed_out or
    interrupted within `within`; then its runs are `then` until a human resets it."""

    failures: int = Field(default=3, ge=1, le=1000)
    within: Duration = 3600.0
    then: Then = "approve"
    enabled: bool = Field(default=True, description="false: this runbook has no breaker.")


class Budget(_Strict):
    """At most `targets` targets (hosts, workdirs, workspaces, repositories) acted on per
    `per`; a run that would take it past is refused before anything runs."""

    targets: int = Field(ge=1)
    per: Duration = 3600.0


class MaxErrors(_Strict):
    """`5` hosts, or `10%` of a batch's hosts."""

    count: int | None = None
    percent: float | None = None

    def limit(self, hosts: int) -> int:
        if self.count is not None:
            return self.count
        return max(1, int(hosts * (self.percent or 0.0) / 100.0))


class Freeze(_Strict):
    """A change freeze: recurring (`schedule` in cron, for `duration`, in `timezone`) or
    one-off (`start` to `end`). Runbooks it covers (globs) run in `mode` while it lasts."""

    name: str = Field(min_length=1, max_length=100)
    schedule: str | None = None
    duration: Duration | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    runbooks: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    mode: Literal["approve", "shadow"] = "approve"

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Freeze:
        recurring = self.schedule is not None or self.duration is not None
        one_off = self.start is not None or self.end is not None
        if recurring == one_off:
            raise ValueError("give either schedule and duration, or start and end")
        if recurring:
            if self.schedule is None or not self.duration:
                raise ValueError("a recurring freeze needs both schedule and duration")
            try:
                CronSim(self.schedule, datetime.now(UTC))
            except CronSimError as exc:
                raise ValueError(
                    f"schedule {self.schedule!r} is not a cron expression: {exc}"
                ) from None
        else:
            if self.start is None or self.end is None:
                raise ValueError("a one-off freeze needs both start and end")
            if self.start.tzinfo is None or self.end.tzinfo is None:
                raise ValueError("start and end need a time zone (Z or +02:00)")
            if self.end <= self.start:
                raise ValueError("end must be after start")
        return self

    def covers(self, runbook: str) -> bool:
        return any(fnmatch.fnmatchcase(runbook, glob) for glob in self.runbooks)

    def window(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The window active at `now`, or the next one (None: none is left)."""
        if self.start is not None and self.end is not None:
            return (self.start, self.end) if now < self.end else None
        assert self.schedule is not None and self.duration is not None
        zone = ZoneInfo(self.timezone)
        local = now.astimezone(zone)
        length = timedelta(seconds=self.duration)
        # The latest start at or before now (cron in local time, a start that DST skips
        # moved as cron moves it), active while now is within its duration; else the next.
        # The duration is wall-clock time (Friday 18:00 + 64h ends Monday 10:00 local
        # across a DST change too); compared in UTC, where a repeated hour is not equal.
        latest = next(CronSim(self.schedule, local + timedelta(seconds=1), reverse=True))
        began, ends = latest.astimezone(UTC), (latest + length).astimezone(UTC)
        if began <= now < ends:
            return began, ends
        upcoming = next(CronSim(self.schedule, local))
        return upcoming.astimezone(UTC), (upcoming + length).astimezone(UTC)

    def active(self, now: datetime) -> tuple[datetime, datetime] | None:
        window = self.window(now)
        return window if window is not None and window[0] <= now < window[1] else None


@dataclass(frozen=True)
class Pause:
    """The pause switch as the store holds it."""

    by: str
    reason: str
    since: datetime
    until: datetime | None
    runbooks: list[str] | None  # globs; None: every runbook

    def covers(self, runbook: str, now: datetime) -> bool:
        if self.until is not None and now >= self.until:
            return False
        return self.runbooks is None or any(
            fnmatch.fnmatchcase(runbook, glob) for glob in self.runbooks
        )


@dataclass(frozen=True)
class Decision:
    """What a new execution of a runbook is: `mode` (or `refuse`), and why, in words."""

    mode: Decided
    reason: str
    # Who made it so: runbook | pause | freeze | breaker.
    by: str = "runbook"


def decide(
    *,
    runbook: str,
    own: Mode,
    now: datetime,
    pause: Pause | None,
    pause_mode: Literal["shadow", "approve"],
    freezes: list[Freeze],
    breaker_then: Then | None,
    breaker_since: datetime | None = None,
) -> Decision:
    """The strictest of the runbook's own mode, a pause, an active freeze and an open
    breaker (`breaker_then` set: it is open)."""
    found = [Decision(own, f"runbook {runbook} is mode {own}")]
    if pause is not None and pause.covers(runbook, now):
        until = f" until {pause.until.isoformat()}" if pause.until else ""
        said = f"automation paused by {pause.by} since {pause.since.isoformat()}{until}"
        found.append(Decision(pause_mode, f"{said}: {pause.reason}", "pause"))
    for freeze in freezes:
        window = freeze.active(now) if freeze.covers(runbook) else None
        if window is not None:
            found.append(Decision(freeze.mode, f"change freeze {freeze.name} until "
                                  f"{window[1].isoformat()}", "freeze"))  # fmt: skip
    if breaker_then is not None:
        since = f" since {breaker_since.isoformat()}" if breaker_since else ""
        found.append(Decision(breaker_then, f"the breaker of {runbook} is open{since}; "
                              f"POST /api/runbooks/{runbook}/breaker/reset to close it",
                              "breaker"))  # fmt: skip
    # The strictest; among equals the first named (the runbook, then pause, freeze, breaker).
    return max(found, key=lambda d: STRICTNESS[d.mode])


@dataclass(frozen=True)
class TrustPolicy:
    """What the config says of trust, for every runbook."""

    breaker: Breaker
    pause_mode: Literal["shadow", "approve"]
    freezes: tuple[Freeze, ...]
    blast_radius: Budget | None

    @classmethod
    def of(cls, settings: Settings) -> TrustPolicy:
        return cls(settings.breaker, settings.pause_mode, tuple(settings.freezes),
                   settings.blast_radius)  # fmt: skip

    def breaker_of(self, runbook: Runbook) -> Breaker:
        return runbook.breaker if runbook.breaker is not None else self.breaker
