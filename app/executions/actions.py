"""What a human may do to an execution through the API: approve, reject, cancel, and send
one of its escalations again. Each is recorded with who (the verified identity) and why,
in the same transaction as the state it changes. Approval is four-eyes: the runbook says
who may approve, and whoever started or asked for a run may not approve it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from app.errors import Conflict, Forbidden, NotFound
from app.executions.lifecycle import finish_execution
from app.identity import Identity, roles_granting
from app.runbooks.models import Approval
from app.services import Services
from app.store.models import ActionRow, EscalationRow, Execution
from app.store.views import execution_view
from app.views import ExecutionView

Action = Literal["approve", "reject", "cancel"]
# A manual run started (`run`), or asked for while it was already open (`ask`): whoever did
# either is its asker, whom four-eyes approval keeps from approving it.
ASKING = ("run", "ask")

ALLOWED: dict[Action, tuple[str, ...]] = {
    "approve": ("waiting_approval",),
    "reject": ("waiting_approval",),
    "cancel": ("queued", "waiting_approval", "running", "verifying"),
}


def act(
    services: Services, execution_id: str, action: Action, *, by: Identity, reason: str
) -> ExecutionView:
    # Here, where every way in (the API, a Slack click) passes, not in each caller.
    if not by.may("operate"):
        raise Forbidden(
            f"{by.name} has role {by.role_names}: {action} needs role "
            f"{' or '.join(roles_granting('operate'))}"
        )
    now = datetime.now(UTC)
    with services.db.write() as session:
        execution = session.get(
            Execution, execution_id, with_for_update={"of": Execution, "key_share": True}
        )
        if execution is None:
            raise NotFound(f"no execution {execution_id}")
        if execution.status not in ALLOWED[action]:
            raise Conflict(
                f"cannot {action} execution {execution_id}: it is {execution.status}; "
                f"{action} applies to {' or '.join(ALLOWED[action])}"
            )
        if action == "approve":
            check_approver(execution, by)
        execution.actions.append(
            ActionRow(action=action, by=by.label, identity=by.name, reason=reason, at=now)
        )
        said = by.label + (f": {reason}" if reason else "")
        if action == "approve":
            execution.status, execution.deadline_at = "queued", None
            execution.approval_wait_s = round((now - execution.created_at).total_seconds(), 3)
        elif action == "reject":
            finish_execution(execution=execution, status="rejected", error=f"rejected by {said}",
                             now=now)  # fmt: skip
        elif execution.status == "running":
            # The worker running it (on whichever replica) sees this and stops the step;
            # a step running on an engine is looked at now, to ask the engine to stop it.
            execution.cancel_requested = True
            if execution.claimed_by is None:
                execution.next_check_at = now
        else:
            finish_execution(execution=execution, status="cancelled",
                             error=f"cancelled by {said}", now=now, escalate=False)  # fmt: skip
        session.flush()
        view = execution_view(execution, services.secrets)
    services.work_ready.set()
    return view


def check_approver(execution: Execution, identity: Identity) -> None:
    """The runbook (as it was when the run was created) names who may approve; whoever
    started or asked for the run may not, unless it says so."""
    policy = approval_policy(execution)
    if not policy.permits(identity):
        raise Forbidden(
            f"{identity.name} may not approve {execution.runbook}: only {policy.who()} may"
        )
    if identity.name in {a.identity for a in askers(execution)} and not policy.allow_self_approval:
        raise Forbidden(
            f"{identity.name} started this run, so cannot approve it: four-eyes approval "
            f"needs someone else ({policy.who()})"
        )


def approval_policy(execution: Execution) -> Approval:
    """Who may approve, as the runbook said when the run was created (a reload since
    does not change it)."""
    return Approval.model_validate(execution.runbook_spec.get("approval", False))


def askers(execution: Execution) -> list[ActionRow]:
    return [a for a in execution.actions if a.action in ASKING]


REDELIVERABLE = ("delivered", "gave_up")


def redeliver(
    services: Services, escalation_id: str, *, by: Identity, reason: str
) -> ExecutionView:
    """Send a delivered or given-up escalation again, whole (every part of it), with a new
    give-up window. It is the same message: the same `webhook-id`, so a receiver that
    dedups on it (as Standard Webhooks says) takes it only if it never had it."""
    now = datetime.now(UTC)
    with services.db.write() as session:
        row = session.get(EscalationRow, escalation_id, with_for_update={"of": EscalationRow})
        if row is None:
            raise NotFound(f"no escalation {escalation_id}")
        if row.status not in REDELIVERABLE:
            raise Conflict(
                f"escalation {escalation_id} is {row.status}: it is still being delivered"
            )
        row.status, row.next_attempt_at, row.redelivered_at = "pending", now, now
        row.progress, row.last_error = [], None
        execution = session.get_one(Execution, row.execution_id)
        note = f"escalation {escalation_id} to {row.target}" + (f": {reason}" if reason else "")
        execution.actions.append(
            ActionRow(action="redeliver", by=by.label, identity=by.name, reason=note, at=now)
        )
        session.flush()
        view = execution_view(execution, services.secrets)
    services.work_ready.set()
    return view
