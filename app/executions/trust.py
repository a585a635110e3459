"""How far automation is trusted, as each new execution meets it: its mode (the strictest
of its runbook's own, a pause, an active freeze and an open breaker), the blast-radius
budgets it must fit in, and the breaker that its failure may trip. Read in the
transaction that creates (or ends) the execution, so every replica decides alike; the
runbook's lock (and the blast radius's, `BLAST_RADIUS_LOCK`) orders two replicas racing
for the last unit of a budget."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy.orm import Session

from app.config.trust import Breaker, Budget
from app.runbooks.models import Runbook
from app.runbooks.plan import Plan
from app.runbooks.trust import Decision, Pause, TrustPolicy, decide
from app.steps.base import Executor
from app.store.db import lock_names
from app.store.models import Execution
from app.store.trust import (
    failures_since,
    open_breaker,
    read_breaker,
    read_pause,
    spent,
)

# Taken (as an advisory lock, app.store.db.lock_names) by every write that may spend the
# blast radius, when one is configured.
BLAST_RADIUS_LOCK = "remediator:blast_radius"
# What a breaker counts as a failure of its runbook.
FAILURES = ("failed", "timed_out", "interrupted")
BREAKER_TRIPPED = "breaker_tripped"


def with_targets(plan: Plan, policy: TrustPolicy, executors: Mapping[str, Executor]) -> Plan:
    """`plan` with what its steps act on, when a budget counts them (resolving hosts can
    read an inventory, which a webhook without a budget need not wait for)."""
    if plan.error is not None or (plan.runbook.budget is None and policy.blast_radius is None):
        return plan
    found: set[str] = set()
    for position, step in enumerate(plan.steps):
        if step.deferred:
            # What it acts on is read from earlier steps, known only when it runs: it
            # counts as one target, named so that a refusal says why.
            found.add(f"step {position + 1} ({step.kind}): its targets come from earlier steps")
            continue
        executor = executors.get(step.kind)
        found.update(executor.targets(step.spec) if executor is not None else [step.kind])
    return replace(plan, targets=tuple(sorted(found)))


def pause_of(session: Session, now: datetime) -> Pause | None:
    row = read_pause(session, now)
    if row is None or row.since is None:
        return None
    return Pause(row.by or "?", row.reason or "", row.since, row.until, row.runbooks)


def mode_of(session: Session, policy: TrustPolicy, runbook: Runbook, now: datetime) -> Decision:
    """The mode a new execution of `runbook` runs in now, and why."""
    breaker = policy.breaker_of(runbook)
    row = read_breaker(session, runbook.name) if breaker.enabled else None
    opened = row.opened_at if row is not None else None
    return decide(
        runbook=runbook.name, own=runbook.own_mode, now=now, pause=pause_of(session, now),
        pause_mode=policy.pause_mode, freezes=list(policy.freezes),
        breaker_then=breaker.then if opened is not None else None, breaker_since=opened,
    )  # fmt: skip


@dataclass(frozen=True)
class OverBudget:
    guard: Literal["budget", "blast_radius"]
    reason: str
    since: datetime  # the window's start: one refusal in it is escalated, later ones fold


def over_budget(
    session: Session,
    policy: TrustPolicy,
    runbook: Runbook,
    targets: int,
    now: datetime,
) -> OverBudget | None:
    """The first budget (the runbook's, then the blast radius) that `targets` more would
    take past its limit: what it has used and when room frees up."""
    budgets: list[tuple[Literal["budget", "blast_radius"], Budget, str | None]] = []
    if runbook.budget is not None:
        budgets.append(("budget", runbook.budget, runbook.name))
    if policy.blast_radius is not None:
        budgets.append(("blast_radius", policy.blast_radius, None))
    for guard, budget, only in budgets:
        since = now - timedelta(seconds=budget.per)
        spends = spent(session, since=since, runbook=only)
        used = sum(count for _, count in spends)
        if used + targets <= budget.targets:
            continue
        frees = _room_at(spends, used, targets, budget)
        name = f"{runbook.name}'s budget" if only else "the blast radius"
        when = f"room frees up at {frees.isoformat()}" if frees else "it needs more than the budget"
        reason = (
            f"{guard}: {name} allows {budget.targets} target(s) per {budget.per:g}s; "
            f"{used} used in the window, this run needs {targets}; {when}"
        )
        return OverBudget(guard, reason, since)
    return None


def _room_at(
    spends: list[tuple[datetime, int]], used: int, needed: int, budget: Budget
) -> datetime | None:
    """When enough of the window's spending has aged out for `needed` more."""
    freed = 0
    for at, count in spends:
        freed += count
        if used - freed + needed <= budget.targets:
            return at + timedelta(seconds=budget.per)
    return None


def trip_if_failing(session: Session, execution: Execution, now: datetime) -> bool:
    """After `execution` failed: open its runbook's breaker when failures reached the
    limit within the window (since the last reset). True when it tripped now: the one
    time it is escalated."""
    breaker = Breaker.model_validate(execution.runbook_spec.get("breaker") or {})
    if not breaker.enabled:
        return False
    # Two replicas ending two failures at once: one of them trips it, and tells.
    lock_names(session.connection(), [f"remediator:breaker:{execution.runbook}"])
    row = read_breaker(session, execution.runbook)
    if row is not None and row.opened_at is not None:
        return False  # open already: tripped, and told, once
    since = now - timedelta(seconds=breaker.within)
    if row is not None and row.reset_at is not None:
        since = max(since, row.reset_at)
    failed = failures_since(session, runbook=execution.runbook, since=since, statuses=FAILURES)
    if execution.id not in failed:
        failed.append(execution.id)  # not flushed yet
    if len(failed) < breaker.failures:
        return False
    open_breaker(session, runbook=execution.runbook, failures=failed, now=now)
    return True
