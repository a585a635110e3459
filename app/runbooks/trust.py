"""How far automation is trusted: the rule that decides a new execution's mode from the
runbook's own, the pause, change freezes and its breaker (`app.config.trust`; the
strictest wins: refuse > shadow > approve > auto). Pure: what the store says (the pause,
open breakers, spent budget) is handed in.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from app.config.trust import STRICTNESS, Breaker, Budget, Decided, Freeze, Mode, Then

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.runbooks.models import Runbook


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
