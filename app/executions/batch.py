"""Batched steps: one run for the same step of many executions (one ansible-playbook over
all their hosts, instead of one process per incident).

An execution of a runbook that batches is not claimed until `batch.window` after it was
queued; the worker that claims it claims, in the same transaction, the runbook's other
queued executions whose step is the same but for what the executor lets differ (its
batch key), up to `batch.max`. Every member is claimed, leased and cancellable as if a
worker ran it alone (the worker renews their leases and hands them cancels), so crash
recovery, SIGTERM drain and cancel act per execution. Each member gets its own attempt,
its own result from its own hosts, and its own next move; members whose attempt failed
with retries left run again together, and only they.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.errors import ExecutorError
from app.executions.lifecycle import finish_execution
from app.executions.live import Attempt, live_outputs
from app.executions.steps import (
    Pending,
    Stop,
    after_step,
    cancel_note,
    go_on,
    persist,
    record_result,
    release,
)
from app.logs import log_context
from app.runbooks.models import Batch, Retry
from app.services import Services
from app.steps.base import BatchExecutor, MaxErrors, StepInput, StepResult
from app.store.models import Execution, ExecutionStatus, StepRow
from app.store.queue import claim_batch

log = logging.getLogger("remediator.executions")


@dataclass
class Member:
    execution_id: str
    pending: Pending
    stop: Stop
    done: int  # attempts made so far

    def input(self) -> StepInput:
        return replace(self.pending.input(self.execution_id), attempt=self.done + 1)


def claim_partners(
    session: Session, services: Services, leader: Execution, worker_id: str
) -> list[Member] | None:
    """In the transaction that claimed `leader`: when its next step is one its runbook
    batches, the runbook's other queued executions whose next step is the same but for
    what the executor lets differ (its batch key), claimed for the same worker (in the
    same transaction, so no other worker takes a few of them for a batch of its own);
    none found, the leader's batch is itself alone. None: its next step does not batch."""
    batching = leader.runbook_spec.get("batch")
    step = next_step(leader)
    executor = services.executors.get(step.kind) if step is not None else None
    if not batching or step is None or not isinstance(executor, BatchExecutor):
        return None
    if step.when is not None or step.deferred:
        return None  # decided or rendered for its own execution, just before it runs
    key = executor.batch_key(step.spec)
    if key is None:
        return None

    def joins(candidate: Execution) -> bool:
        own = next_step(candidate)
        return (
            candidate.runbook_spec == leader.runbook_spec
            and candidate.mode == leader.mode  # a dry run and a real one never share a play
            and not candidate.cancel_requested
            and own is not None
            and own.position == step.position
            and executor.batch_key(own.spec) == key
        )

    claimed = claim_batch(
        session=session, runbook=leader.runbook, accept=joins,
        count=Batch.model_validate(batching).max - 1, worker_id=worker_id,
        now=datetime.now(UTC), lease_s=services.settings.lease_s,
    )  # fmt: skip
    members = []
    for execution in claimed:
        if (own := next_step(execution)) is not None:  # `joins` saw to it
            members.append(
                Member(execution.id, Pending.of(own, execution.mode), Stop(), own.attempts)
            )
    return members


def next_step(execution: Execution) -> StepRow | None:
    return next((step for step in execution.steps if step.status == "pending"), None)


def run_batched(
    services: Services,
    executor: BatchExecutor,
    leader: Member,
    partners: Sequence[Member],
    policy: Retry,
    max_errors: MaxErrors | None = None,
) -> ExecutionStatus | None:
    """Run the leader's step with its partners (claimed with it); the leader's status
    after it, or None when the leader goes on to its next step (every partner is settled
    here). Past `max_errors` failed hosts the run stops, and the members not reached are
    refused naming it."""
    members = [leader, *partners]
    ran = _run(services, executor, members, policy, leader.execution_id, max_errors)
    return ran[leader.execution_id]


def hand_back(services: Services, members: Sequence[Member]) -> None:
    """Partners that will not run with their leader (it stopped first) go back to the
    queue, untouched, for any worker."""
    if members:
        persist(services, functools.partial(_hand_back, members=members))


def _run(
    services: Services,
    executor: BatchExecutor,
    members: list[Member],
    policy: Retry,
    leader_id: str,
    max_errors: MaxErrors | None,
) -> dict[str, ExecutionStatus | None]:
    """Attempts of the batch until every member is settled: those that failed with
    retries left (and are not cancelled, and the service is not stopping) run again
    together after the backoff."""
    statuses: dict[str, ExecutionStatus | None] = {}
    # Running before the play starts, as a step run alone is: recovery after a crash
    # must not take a member whose host may have run for one that never started.
    persist(services, functools.partial(_started, members=members))
    active = members
    while active:
        batch_id = uuid.uuid4().hex[:12]
        running = list(active)
        log.info("batch %s: %d execution(s) in one run", batch_id, len(running))
        started = datetime.now(UTC)
        attempts = [Attempt(m.execution_id, m.pending.step_id, m.pending.position, m.done + 1)
                    for m in running]  # fmt: skip
        try:
            with live_outputs(services, attempts) as outputs:
                results = executor.run_batch(
                    [replace(m.input(), live=out) for m, out in zip(running, outputs, strict=True)],
                    cancelled=functools.partial(_all_stopped, running),
                    max_errors=max_errors,
                )
        except ExecutorError as exc:
            failed = StepResult("failed", None, "", started, datetime.now(UTC), error=str(exc))
            results = [failed] * len(running)
        results = [_named(result, batch_id, len(running)) for result in results]
        again = [
            member
            for member, result in zip(running, results, strict=True)
            if result.status in ("failed", "timed_out")
            and member.done + 1 < policy.attempts
            and not member.stop()
            and not services.stopping.is_set()
        ]
        settled = [(m, r) for m, r in zip(running, results, strict=True) if m not in again]
        # Built (logged, counted, masked) once, outside the write that may be tried again.
        writes = [
            _attempt(services, member, result)
            for member, result in zip(running, results, strict=True)
        ]
        record = functools.partial(
            _record, services=services, writes=writes, settled=settled, policy=policy,
            leader_id=leader_id,
        )  # fmt: skip
        statuses |= persist(services, record)
        for member in running:
            member.done += 1
        active = again
        if active:
            if services.stopping.wait(policy.delay(active[0].done)):
                # Stopping: the retries are left to whoever resumes them.
                statuses |= persist(services, functools.partial(_hand_back, members=active))
                active = []
    return statuses


def _attempt(services: Services, member: Member, result: StepResult) -> Callable[[Session], None]:
    """The write recording a member's attempt, logged under the member's own id."""
    with log_context(execution_id=member.execution_id):
        return record_result(services, member.pending.step_id, member.pending.position,
                             member.pending.kind, member.done + 1, result)  # fmt: skip


def _all_stopped(members: Sequence[Member]) -> bool:
    """A batch's run stops only when every member asks (all cancelled, or shutdown)."""
    return all(member.stop() for member in members)


def _named(result: StepResult, batch_id: str, size: int) -> StepResult:
    """The attempt says which batch ran it, for people and escalations."""
    detail = dict(result.detail or {})
    hosts = ", ".join(detail.get("hosts", [])[:5])
    detail["batch"] = {"id": batch_id, "size": size, "hosts": detail.get("batch_hosts")}
    detail["summary"] = f"ran in batch {batch_id} with {size - 1} other execution(s)" + (
        f", for {hosts}" if hosts else ""
    )
    return replace(result, detail=detail)


def _record(
    session: Session,
    *,
    services: Services,
    writes: Sequence[Callable[[Session], None]],
    settled: Sequence[tuple[Member, StepResult]],
    policy: Retry,
    leader_id: str,
) -> dict[str, ExecutionStatus | None]:
    """Every member's attempt, and where each settled member goes, in one transaction."""
    for write in writes:
        write(session)
    return {
        member.execution_id: _settle(
            session, services, member, result, policy, leads=member.execution_id == leader_id
        )  # fmt: skip
        for member, result in settled
    }


def _settle(
    session: Session,
    services: Services,
    member: Member,
    result: StepResult,
    policy: Retry,
    *,
    leads: bool,
) -> ExecutionStatus | None:
    """Like a step run alone, but for a cancel that came while the play ran: Ansible
    cannot stop one host of a play, so its host ran to the end, and the execution says
    so. None: the leader goes on to its next step itself; the others go back to the
    queue for theirs, or on to verification."""
    execution = session.get_one(Execution, member.execution_id)
    if member.stop.cancelled.is_set() and result.status not in ("cancelled", "timed_out"):
        row = session.get_one(StepRow, member.pending.step_id)
        now = datetime.now(UTC)
        row.status, row.finished_at = "cancelled", now
        finish_execution(
            execution=execution, status="cancelled", now=now, escalate=False,
            error=f"{cancel_note(execution)}; it was running in a batch, and Ansible cannot "
            f"stop one host of a play: step {row.position + 1} ran to its end on its hosts "
            f"({result.status}{': ' + result.error if result.error else ''})",
        )  # fmt: skip
        return "cancelled"
    status = after_step(session, services=services, execution_id=member.execution_id,
                        pending=member.pending, result=result, policy=policy,
                        stop=member.stop)  # fmt: skip
    if status is not None or leads:
        return status
    return go_on(execution, datetime.now(UTC))


def _started(session: Session, *, members: Sequence[Member]) -> None:
    now = datetime.now(UTC)
    for member in members:
        row = session.get_one(StepRow, member.pending.step_id)
        row.status, row.started_at = "running", row.started_at or now


def _hand_back(session: Session, *, members: Sequence[Member]) -> dict[str, ExecutionStatus | None]:
    for member in members:
        session.get_one(StepRow, member.pending.step_id).status = "pending"
        release(session.get_one(Execution, member.execution_id))
    return dict.fromkeys((member.execution_id for member in members), "queued")
