"""An execution's life: the guards that refuse a new run (cooldown, rate limit), the
state changes from queued to its final status, and the escalations each status owes,
written in the same transaction as the status. The store below keeps the rows; what a
status means, and which ones page someone, is decided here."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, object_session

from app.escalation.base import ATTENTION, DIAGNOSED, INCIDENT_RESOLVED, REMEDIATED, SHADOWED
from app.executions.trust import (
    BREAKER_TRIPPED,
    FAILURES,
    mode_of,
    over_budget,
    trip_if_failing,
)
from app.runbooks.plan import Plan
from app.runbooks.trust import Decision, TrustPolicy
from app.steps.base import StepResult
from app.store.models import (
    OPEN,
    AttemptRow,
    EscalationRow,
    Execution,
    ExecutionStatus,
    StepRow,
)
from app.store.records import attach, open_execution
from app.store.trust import read_breaker
from app.store.versions import record_applied_versions

ESCALATE_ON: frozenset[ExecutionStatus] = frozenset(
    {"failed", "timed_out", "refused", "interrupted", "rejected"}
)
# Escalation reasons that tell rather than page: not counted as an escalated execution.
NOTICES = frozenset({"waiting_approval", REMEDIATED, SHADOWED, DIAGNOSED, INCIDENT_RESOLVED})


@dataclass(frozen=True)
class Refusal:
    guard: str
    reason: str
    # The refusal already made in this guard's window, if any: later alerts fold into it
    # (one row, one page per storm), and only a first refusal is escalated.
    earlier: Execution | None = None

    @property
    def escalate(self) -> bool:
        return self.earlier is None


def _runs(runbook: str, since: datetime, *, shadows: bool) -> Select[Execution]:
    """Runs (not refusals) of `runbook` created since `since`; shadow runs too only when
    `shadows` (a shadow meets the guards a real run would, and a real run is not held
    back by what only dry-ran)."""
    query = select(Execution).where(
        Execution.runbook == runbook,
        Execution.created_at >= since,
        Execution.status != "refused",
    )
    return query if shadows else query.where(Execution.mode != "shadow")


def _refused(runbook: str | None, guard: str, since: datetime) -> Select[Any]:
    """A refusal by `guard` since `since` (of `runbook`, or of any: the blast radius)."""
    query = select(Execution).where(
        Execution.guard == guard,
        Execution.created_at >= since,
        Execution.status == "refused",
    )
    if runbook is not None:
        query = query.where(Execution.runbook == runbook)
    return query.limit(1)


def _trust_refusal(
    session: Session, policy: TrustPolicy, plan: Plan, decision: Decision, now: datetime
) -> Refusal | None:
    """An open breaker that says refuse, or a budget this run would take past its limit;
    one refusal per breaker opening and per budget window is escalated."""
    runbook = plan.runbook
    if decision.mode == "refuse":
        row = read_breaker(session, runbook.name)
        since = row.opened_at if row is not None and row.opened_at is not None else now
        earlier = session.scalars(_refused(runbook.name, "breaker", since)).first()
        return Refusal("breaker", decision.reason, earlier)
    over = over_budget(session, policy, runbook, len(plan.targets), now)
    if over is None:
        return None
    only = runbook.name if over.guard == "budget" else None
    return Refusal(over.guard, over.reason,
                   session.scalars(_refused(only, over.guard, over.since)).first())  # fmt: skip


def _cooldown(*, session: Session, plan: Plan, now: datetime, shadow: bool) -> Refusal | None:
    """Refused while the last run for this key is younger than the cooldown; only the
    first refusal after that run is escalated (one page per storm, not one per alert)."""
    runbook = plan.runbook
    if not runbook.cooldown:
        return None
    since = now - timedelta(seconds=runbook.cooldown)
    previous = session.scalars(
        _runs(runbook.name, since, shadows=shadow)
        .where(Execution.guard_key == plan.guard_key)
        .order_by(Execution.created_at.desc())
        .limit(1)
    ).first()
    if previous is None:
        return None
    already = session.scalars(
        _refused(runbook.name, "cooldown", previous.created_at).where(
            Execution.guard_key == plan.guard_key
        )
    ).first()
    reason = (
        f"cooldown: {runbook.name} already ran for {plan.guard_key} at "
        f"{previous.created_at.isoformat()} (execution {previous.id}); "
        f"cooldown is {runbook.cooldown:g}s"
    )
    return Refusal("cooldown", reason, already)


def _rate_limit(*, session: Session, plan: Plan, now: datetime, shadow: bool) -> Refusal | None:
    """Refused once the runbook ran `max_runs.count` times (any key) within `per`;
    the first refusal in that window is escalated."""
    limit = plan.runbook.max_runs
    if limit is None:
        return None
    since = now - timedelta(seconds=limit.per)
    runs = session.scalar(
        select(func.count()).select_from(_runs(plan.runbook.name, since, shadows=shadow).subquery())
    )
    if (runs or 0) < limit.count:
        return None
    already = session.scalars(_refused(plan.runbook.name, "rate_limit", since)).first()
    reason = (
        f"rate limit: {plan.runbook.name} ran {runs} time(s) in the last {limit.per:g}s; "
        f"max_runs is {limit.count} per {limit.per:g}s"
    )
    return Refusal("rate_limit", reason, already)


def add_execution(
    *,
    session: Session,
    plan: Plan,
    incident_id: str,
    escalate_to: list[str],
    now: datetime,
    policy: TrustPolicy,
    trigger: str = "webhook",
) -> tuple[Execution, bool]:
    """The execution this plan leads to, and whether it is an existing one that the
    incident was attached to: a repeat of an incident whose remediation is open, or an
    alert that a guard already refused in this window (a storm makes one refusal).

    A new one is queued (or waiting_approval), or ends at once, with its escalations:
    refused by a guard, or failed when a template did not render. The caller holds
    `lock_names` on the runbook so that replicas see each other's runs.

    Its mode is the strictest of the runbook's own, a pause, an active freeze and an open
    breaker (app.executions.trust); an open breaker that says refuse, or a budget it would
    overspend, refuses it like a guard.
    """
    runbook = plan.runbook
    current = open_execution(session=session, runbook=runbook.name, incident_key=plan.incident_key)
    if current is not None:
        attach(session=session, execution_id=current.id, incident_id=incident_id, now=now)
        return current, True
    decision = mode_of(session, policy, runbook, now)
    shadow = decision.mode == "shadow"
    # Before the new row exists: autoflush would otherwise count it as its own previous run.
    refusal = None
    if plan.error is None:
        refusal = (
            _cooldown(session=session, plan=plan, now=now, shadow=shadow)
            or _rate_limit(session=session, plan=plan, now=now, shadow=shadow)
            or _trust_refusal(session, policy, plan, decision, now)
        )
    if refusal is not None and refusal.earlier is not None:
        attach(session=session, execution_id=refusal.earlier.id, incident_id=incident_id, now=now)
        return refusal.earlier, True
    spec = runbook.model_dump(mode="json", by_alias=True)
    # The breaker this run counts under (the runbook's, or the config's default then).
    spec["breaker"] = policy.breaker_of(runbook).model_dump(mode="json")
    execution = Execution(
        runbook=runbook.name,
        runbook_spec=spec,
        mode="approve" if decision.mode == "refuse" else decision.mode,
        mode_reason=decision.reason,
        targets=list(plan.targets),
        target_count=len(plan.targets),
        incident_id=incident_id,
        trigger=trigger,
        status="queued",
        concurrency_key=plan.concurrency_key,
        guard_key=plan.guard_key,
        incident_key=plan.incident_key,
        escalate_to=escalate_to,
        verify=plan.verify,
        created_at=now,
        incident_started_at=plan.started_at,
        context=plan.context,
    )
    session.add(execution)
    for position, step in enumerate(plan.steps):
        execution.steps.append(StepRow(
            position=position, kind=step.kind, spec=step.spec, idempotent=step.idempotent,
            ref=step.id, when=step.when, continue_on_failure=step.continue_on_failure,
            phase=step.phase, deferred=step.deferred,
        ))  # fmt: skip
    if plan.error is not None and shadow:
        # What a real run would have met (a payload the checks refuse), told, not paged.
        error = f"would fail: {plan.error}"
        finish_execution(execution=execution, status="shadowed", error=error, now=now)
    elif plan.error is not None:
        finish_execution(execution=execution, status="failed", error=plan.error, now=now)
    elif refusal is not None:
        execution.guard = refusal.guard
        finish_execution(
            execution=execution,
            status="refused",
            error=refusal.reason,
            now=now,
            escalate=refusal.escalate and not shadow,  # a shadow pages nobody
        )
    elif decision.mode == "approve" and runbook.diagnose is None:
        await_approval(execution, now)
    elif runbook.batch is not None:
        # Not claimed before its window is over, so that one worker then takes it with
        # every other that arrived meanwhile, instead of each worker a few.
        execution.next_check_at = now + timedelta(seconds=runbook.batch.window)
    return execution, False


def await_approval(execution: Execution, now: datetime) -> ExecutionStatus:
    """It waits for a human's yes (after its diagnostics, if it has any): the approval
    notice is owed, and it times out after the runbook's `approval_timeout`."""
    execution.status = "waiting_approval"
    execution.claimed_by = execution.lease_expires_at = None
    timeout = float(execution.runbook_spec.get("approval_timeout", 3600.0))
    execution.deadline_at = now + timedelta(seconds=timeout)
    _owe_escalations(execution, execution.escalate_to, "waiting_approval", now)
    return "waiting_approval"


def owe_diagnosis(execution: Execution, now: datetime) -> None:
    """Its diagnose steps have all ended: their findings are owed to `diagnose.post_to`,
    once, in the transaction that goes on past them."""
    diagnose = execution.runbook_spec.get("diagnose")
    if not diagnose or any(e.reason == DIAGNOSED for e in execution.escalations):
        return
    _owe_escalations(execution, list(diagnose.get("post_to") or []), DIAGNOSED, now)


def note_resolution(
    *, session: Session, incident_key: str, now: datetime, followers: Collection[str] = ()
) -> list[str]:
    """A resolved incident arrived: open executions for it learn so, and those waiting
    for it to resolve (`verify.resolved_within`) succeed. Answers the ones that did.
    When its latest finished execution escalated, the targets among its escalation's
    that follow the incident (`followers`: a ticket) are told, once."""
    succeeded = []
    for execution in session.scalars(
        select(Execution).where(Execution.incident_key == incident_key, Execution.status.in_(OPEN))
    ):
        execution.resolved_at = execution.resolved_at or now
        if execution.status == "verifying" and _awaits_resolution(execution):
            finish_execution(execution=execution, status="succeeded", error=None, now=now)
            succeeded.append(execution.id)
    if followers:
        escalated = session.scalars(
            select(Execution)
            .where(Execution.incident_key == incident_key, Execution.status.not_in(OPEN),
                   Execution.escalated.is_(True))
            .order_by(Execution.created_at.desc()).limit(1)
        ).first()  # fmt: skip
        told = {row.reason for row in escalated.escalations} if escalated is not None else set()
        if escalated is not None and INCIDENT_RESOLVED not in told:
            targets = [t for t in escalated.escalate_to if t in followers]
            _owe_escalations(escalated, targets, INCIDENT_RESOLVED, now)
    return succeeded


def _awaits_resolution(execution: Execution) -> bool:
    return bool(execution.verify and "resolved_within" in execution.verify)


def finish_execution(
    *,
    execution: Execution,
    status: ExecutionStatus,
    error: str | None,
    now: datetime,
    escalate: bool = True,
    reason: str | None = None,
) -> None:
    """The final state and, in the same transaction, the escalations it owes (for
    `reason`, by default the status itself)."""
    execution.status = status
    execution.error = error
    execution.finished_at = now
    execution.claimed_by = None
    execution.lease_expires_at = None
    for step in execution.steps:
        if step.status == "pending":
            step.status = "skipped"
    execution.deadline_at = None
    execution.next_check_at = None
    session = object_session(execution)
    if status == "succeeded":
        began = execution.incident_started_at or execution.created_at
        execution.remediation_s = round(max(0.0, (now - began).total_seconds()), 3)
    if status == "succeeded" and session is not None:
        record_applied_versions(session=session, execution=execution, now=now)
    if escalate and status in ESCALATE_ON:
        _owe_escalations(execution, execution.escalate_to, reason or status, now)
    if status in FAILURES and session is not None and trip_if_failing(session, execution, now):
        # Once per opening, on the failure that tripped it, however many runs follow.
        _owe_escalations(execution, execution.escalate_to, BREAKER_TRIPPED, now)
    if status == "succeeded":
        # Only here, after `verify` passed (or there was none): a notice, maybe a resolve.
        told = list(execution.runbook_spec.get("notify_on_success") or [])
        _owe_escalations(execution, told, REMEDIATED, now)
    if status == "shadowed":
        told = list(execution.runbook_spec.get("notify_on_shadow") or [])
        _owe_escalations(execution, told, SHADOWED, now)


def _owe_escalations(execution: Execution, targets: list[str], reason: str, now: datetime) -> None:
    if targets and reason not in NOTICES:
        execution.escalated = True
    for target in targets:
        execution.escalations.append(
            EscalationRow(target=target, reason=reason, next_attempt_at=now, created_at=now)
        )


def start_verification(execution: Execution, now: datetime) -> ExecutionStatus:
    """Every step succeeded: succeeded now, or `verifying` until the runbook's check
    passes. Verifying executions belong to no worker; the verifier looks after them."""
    if execution.mode == "shadow":
        # Nothing changed, so there is nothing to verify: what each step would have done
        # is the result.
        finish_execution(execution=execution, status="shadowed", error=None, now=now)
        return "shadowed"
    verify, awaits = execution.verify, _awaits_resolution(execution)
    if not verify or (awaits and execution.resolved_at is not None):
        finish_execution(execution=execution, status="succeeded", error=None, now=now)
        return "succeeded"
    within = verify["resolved_within"] if awaits else verify["http"]["within"]
    execution.status = "verifying"
    execution.claimed_by = execution.lease_expires_at = None
    execution.deadline_at = now + timedelta(seconds=float(within))
    execution.next_check_at = None if awaits else now
    return "verifying"


def record_attempt(*, session: Session, step_id: int, number: int, result: StepResult) -> None:
    step = session.get_one(StepRow, step_id)
    if result.attention is not None:
        execution = session.get_one(Execution, step.execution_id)
        _owe_escalations(execution, execution.escalate_to, ATTENTION, result.finished_at)
    step.attempts = number
    step.rc = result.rc
    step.output_tail = result.output_tail
    step.error = result.error
    step.detail = result.detail
    step.outputs = result.outputs
    session.add(
        AttemptRow(
            step_id=step_id,
            number=number,
            status=result.status,
            rc=result.rc,
            output_tail=result.output_tail,
            error=result.error,
            detail=result.detail,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )
    )
