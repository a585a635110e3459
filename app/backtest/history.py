"""The history a backtest replays: each stored incident as it arrived (normalised, the way
the matcher saw it) and what the service did with it. One JSON line per incident in an
export file, so a CI job that cannot reach the production database backtests against the
file and gets the report it would get from the database.

The store keeps normalised incidents, not request bodies: what a runbook matches and
renders is the normalised incident, so a runbook change replays exactly; a body (and the
headers that signed it) would be a second copy of every payload and its credentials."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.errors import RemediatorError
from app.redaction import redact
from app.store.db import Database
from app.store.history import StoredIncident, stored_history


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecordedStep(_Frozen):
    kind: str
    spec: dict[str, Any]
    status: str


class Recorded(_Frozen):
    """One execution the incident started, or (`attached`) was folded into."""

    execution: str
    runbook: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")  # as Runbook.name
    status: str
    trigger: str
    attached: bool = False
    guard: str | None = None
    guard_key: str = ""
    # The runbook's `match.on` then: an updated event folded into an open run without
    # matching (an acknowledgement) is not a match to compare.
    on: list[str] = Field(default_factory=lambda: ["opened"])
    error: str | None = None
    created_at: datetime
    steps: list[RecordedStep] = Field(default_factory=list)


class HistoryEntry(_Frozen):
    """A line of an export file."""

    source: str
    received_at: datetime
    incident: dict[str, Any] = Field(description="The normalised incident as it arrived.")
    did: list[Recorded] = Field(default_factory=list)


class BrokenHistory(RemediatorError):
    """An events file that is not an export (a line that does not parse)."""


def _entry(stored: StoredIncident) -> HistoryEntry:
    return HistoryEntry(
        source=str(stored.document["source"]),
        received_at=stored.received_at,
        incident=stored.document,
        did=[
            Recorded(
                execution=o.execution_id,
                runbook=o.runbook,
                status=o.status,
                trigger=o.trigger,
                attached=o.attached,
                guard=o.guard,
                guard_key=o.guard_key,
                on=list((o.runbook_spec.get("match") or {}).get("on") or ["opened"]),
                error=o.error,
                created_at=o.created_at,
                steps=[RecordedStep(kind=s.kind, spec=s.spec, status=s.status) for s in o.steps],
            )  # fmt: skip
            for o in stored.outcomes
        ],
    )


def from_database(
    db: Database, since: datetime, until: datetime, source: str | None = None
) -> Iterator[HistoryEntry]:
    """Stored incidents in [since, until), oldest first; read sessions only."""
    with db.read() as session:
        for stored in stored_history(session, since=since, until=until, source=source):
            yield _entry(stored)


def from_file(
    path: Path, since: datetime, until: datetime, source: str | None = None
) -> Iterator[HistoryEntry]:
    """An export file's entries in [since, until), in the file's (arrival) order."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = HistoryEntry.model_validate_json(line)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"])
                raise BrokenHistory(
                    f"{path}:{number}: not an export line: {where}: {problem['msg']}"
                ) from exc
            if since <= entry.received_at < until and source in (None, entry.source):
                yield entry


def export_lines(entries: Iterable[HistoryEntry], secrets: list[str]) -> Iterator[str]:
    """JSON lines, every configured secret masked wherever it appears."""
    for entry in entries:
        yield redact(entry.model_dump_json(), secrets) + "\n"
