"""run_execution: (a worker claimed it) each step with retries → final status →
escalations owed, written with that status. A remote step is launched here and the
execution handed to the follower (app.executions.follow) until the engine says it ended.
recover_expired: work whose worker died is requeued if no step started, else
interrupted and escalated."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_result, stop_after_attempt

from app.errors import ExecutorError
from app.executions.batch import Member, hand_back, run_batched
from app.executions.lifecycle import finish_execution
from app.executions.live import Attempt, live_output
from app.executions.prepare import prepare_step
from app.executions.steps import (
    Pending,
    Stop,
    after_step,
    cancel_note,
    end_at_step,
    go_on,
    is_dry_run,
    last_step_done,
    persist,
    record_result,
    release,
)
from app.logs import log_context
from app.runbooks.models import Batch, Retry
from app.services import Services
from app.steps.base import (
    BatchExecutor,
    DryRuns,
    LocalExecutor,
    Remote,
    RemoteExecutor,
    StepInput,
    StepResult,
    rendered_only,
)
from app.store.models import ActionRow, Execution, ExecutionStatus, StepRow
from app.store.queue import expired_executions

log = logging.getLogger("remediator.executions")


def run_step(
    executor: LocalExecutor,
    step: StepInput,
    policy: Retry,
    *,
    stop: Callable[[], bool],
    keep_trying: Callable[[], bool],
    sleep: Callable[[float], Any],
    on_attempt: Callable[[int, StepResult], None],
    live: Callable[[int], AbstractContextManager[Callable[[str], None]]] | None = None,
) -> StepResult:
    """Run one step, retried with exponential backoff while it fails or times out, from
    attempt `step.attempt` (a resumed step keeps its count) up to `policy.attempts`.
    `stop()` ends an attempt; no new attempt starts once `keep_trying()` is false.
    `live(attempt)` opens where an attempt's output goes as it is produced."""
    attempt = step.attempt - 1
    last: StepResult | None = None

    def once() -> StepResult:
        nonlocal attempt, last
        if last is not None and not keep_trying():
            return last  # stopped during the backoff: the retry is left to whoever resumes it
        attempt += 1
        started = datetime.now(UTC)
        try:
            with live(attempt) if live is not None else nullcontext() as said:
                # The same step (a shadow's stays a shadow), this attempt.
                result = executor.run(replace(step, attempt=attempt, live=said), cancelled=stop)
        except ExecutorError as exc:
            result = StepResult("failed", None, "", started, datetime.now(UTC), error=str(exc))
        on_attempt(attempt, result)
        last = result
        return result

    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.attempts - step.attempt + 1)),
        wait=lambda state: policy.delay(state.attempt_number),
        retry=retry_if_result(
            lambda r: (
                r.status in ("failed", "timed_out") and r.retry and not stop() and keep_trying()
            )
        ),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
        sleep=sleep,
    )
    result: StepResult = retrying(once)
    return result


@contextmanager
def execution_logged(services: Services, execution_id: str) -> Iterator[None]:
    """Every line logged inside names the execution, its runbook and its event."""
    with services.db.read() as session:
        execution = session.get_one(Execution, execution_id)
        fields = {"runbook": execution.runbook, "event_id": execution.incident.event_id}
    with log_context(execution_id=execution_id, **fields):
        yield


def run_execution(
    services: Services, execution_id: str, stop: Stop, partners: Sequence[Member] | None = None
) -> ExecutionStatus:
    """Run a claimed execution's pending steps; answers the status it is left in: final,
    `verifying`, or `queued` when shutdown released it for another worker. `partners`
    (claimed with it, app.executions.batch; maybe none) run its next step with it, as
    one batch; None when its next step does not batch."""
    batch = None if partners is None else list(partners)
    try:
        return _run_steps(services, execution_id, stop, batch)
    finally:
        if batch:
            hand_back(services, batch)  # it stopped before their step


def _run_steps(
    services: Services, execution_id: str, stop: Stop, batch: list[Member] | None
) -> ExecutionStatus:
    with services.db.read() as session:
        execution = session.get_one(Execution, execution_id)
        policy = Retry.model_validate(execution.runbook_spec.get("retry", {}))
        batching = execution.runbook_spec.get("batch")
        max_errors = Batch.model_validate(batching).errors_allowed() if batching else None
        if execution.mode == "shadow":
            policy = Retry(attempts=1)  # a dry run says what it found the first time
        if execution.cancel_requested:  # asked while it went back to the queue
            stop.cancelled.set()
        steps = [Pending.of(s, execution.mode) for s in execution.steps if s.status == "pending"]
    for pending in steps:
        if stop.cancelled.is_set() or services.stopping.is_set():
            # Between steps nothing is half-done: hand the rest back, or end it as asked.
            return _stop_between_steps(services, execution_id, stop)
        prepared = persist(services, functools.partial(
            prepare_step, execution_id=execution_id, pending=pending
        ))  # fmt: skip
        if prepared is None:
            continue  # skipped, or not to run
        if isinstance(prepared, str):
            return prepared  # it could not be decided or rendered, and that ended it
        pending = prepared
        executor = services.executors.get(pending.kind)
        if pending.shadow and not isinstance(executor, DryRuns):
            result = _rendered_only(services, pending)
        elif isinstance(executor, RemoteExecutor):
            return _launch(services, executor, execution_id, pending, policy)
        elif batch is not None and isinstance(executor, BatchExecutor):
            leader = Member(execution_id, pending, stop, pending.done)
            partners, batch[:] = list(batch), []
            ended = run_batched(services, executor, leader, partners, policy, max_errors)
            if ended is not None:
                return ended
            continue
        else:
            result = _run_one(services, execution_id, pending, policy, stop)
        after = functools.partial(
            after_step, services=services, execution_id=execution_id, pending=pending,
            result=result, policy=policy, stop=stop,
        )  # fmt: skip
        ended = persist(services, after)
        if ended is not None:
            return ended
    return persist(
        services,
        lambda session: last_step_done(session.get_one(Execution, execution_id), datetime.now(UTC)),
    )


def _run_one(
    services: Services, execution_id: str, pending: Pending, policy: Retry, stop: Stop
) -> StepResult:
    def record(number: int, result: StepResult) -> None:
        persist(services, record_result(services, pending.step_id, pending.position,
                                        pending.kind, number, result))  # fmt: skip

    executor = services.executors.get(pending.kind)
    if not isinstance(executor, LocalExecutor):
        now = datetime.now(UTC)
        error = f"no executor for {pending.kind!r}"
        result = StepResult("failed", None, "", now, now, error=error)
        record(pending.done + 1, result)
        return result
    return run_step(
        executor,
        pending.input(execution_id),
        policy,
        stop=stop,
        keep_trying=lambda: not services.stopping.is_set(),
        sleep=services.stopping.wait,
        on_attempt=record,
        live=lambda number: live_output(
            services, Attempt(execution_id, pending.step_id, pending.position, number)
        ),  # fmt: skip
    )


def _rendered_only(services: Services, pending: Pending) -> StepResult:
    """A shadow step whose engine cannot dry-run: nothing is sent; its rendering (and the
    payload checks in it) is what the shadow shows."""
    result = rendered_only(f"a {pending.kind} step cannot be dry-run, so nothing was sent")
    persist(services, record_result(services, pending.step_id, pending.position, pending.kind,
                                    pending.done + 1, result))  # fmt: skip
    return result


def _launch(
    services: Services,
    executor: RemoteExecutor,
    execution_id: str,
    pending: Pending,
    policy: Retry,
) -> ExecutionStatus:
    """Start a remote step on its engine. Launched: the handle is written, in the same
    transaction as the execution passing to the follower, before anyone waits on it.
    Refused or unreachable: the attempt is recorded and settled like a follower's."""
    step_id, position, kind = pending.step_id, pending.position, pending.kind
    step = pending.input(execution_id)
    number, started = step.attempt, datetime.now(UTC)
    try:
        remote = executor.launch(step)
    except ExecutorError as exc:
        remote = Remote({}, None, ended=StepResult("failed", None, "", started,
                                                   datetime.now(UTC), error=str(exc)))  # fmt: skip
    if remote.ended is not None:
        ended = replace(remote.ended, started_at=started)
        write = record_result(services, step_id, position, kind, number, ended)

        def settled(session: Session) -> ExecutionStatus:
            write(session)
            execution = session.get_one(Execution, execution_id)
            return settle(execution, session.get_one(StepRow, step_id), ended, policy)

        return persist(services, settled)

    def launched(session: Session) -> ExecutionStatus:
        row = session.get_one(StepRow, step_id)
        execution = session.get_one(Execution, execution_id)
        row.attempts = number
        row.remote = {"handle": remote.handle, "url": remote.url, "attempt": number,
                      "launched_at": started.isoformat()}  # fmt: skip
        row.detail = {"summary": f"launched on its engine: {remote.url or remote.handle}",
                      "url": remote.url}  # fmt: skip
        now = datetime.now(UTC)
        # No worker holds it from here: the follower looks at it by its row.
        execution.claimed_by = execution.lease_expires_at = None
        execution.next_check_at = now + timedelta(seconds=executor.poll_interval_s)
        execution.deadline_at = started + timedelta(seconds=step.timeout_s)
        return "running"

    status = persist(services, launched)
    log.info("step %d (%s) attempt %d launched: %s", position + 1, kind, number, remote.url)
    return status


def settle(
    execution: Execution, row: StepRow, result: StepResult, policy: Retry
) -> ExecutionStatus:
    """A remote step's attempt ended (on its engine, or refused or unreachable at
    launch): the next step goes to a worker, a failed attempt with retries left is
    launched again by one, anything else ends the execution."""
    now = datetime.now(UTC)
    row.remote = None
    execution.next_check_at = execution.deadline_at = None
    if is_dry_run(row, execution.mode) and result.status != "cancelled":
        row.status, row.finished_at = "would_run", now
        return go_on(execution, now)
    if result.status == "succeeded":
        row.status, row.finished_at = "succeeded", now
        return go_on(execution, now)
    if (
        result.status in ("failed", "timed_out")
        and row.attempts < policy.attempts
        and not execution.cancel_requested
    ):
        row.status = "pending"
        release(execution)
        return "queued"
    final: ExecutionStatus = result.status
    if execution.cancel_requested:
        final = "cancelled"
    execution.guard = (result.detail or {}).get("guard", execution.guard)
    error = cancel_note(execution) if final == "cancelled" else result.error or result.status
    ended = end_at_step(execution, row, final, error, now)
    return ended if ended is not None else go_on(execution, now)


def _stop_between_steps(services: Services, execution_id: str, stop: Stop) -> ExecutionStatus:
    with services.db.write() as session:
        execution = session.get_one(Execution, execution_id)
        if stop.cancelled.is_set():
            finish_execution(
                execution=execution, status="cancelled", error=cancel_note(execution),
                now=datetime.now(UTC), escalate=False,
            )  # fmt: skip
            return "cancelled"
        release(execution)
        return "queued"


MAX_RECOVERIES = 3


def recover_expired(services: Services) -> list[str]:
    """Executions whose worker died. Requeued when nothing was mid-way (no step running)
    or the step that was is idempotent; otherwise interrupted and escalated. An execution
    that has already taken down its worker MAX_RECOVERIES times is not tried again."""
    now = datetime.now(UTC)
    touched = []
    with services.db.write() as session:
        for execution in expired_executions(session=session, now=now):
            touched.append(execution.id)
            worker = execution.claimed_by
            running = [step for step in execution.steps if step.status == "running"]
            execution.recoveries += 1
            if execution.cancel_requested:
                for step in running:
                    step.status, step.finished_at = "cancelled", now
                finish_execution(execution=execution, status="cancelled", now=now,
                                 error=cancel_note(execution), escalate=False)  # fmt: skip
                continue
            if all(step.idempotent for step in running) and execution.recoveries <= MAX_RECOVERIES:
                for step in running:
                    step.status = "pending"
                    # Its result was never recorded: say so where people look.
                    execution.actions.append(ActionRow(
                        action="rerun", by="remediator (recovery)", at=now,
                        reason=f"step {step.position + 1} ({step.kind}) was running when its "
                        f"worker ({worker}) stopped renewing its lease; its result was not "
                        "recorded, and it runs again as idempotent",
                    ))  # fmt: skip
                release(execution)
                continue
            for step in running:
                step.status, step.finished_at = "interrupted", now
            why = (
                f"its worker ({worker}) stopped mid-step"
                if running
                else f"it took down its worker {execution.recoveries} times"
            )
            finish_execution(execution=execution, status="interrupted", now=now, error=why)
    if touched:
        log.warning("recovered %d execution(s) from dead workers: %s", len(touched), touched)
        services.work_ready.set()
    return touched
