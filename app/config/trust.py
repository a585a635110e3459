"""How far automation is trusted, as the config and runbooks write it: a runbook's mode,
its circuit breaker, blast-radius budgets and change freezes (the rule that decides from
them is `app.runbooks.trust`)."""

from __future__ import annotations

import fnmatch
from datetime import UTC, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.fields.duration import Duration

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
