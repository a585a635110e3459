"""Following remote steps: work launched on an engine (an AWX job, a pipeline run) is
looked at by its handle until the engine says it ended, without a thread waiting on it.

The state is the row (the step's `remote` handle, the execution's next look and
deadline), as with verification: any replica picks a look up, a restart or a replica
taking over re-attaches to the same handle, and nothing is launched twice because the
local process went away. A look that is due is claimed by pushing it `HOLD_S` ahead; a
follower that dies mid-look only delays the next one by that much.

Each look: cancel asked for → ask the engine to cancel; past the step's timeout → ask
the engine to cancel and end `timed_out`; else ask where it is. An engine that cannot be
asked is asked again at the next look (after the wait it asked for, on 429/503).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.engine_http import EngineError
from app.errors import ExecutorError
from app.executions.live import Attempt, LiveOutput
from app.executions.run import settle
from app.executions.steps import persist, record_result, step_input
from app.runbooks.models import Retry
from app.services import Services
from app.steps.base import Remote, RemoteExecutor, ShowsProgress, StepResult, StepStatus
from app.store.models import Execution, OutputChunk, StepRow
from app.store.queue import claim_due_waits
from app.store.views import masked_values

log = logging.getLogger("remediator.follow")
# Long enough for a look to finish (two calls within the engine's request timeout,
# usually milliseconds); a look taken twice is harmless (see _unchanged), only wasteful.
HOLD_S = 10.0
LOOKS_AT_ONCE = 8


@dataclass(frozen=True)
class Waiting:
    """One launched step, as read when its look was claimed."""

    execution_id: str
    step_id: int
    position: int
    kind: str
    spec: dict[str, Any]
    remote: dict[str, Any]
    cancel_requested: bool
    deadline_at: datetime | None


@dataclass(frozen=True)
class Look:
    remote: Remote | None
    # The engine could not be asked: why, and how long it asked us to wait.
    failure: str | None = None
    wait_s: float = 0.0
    # Output the job printed since the last look, and its handle noting that.
    said: tuple[str, dict[str, Any]] | None = None


def follow_remote(services: Services) -> int:
    """One round of due looks; answers how many were taken."""
    now = datetime.now(UTC)
    with services.db.write() as session:
        ids = claim_due_waits(session=session, now=now, hold_s=HOLD_S)
        rows = session.execute(
            select(StepRow.execution_id, StepRow.id, StepRow.position, StepRow.kind,
                   StepRow.spec, StepRow.remote, Execution.cancel_requested,
                   Execution.deadline_at)
            .join(Execution, Execution.id == StepRow.execution_id)
            .where(StepRow.execution_id.in_(ids), StepRow.status == "running")
        ).all() if ids else []  # fmt: skip
        waiting = [Waiting(*row) for row in rows if row.remote is not None]
    if not waiting:
        return 0
    # Side by side: an engine that answers slowly holds one slot, and the rest go on.
    with ThreadPoolExecutor(max_workers=min(LOOKS_AT_ONCE, len(waiting))) as pool:
        looks = list(pool.map(lambda w: _look(services, w), waiting))
    going = [(w, look) for w, look in zip(waiting, looks, strict=True)
             if look.remote is None or look.remote.ended is None]  # fmt: skip
    if going:
        # Still going: every next look written in one transaction, not one per job.
        def still_going(session: Session) -> None:
            for w, look in going:
                _still_going(services, session, w, look)

        persist(services, still_going)
    for w, look in zip(waiting, looks, strict=True):
        if look.remote is not None and look.remote.ended is not None:
            _ended(services, w, look.remote.ended)
    return len(waiting)


def _look(services: Services, waiting: Waiting) -> Look:
    executor = services.executors.get(waiting.kind)
    remote = waiting.remote
    if not isinstance(executor, RemoteExecutor):
        return Look(_unfollowable(waiting, f"no executor for {waiting.kind!r} to follow it"))
    step = step_input(waiting.execution_id, waiting.position, int(remote["attempt"]),
                      waiting.spec)  # fmt: skip
    overdue = waiting.deadline_at is not None and datetime.now(UTC) >= waiting.deadline_at
    stopping: StepStatus | None = (
        "cancelled" if waiting.cancel_requested else "timed_out" if overdue else None
    )
    try:
        if stopping is not None:
            return Look(executor.cancel(step, remote["handle"], stopping))
        now = executor.poll(step, remote["handle"])
        return Look(now, said=_said(executor, now) if now.ended is None else None)
    except ExecutorError as exc:
        if stopping == "timed_out":
            # Out of time, and the engine cannot even be asked to stop: end it here, and
            # say the job may still be running, so the human paged looks at the engine.
            why = f"timed out; could not ask the engine to cancel it ({exc}): it may still run"
            return Look(_unfollowable(waiting, why, status="timed_out"))
        wait = exc.retry_after_s if isinstance(exc, EngineError) else 0.0
        return Look(None, failure=str(exc), wait_s=wait)


def _said(executor: RemoteExecutor, now: Remote) -> tuple[str, dict[str, Any]] | None:
    """What the running job printed since the last look (for people following it live);
    nothing when its engine cannot say, or cannot be asked now (the next look asks)."""
    if not isinstance(executor, ShowsProgress):
        return None
    try:
        return executor.output_since(now.handle)
    except ExecutorError:
        return None


def _unfollowable(waiting: Waiting, why: str, status: StepStatus = "failed") -> Remote:
    now = datetime.now(UTC)
    url = waiting.remote.get("url")
    return Remote(
        waiting.remote["handle"], url,
        ended=StepResult(status, None, "", now, now, error=why, detail={"url": url}),
    )  # fmt: skip


def _unchanged(session: Session, waiting: Waiting) -> bool:
    """The execution and its step are still as the look found them (nobody cancelled,
    settled or re-attached them meanwhile); the execution's row is locked from here."""
    now = session.execute(
        select(Execution.status, Execution.claimed_by, StepRow.remote)
        .join(StepRow, StepRow.execution_id == Execution.id)
        .where(Execution.id == waiting.execution_id, StepRow.id == waiting.step_id)
        .with_for_update(key_share=True, of=Execution)
    ).first()
    return (
        now is not None
        and now.status == "running"
        and now.claimed_by is None
        and now.remote == waiting.remote
    )


def _still_going(services: Services, session: Session, waiting: Waiting, look: Look) -> None:
    if not _unchanged(session, waiting):
        return
    executor = services.executors.get(waiting.kind)
    interval = executor.poll_interval_s if isinstance(executor, RemoteExecutor) else HOLD_S
    changes: dict[str, Any] = {
        "next_check_at": datetime.now(UTC) + timedelta(seconds=max(interval, look.wait_s))
    }
    if look.failure is not None:
        changes["error"] = f"step {waiting.position + 1} ({waiting.kind}): {look.failure}"
    elif look.remote is not None:
        handle = look.remote.handle
        if look.said is not None:
            text, handle = look.said
            _show(services, session, waiting, text)
        if handle != waiting.remote["handle"]:
            remote = {**waiting.remote, "handle": handle, "url": look.remote.url}
            session.execute(
                update(StepRow).where(StepRow.id == waiting.step_id).values(remote=remote)
            )
    session.execute(update(Execution).where(Execution.id == waiting.execution_id).values(changes))


def _show(services: Services, session: Session, waiting: Waiting, text: str) -> None:
    """Output a running remote step printed since the last look, stored as a local step's
    is (the same LiveOutput: masked, bounded), in the transaction that records the look.
    The engine gives whole lines, so all of it is written at once."""
    if not text:
        return
    number = int(waiting.remote["attempt"])
    # Where this text starts: after the attempt's last chunk.
    shown = session.scalar(
        select(OutputChunk.offset + func.length(OutputChunk.text))
        .where(OutputChunk.step_id == waiting.step_id, OutputChunk.attempt == number)
        .order_by(OutputChunk.id.desc())
        .limit(1)
    )
    execution = session.get_one(Execution, waiting.execution_id)
    attempt = Attempt(waiting.execution_id, waiting.step_id, waiting.position, number)
    secrets = masked_values(execution, services.secrets)
    output = LiveOutput(attempt, secrets, offset=int(shown or 0))
    output(text)
    output.take(session, final=True)


def _ended(services: Services, waiting: Waiting, ended: StepResult) -> None:
    launched_at = datetime.fromisoformat(str(waiting.remote["launched_at"]))
    ended = replace(ended, started_at=launched_at)
    write = record_result(services, waiting.step_id, waiting.position, waiting.kind,
                          int(waiting.remote["attempt"]), ended)  # fmt: skip

    def settled(session: Session) -> str | None:
        if not _unchanged(session, waiting):
            return None
        execution = session.get_one(Execution, waiting.execution_id)
        row = session.get_one(StepRow, waiting.step_id)
        write(session)
        policy = Retry.model_validate(execution.runbook_spec.get("retry", {}))
        execution.error = None
        return settle(execution, row, ended, policy)

    status = persist(services, settled)
    if status is not None:
        log.info("execution %s: step %d (%s) ended on its engine; execution %s",
                 waiting.execution_id, waiting.position + 1, waiting.kind, status)  # fmt: skip
        services.work_ready.set()
