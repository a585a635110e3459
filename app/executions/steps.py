"""What every way of running a step shares: how to stop it, the step as claimed, and the
writes that record how an attempt ended and where that leaves its execution (run by a
worker alone, in a batch, or followed on an engine)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential,
)

from app.executions.lifecycle import (
    finish_execution,
    owe_diagnosis,
    record_attempt,
    start_verification,
)
from app.redaction import redact
from app.runbooks.models import Retry
from app.services import Services
from app.steps.base import StepInput, StepResult
from app.store.models import Execution, ExecutionStatus, StepRow

log = logging.getLogger("remediator.executions")
T = TypeVar("T")


@dataclass
class Stop:
    """Why a running execution should stop: a human cancelled it, or the service is
    shutting down and its grace period is over."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> bool:
        return self.cancelled.is_set() or self.shutdown.is_set()


def after_step(
    session: Session,
    *,
    services: Services,
    execution_id: str,
    pending: Pending,
    result: StepResult,
    policy: Retry,
    stop: Stop,
) -> ExecutionStatus | None:
    """Record how a step ended; the status the execution is left in, or None to go on."""
    row = session.get_one(StepRow, pending.step_id)
    execution = session.get_one(Execution, execution_id)
    now = datetime.now(UTC)
    retries_left = row.attempts < policy.attempts
    final: ExecutionStatus
    shadow = pending.shadow
    if shadow and result.status != "cancelled" and not stop.cancelled.is_set():
        # What the dry run found (even that it would fail) is the shadow's result, not how
        # it ends: the next step dry-runs too.
        row.status, row.finished_at = "would_run", now
        return None
    if result.status == "succeeded":
        row.status, row.finished_at = "succeeded", now
        return None
    if stop.cancelled.is_set():
        final, error = "cancelled", cancel_note(execution)
    elif services.stopping.is_set() and (
        result.status == "cancelled"
        and (pending.idempotent or shadow)  # a dry run is always safe to run again
        or result.status in ("failed", "timed_out")
        and retries_left
        and result.retry
    ):
        # Shutdown, and this step is safe to run again: idempotent, or it was going to be
        # retried anyway.
        row.status = "pending"
        release(execution)
        return "queued"
    elif result.status == "cancelled":
        final, error = "interrupted", "the service stopped mid-step"
    else:
        final, error = result.status, result.error or result.status
        # A step's own guard (terraform's max_destroy) is named like the others.
        execution.guard = (result.detail or {}).get("guard", execution.guard)
    return end_at_step(execution, row, final, error, now)


def go_on(execution: Execution, now: datetime) -> ExecutionStatus:
    """A step that ran apart from its worker's loop (on an engine, in a batch) ended and
    its execution goes on: its next step goes back to the queue for any worker, or no
    step is left to run (`last_step_done`)."""
    failing = execution.failed_as is not None
    if any(s.status == "pending" and (failing or s.phase != "on_failure") for s in execution.steps):
        release(execution)
        return "queued"
    return last_step_done(execution, now)


def last_step_done(execution: Execution, now: datetime) -> ExecutionStatus:
    """No step is left to run: the execution ends as the step that failed said (its
    runbook's `on_failure` steps have run), or every step succeeded (or was skipped, or
    failed and may) and it goes on to verification."""
    owe_diagnosis(execution, now)
    if execution.failed_as is not None:
        final = execution.failed_as
        finish_execution(execution=execution, status=final, error=_failure(execution), now=now)
        return final
    if not any(step.phase == "steps" for step in execution.steps):
        # Diagnose-only: it looked, and said what it found; there was nothing to do.
        finish_execution(execution=execution, status="diagnosed", error=None, now=now)
        return "diagnosed"
    for step in execution.steps:
        if step.status == "pending":  # an on_failure step: nothing failed
            step.status, step.finished_at = "skipped", now
            step.detail = {"summary": "skipped: it runs only when a step fails"}
    return start_verification(execution, now)


def _failure(execution: Execution) -> str:
    """What the step that failed said (its on_failure steps have run since): from its
    row, as the execution's error may have said other things while they ran."""
    failed = next(
        step for step in execution.steps
        if step.phase != "on_failure" and step.status in HANDLED and not step.continue_on_failure
    )  # fmt: skip
    return _said(failed, failed.error or failed.status)


def _said(row: StepRow, error: str) -> str:
    return f"step {row.position + 1} ({row.kind}): {error}"


# How a step may end that its runbook's failure handling answers; a cancel (a human's)
# or an interruption (the service stopped mid-step) ends the execution as it is.
HANDLED: tuple[ExecutionStatus, ...] = ("failed", "timed_out", "refused")


def end_at_step(
    execution: Execution, row: StepRow, final: ExecutionStatus, error: str, now: datetime
) -> ExecutionStatus | None:
    """The step ended `final`, not succeeded. The execution ends with it (the status it
    ends with is answered), both carrying the final status, the error naming the step,
    and a cancel (asked for by a human) not escalated back to them; or it goes on (None):
    past a step that may fail (`continue_on_failure`), or to its runbook's `on_failure`
    steps, each of which then runs whatever the one before it did."""
    row.status, row.finished_at = final, now
    said = _said(row, error)
    # A failure handler, a step that may fail, a diagnostic (its failure is one of the
    # findings): the runbook goes on.
    goes_on = execution.failed_as is not None or row.continue_on_failure or row.phase == "diagnose"
    if final in HANDLED and goes_on:
        return None
    handlers = [s for s in execution.steps if s.phase == "on_failure" and s.status == "pending"]
    if final in HANDLED and handlers:
        execution.failed_as, execution.error = final, said
        for step in execution.steps:
            if step.phase != "on_failure" and step.status == "pending":
                step.status, step.finished_at = "skipped", now
                step.detail = {"summary": f"skipped: step {row.position + 1} failed"}
        return None
    if execution.failed_as is not None:  # cancelled or interrupted in its on_failure steps
        said = f"{_failure(execution)}; then {said}"
    finish_execution(execution=execution, status=final, now=now, error=said,
                     escalate=final != "cancelled")  # fmt: skip
    return final


# Errors that say the store is away (connection refused, server gone), not that the
# write is wrong: a write recording work already done is tried again for these.
STORE_AWAY = (OperationalError, InterfaceError)


def persist(services: Services, write: Callable[[Session], T]) -> T:
    """A write that records work already done (a step's attempt, the status after it).
    While the store is away it is tried again, with backoff, for up to `lease_s` or two
    minutes, whichever is longer: the step ran, so its result is recorded once the store
    is back, instead of lost and the step run again by recovery. Our own lease is renewed
    by the housekeeper as soon as the store answers, before it recovers anything."""

    def once() -> T:
        with services.db.write() as session:
            return write(session)

    return Retrying(
        retry=retry_if_exception_type(STORE_AWAY),
        wait=wait_exponential(multiplier=0.5, max=5.0),
        stop=stop_after_delay(max(services.settings.lease_s, 120.0)),
        before_sleep=_store_away,
        reraise=True,
    )(once)


def _store_away(state: RetryCallState) -> None:
    failure = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("the store is unavailable (%s); recording again in %.1fs",
                type(failure).__name__, wait)  # fmt: skip


def record_result(
    services: Services, step_id: int, position: int, kind: str, number: int, result: StepResult
) -> Callable[[Session], None]:
    """The write recording one attempt's result, masked first: a step that printed a
    configured secret (its own environment, a file it read, an engine's log) must not
    hand it to every reader of the API."""
    secrets = services.secrets
    result = replace(
        result,
        output_tail=redact(result.output_tail, secrets),
        error=redact(result.error, secrets) if result.error else None,
    )
    took = (result.finished_at - result.started_at).total_seconds()
    services.metrics.step_seconds.labels(kind, result.status).observe(took)
    log.info(
        "step %d (%s) attempt %d: %s, exit %s, %.1fs%s", position + 1, kind, number,
        result.status, result.rc, took, f": {result.error}" if result.error else "",
    )  # fmt: skip
    return lambda session: record_attempt(
        session=session, step_id=step_id, number=number, result=result
    )


@dataclass(frozen=True)
class Pending:
    """A step still to run, as read when the execution was claimed."""

    step_id: int
    position: int
    kind: str
    spec: dict[str, Any]
    idempotent: bool
    done: int  # attempts made before (a resumed step keeps its count)
    shadow: bool = False  # its execution is a shadow run: a dry run, changing nothing

    @classmethod
    def of(cls, row: StepRow, mode: str) -> Pending:
        return cls(row.id, row.position, row.kind, row.spec, row.idempotent, row.attempts,
                   is_dry_run(row, mode))  # fmt: skip

    def input(self, execution_id: str) -> StepInput:
        return step_input(execution_id, self.position, self.done + 1, self.spec, self.shadow,
                          idempotent=self.idempotent)  # fmt: skip


def is_dry_run(row: StepRow, mode: str) -> bool:
    """Whether the step dry-runs: every step of a shadow run but a diagnostic, which looks
    for real (it changes nothing by contract)."""
    return mode == "shadow" and row.phase != "diagnose"


def step_input(
    execution_id: str,
    position: int,
    attempt: int,
    spec: dict[str, Any],
    shadow: bool = False,
    *,
    idempotent: bool = False,
) -> StepInput:
    """One attempt of a step, with the timeout its spec was rendered with."""
    timeout = float(spec.get("timeout", 300))
    return StepInput(execution_id, position, attempt, spec, timeout, shadow, idempotent)


def cancel_note(execution: Execution) -> str:
    asked = [a for a in execution.actions if a.action == "cancel"]
    if not asked:
        return "cancelled"
    return f"cancelled by {asked[-1].by}" + (f": {asked[-1].reason}" if asked[-1].reason else "")


def release(execution: Execution) -> None:
    """Back to the queue for any worker: nothing of it is running now."""
    execution.status, execution.claimed_by, execution.lease_expires_at = "queued", None, None
