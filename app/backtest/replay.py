"""Replay a history against a candidate runbook set and compare, per incident, with what
the service did: the runbooks that would start (the matcher and the `match.on` rule, as
ingest applies them), what their steps would render to, and the runbook guards that
count runs over time (`cooldown`, `max_runs`), simulated over the replayed runs.

What cannot be replayed is carried over as it happened: a run refused by a budget, a
breaker or a guard stays refused, and an incident folded into an open run stays folded
(how long a run would have stayed open is not known). A run a human started is not
compared, but counts towards the guards, as it did."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from app.backtest.history import HistoryEntry, Recorded
from app.incident import Incident
from app.runbooks.matcher import Matcher
from app.runbooks.models import Runbook
from app.runbooks.plan import Plan, plan

ChangeKind = Literal[
    "new match", "no longer matches", "different runbooks", "rendered differently",
    "now refused by a guard",
]  # fmt: skip
CHANGE_KINDS: tuple[ChangeKind, ...] = get_args(ChangeKind)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class IncidentRef(_Frozen):
    source: str
    fingerprint: str
    title: str
    received_at: datetime


class Change(_Frozen):
    kind: ChangeKind
    incident: IncidentRef
    runbooks: list[str]
    details: list[str] = Field(default_factory=list)


class RunbookCounts(_Frozen):
    matched_before: int = 0
    matched_now: int = 0
    new_match: int = 0
    no_longer_matches: int = 0
    rendered_differently: int = 0
    now_refused: int = 0


class Report(_Frozen):
    since: datetime
    until: datetime
    incidents: int
    changed: int
    totals: dict[ChangeKind, int]
    runbooks: dict[str, RunbookCounts]
    changes: list[Change]


@dataclass
class _Guards:
    """The runs replayed so far, as the guards count them: per runbook, and per runbook
    and guard key. Pruned to the longest window a runbook asks about."""

    runs: dict[str, deque[datetime]] = field(default_factory=dict)
    last: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def refusal(self, runbook: Runbook, guard_key: str, now: datetime) -> str | None:
        last = self.last.get((runbook.name, guard_key))
        if (
            runbook.cooldown
            and last is not None
            and now - last < timedelta(seconds=runbook.cooldown)
        ):
            return (
                f"cooldown: {runbook.name} would have run for {guard_key} at "
                f"{last.isoformat()}; cooldown is {runbook.cooldown:g}s"
            )
        limit = runbook.max_runs
        if limit is not None:
            runs = self.runs.get(runbook.name, deque())
            while runs and runs[0] <= now - timedelta(seconds=limit.per):
                runs.popleft()
            if len(runs) >= limit.count:
                return (
                    f"rate limit: {runbook.name} would have run {len(runs)} time(s) in "
                    f"{limit.per:g}s; max_runs is {limit.count} per {limit.per:g}s"
                )
        return None

    def ran(self, name: str, guard_key: str, at: datetime) -> None:
        self.runs.setdefault(name, deque()).append(at)
        self.last[(name, guard_key)] = at


@dataclass
class _Tally:
    incidents: int = 0
    changes: list[Change] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    def count(self, runbook: str, what: str) -> None:
        per = self.counts.setdefault(runbook, {})
        per[what] = per.get(what, 0) + 1


def backtest(
    matcher: Matcher, history: Iterable[HistoryEntry], since: datetime, until: datetime
) -> Report:
    """What `matcher`'s runbooks would have done with `history` (oldest first), compared
    with what was done."""
    guards = _Guards()
    tally = _Tally()
    for entry in history:
        tally.incidents += 1
        _replay(matcher, entry, guards, tally)
    changed_incidents = {(c.incident.source, c.incident.fingerprint, c.incident.received_at)
                         for c in tally.changes}  # fmt: skip
    return Report(
        since=since,
        until=until,
        incidents=tally.incidents,
        changed=len(changed_incidents),
        totals={kind: sum(c.kind == kind for c in tally.changes) for kind in CHANGE_KINDS},
        runbooks={name: RunbookCounts(**counts) for name, counts in sorted(tally.counts.items())},
        changes=tally.changes,
    )


def _replay(matcher: Matcher, entry: HistoryEntry, guards: _Guards, tally: _Tally) -> None:
    incident = Incident.model_validate(entry.incident)
    now = entry.received_at
    candidates = {
        item.runbook.name: item.runbook
        for item in matcher.match(incident)
        if incident.status == "resolved" or incident.phase in item.runbook.match.on
    }
    recorded = {o.runbook: o for o in entry.did if _was_a_match(o, incident)}
    for outcome in entry.did:
        if outcome.trigger != "webhook" and outcome.status != "refused" and not outcome.attached:
            guards.ran(outcome.runbook, outcome.guard_key, outcome.created_at)
    ref = IncidentRef(
        source=incident.source, fingerprint=incident.fingerprint, title=incident.title,
        received_at=now,
    )  # fmt: skip
    for name in recorded:
        tally.count(name, "matched_before")
    new, gone = sorted(set(candidates) - set(recorded)), sorted(set(recorded) - set(candidates))
    details: list[str] = []
    for name in sorted(candidates):
        tally.count(name, "matched_now")
        runbook = candidates[name]
        planned = plan(runbook, incident)
        before = recorded.get(name)
        if before is None:
            tally.count(name, "new_match")
            refusal = guards.refusal(runbook, planned.guard_key, now)
            if refusal is None and planned.error is None:
                guards.ran(name, planned.guard_key, now)
            details.append(f"+ {name}: {refusal or planned.error or _steps_line(planned)}")
            continue
        if before.attached or (before.status == "refused" and before.guard is not None):
            continue  # carried over as it happened
        refusal = guards.refusal(runbook, planned.guard_key, now)
        if refusal is not None:
            tally.count(name, "now_refused")
            tally.changes.append(Change(kind="now refused by a guard", incident=ref,
                                        runbooks=[name], details=[refusal]))  # fmt: skip
            continue
        if planned.error is None:
            guards.ran(name, planned.guard_key, now)
        differences = rendering_differences(before, planned)
        if differences:
            tally.count(name, "rendered_differently")
            tally.changes.append(Change(kind="rendered differently", incident=ref,
                                        runbooks=[name], details=differences))  # fmt: skip
    for name in gone:
        tally.count(name, "no_longer_matches")
        details.append(f"- {name}: {_recorded_line(recorded[name])}")
    if new or gone:
        kind: ChangeKind = (
            "different runbooks" if new and gone else "new match" if new else "no longer matches"
        )
        tally.changes.append(Change(kind=kind, incident=ref, runbooks=new + gone,
                                    details=details))  # fmt: skip


def _was_a_match(outcome: Recorded, incident: Incident) -> bool:
    """Executions the matcher started for the incident, or joined because it matched
    (not a human's run, not an acknowledgement folded into the open run)."""
    if outcome.trigger != "webhook":
        return False
    if outcome.attached:
        return incident.status == "resolved" or incident.phase in outcome.on
    return True


def rendering_differences(before: Recorded, planned: Plan) -> list[str]:
    """Where the candidate's rendering differs from what was stored: step by step and
    field by field, both values shown; and a template that now fails (or now renders)."""
    was_error = _render_error(before)
    if planned.error is not None or was_error is not None:
        if planned.error == was_error:
            return []
        return [f"error: {_shown(was_error)} → {_shown(planned.error)}"]
    old: list[Any] = [{step.kind: step.spec} for step in before.steps]
    new: list[Any] = [{step.kind: _as_stored(step.spec)} for step in planned.steps]
    for index, step in enumerate(planned.steps):
        if step.deferred and index < len(old):
            # It reads earlier steps' outputs: rendered only when it runs, so its fields
            # cannot be compared from history; its kind and place still are.
            old[index] = dict.fromkeys(old[index], LATER)
            new[index] = {step.kind: LATER}
    found: list[str] = []
    _diff(old, new, "steps", found)
    return found


LATER = "(rendered when it runs, from earlier steps' outputs)"


def _render_error(before: Recorded) -> str | None:
    """The template error a run was refused with at its start (no step ran)."""
    if before.error is None or any(step.status != "pending" for step in before.steps):
        return None
    if before.status == "failed" and before.error.startswith("template: "):
        return before.error
    if before.status == "shadowed" and before.error.startswith("would fail: template: "):
        return before.error.removeprefix("would fail: ")
    return None


def _diff(old: Any, new: Any, path: str, found: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            _diff(old.get(key), new.get(key), f"{path}.{key}", found)
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (a, b) in enumerate(zip(old, new, strict=True)):
            _diff(a, b, f"{path}[{index}]", found)
    elif old != new or isinstance(old, bool) != isinstance(new, bool):
        found.append(f"{path}: {_shown(old)} → {_shown(new)}")


def _as_stored(value: Any) -> Any:
    """A rendered spec as the database gives it back (JSON), so equal means equal."""
    return json.loads(json.dumps(value, default=str))


def _shown(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)


def _steps_line(planned: Plan) -> str:
    """What it would run, the fields a runbook left unset left out."""
    return "; ".join(
        f"{s.kind} {_shown({k: v for k, v in _as_stored(s.spec).items() if v is not None})}"
        for s in planned.steps
    )


def _recorded_line(before: Recorded) -> str:
    if before.attached:
        return f"joined execution {before.execution[:8]} ({before.status})"
    return f"execution {before.execution[:8]} {before.status}"
