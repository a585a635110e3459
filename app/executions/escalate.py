"""deliver_escalation: (a worker claimed it) notify the target → delivered, retried later
with backoff, or given up. Each message carries the execution's whole story."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    wait_random_exponential,
)

from app.config.settings import Settings
from app.errors import (
    EscalationError,
    SinkError,
    TemplateError,
)
from app.escalation.base import DIAGNOSED, REMEDIATED, EscalationMessage
from app.executions.actions import approval_policy, askers
from app.executions.prepare import step_context
from app.fields.sinks import inert
from app.fields.templating import render_text
from app.logs import log_context
from app.redaction import redact
from app.services import Services
from app.store.db import Database
from app.store.models import EscalationRow, Execution
from app.store.queue import claim_next_escalation
from app.store.views import execution_view, masked_values
from app.views import ExecutionView

log = logging.getLogger("remediator.executions")


def escalation_message(
    services: Services, row: EscalationRow, execution: Execution
) -> EscalationMessage:
    base = services.settings.public_url.rstrip("/")
    return EscalationMessage(
        escalation_id=row.id,
        reason=row.reason,
        # What a person reads of the payload, on any target: no bidirectional controls.
        execution=ExecutionView.model_validate(
            inert(execution_view(execution, services.secrets).model_dump())
        ),
        runbook_description=str(execution.runbook_spec.get("description", "")),
        execution_url=f"{base}/ui/#/executions/{execution.id}",
        api_url=f"{base}/api/executions/{execution.id}",
        progress=DurableProgress(services.db, row.id, set(row.progress or [])),
        approvers=approvers(execution) if row.reason == "waiting_approval" else None,
        # Not when the platform resolved it first (that is how `verify.resolved_within`
        # passes): a resolve then would only add noise to its timeline.
        resolve=row.reason == REMEDIATED
        and bool(execution.runbook_spec.get("resolve_on_success"))
        and execution.resolved_at is None,
        diagnosis=_diagnosis(services, execution) if row.reason == DIAGNOSED else None,
        recipients=tuple(execution.runbook_spec.get("recipients") or ()),
    )


def _diagnosis(services: Services, execution: Execution) -> str | None:
    """The runbook's headline for its findings, rendered with what its diagnose steps
    found (masked like everything shown); None without one, or when it cannot render
    (the findings are posted all the same, under the default headline)."""
    headline = (execution.runbook_spec.get("diagnose") or {}).get("headline")
    if not headline:
        return None
    try:
        said = render_text(headline, step_context(execution))
    except (TemplateError, SinkError) as exc:
        log.warning("diagnose.headline of %s did not render: %s", execution.runbook, exc)
        return None
    return redact(said, masked_values(execution, services.secrets))[:300]


def approvers(execution: Execution) -> str:
    """Who may approve `execution`, in words: its runbook's policy, less whoever asked."""
    policy = approval_policy(execution)
    asked = sorted({a.by for a in askers(execution)})
    if not asked or policy.allow_self_approval:
        return policy.who()
    return f"{policy.who()}; not {', '.join(asked)}, who asked for it"


def backoff_s(attempt: int, cap_s: float) -> float:
    """Exponential with full jitter, capped: 1st retry within 2s, then 4s, 8s..."""
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(wait_random_exponential(multiplier=1, max=cap_s)(state))


@dataclass
class DurableProgress:
    """The parts of one escalation already delivered, written as each one lands."""

    db: Database
    escalation_id: str
    parts: set[str]

    def done(self, part: str) -> bool:
        return part in self.parts

    def mark(self, part: str) -> None:
        self.parts.add(part)
        with self.db.write() as session:
            session.get_one(EscalationRow, self.escalation_id).progress = sorted(self.parts)


def escalation_lease_s(settings: Settings) -> float:
    """How long a claimed escalation is left to its worker: the slowest target's timeout
    and a margin. A replica that dies mid-delivery delays the retry by no more."""
    timeouts = [
        float(getattr(target, "timeout_s", 10.0))
        for target in settings.escalation.configured().values()
    ]
    return max(timeouts, default=10.0) + 30.0


def deliver_escalation(
    services: Services,
    client: httpx.Client,
    *,
    target: str | None = None,
    besides: Collection[str] = (),
) -> bool:
    """Deliver one due escalation (to `target`, or to none of `besides`); answers
    whether there was one."""
    settings = services.settings
    with services.db.write() as session:
        row = claim_next_escalation(
            session=session, now=datetime.now(UTC), lease_s=escalation_lease_s(settings),
            target=target, besides=besides,
        )  # fmt: skip
        if row is None:
            return False
        message = escalation_message(services, row, session.get_one(Execution, row.execution_id))
        escalation_id, target = row.id, row.target
        created_at = max(row.created_at, row.redelivered_at or row.created_at)
    execution = message.execution
    with log_context(escalation_id=escalation_id, target=target, execution_id=execution.id,
                     runbook=execution.runbook):  # fmt: skip
        return _deliver(services, client, message, escalation_id, target, created_at)


def _deliver(
    services: Services,
    client: httpx.Client,
    message: EscalationMessage,
    escalation_id: str,
    target: str,
    created_at: datetime,
) -> bool:
    settings = services.settings
    notifier = services.notifiers.get(target)
    error: EscalationError | None = None
    try:
        if notifier is None:
            raise EscalationError(f"target {target!r} is not configured", retryable=False)
        notifier.deliver(message, client=client)
    except EscalationError as exc:
        error = exc
    now = datetime.now(UTC)
    with services.db.write() as session:
        row = session.get_one(EscalationRow, escalation_id)
        row.attempts += 1
        if error is None:
            row.status, row.delivered_at, row.last_error = "delivered", now, None
            log.info("escalation %s delivered to %s", escalation_id, target)
            return True
        row.last_error = redact(str(error), services.secrets)
        expired = now - created_at > timedelta(seconds=settings.escalation_give_up_after_s)
        if not error.retryable or expired:
            row.status = "gave_up"
            log.error(
                "ESCALATION GIVEN UP: %s to %s for execution %s after %d attempt(s): %s",
                escalation_id, target, row.execution_id, row.attempts, row.last_error,
            )  # fmt: skip
        else:
            delay = max(
                error.retry_after_s or 0.0,
                backoff_s(row.attempts, settings.escalation_max_backoff_s),
            )
            row.next_attempt_at = now + timedelta(seconds=delay)
            log.warning(
                "escalation %s to %s failed (%s); retry in %.1fs",
                escalation_id,
                target,
                row.last_error,
                delay,
            )
    return True
