"""The journey of an alert, in one place:

arrive, submit_delivery, delivered:
                   verify → normalise → match → plan → persist (event, incidents,
                   executions, in one transaction, committed with the deliveries that
                   arrived at the same moment) → answer 202 with execution ids
run_execution:     (a worker claimed it) each step with retries → final status →
                   escalations owed, written with that status
deliver_escalation: (a worker claimed it) notify the target → delivered, retried
                   later with backoff, or given up
recover_expired:   work whose worker died: requeued if no step started, else
                   interrupted and escalated
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import httpx
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential,
    wait_random_exponential,
)

from app.config import Settings
from app.errors import (
    EscalationError,
    ExecutorError,
    StaleTimestamp,
    TooManyIncidents,
    UnknownSource,
    UnsupportedPayload,
)
from app.escalation.base import EscalationMessage, Notifier
from app.executors.base import Executor, StepInput, StepResult
from app.incident import Incident
from app.logs import log_context
from app.metrics import Metrics, source_label
from app.redaction import redact
from app.runbooks.matcher import Matcher
from app.runbooks.models import Approval, Retry
from app.runbooks.plan import Plan, plan
from app.sources.base import Delivery, WebhookRequest
from app.sources.registry import get_source
from app.store.db import Database
from app.store.models import ActionRow, EscalationRow, Execution, StepRow
from app.store.queue import claim_next_escalation, expired_executions
from app.store.records import (
    add_event,
    add_execution,
    add_incidents,
    attach,
    find_event,
    finish_execution,
    in_their_occurrences,
    latest_executions,
    note_resolution,
    record_attempt,
    start_verification,
)
from app.store.views import execution_view

log = logging.getLogger("remediator.flows")
T = TypeVar("T")


@dataclass
class Services:
    """What the flows need, built once at start-up. `matcher` is swapped whole on reload."""

    settings: Settings
    db: Database
    matcher: Matcher
    executors: Mapping[str, Executor]
    notifiers: Mapping[str, Notifier]
    stopping: threading.Event = field(default_factory=threading.Event)
    work_ready: threading.Event = field(default_factory=threading.Event)
    metrics: Metrics = field(default_factory=Metrics)
    # The configuration's secrets, masked wherever a step's output or an execution is
    # shown; computed once, not at every view and every recorded attempt.
    secrets: list[str] = field(init=False)

    def __post_init__(self) -> None:
        self.secrets = self.settings.secret_values()

    def escalate_to(self, runbook_targets: list[str]) -> list[str]:
        return list(runbook_targets or self.settings.default_escalate)


@dataclass(frozen=True)
class Accepted:
    event_id: str
    duplicate: bool
    executions: list[str]
    incidents: int
    # Open executions that this delivery's incidents were folded into (no new run).
    attached: list[str] = field(default_factory=list)
    # Why a call of the platform carried no incident (stored, answered 202, nothing run).
    ignored: str | None = None


# ---------------------------------------------------------------- ingest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


# Escapes that decode to text no database can store: NUL (PostgreSQL text refuses it) and
# lone UTF-16 surrogates (not encodable as UTF-8 at all).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_storable(item) for item in value]
    if isinstance(value, dict):
        return {_storable(k): _storable(v) for k, v in value.items()}
    return value


def parse_json(body: bytes) -> Any:
    """Strict JSON: Python's parser also takes NaN and Infinity, which no platform sends
    and PostgreSQL's JSON columns refuse at commit time. Text that cannot be stored
    (`\\u0000`, lone surrogates) becomes U+FFFD / `?` rather than failing the call; the
    signature was checked over the raw bytes before this."""
    try:
        parsed = json.loads(body, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise UnsupportedPayload(f"the body is not JSON: {exc}") from exc
    return _storable(parsed) if _UNSTORABLE_ESCAPE.search(body) else parsed


def read_delivery(
    services: Services, source_name: str, headers: Mapping[str, str], body: bytes, now: float
) -> Delivery:
    """Verify and normalise one call."""
    config = services.settings.sources.get(source_name)
    if config is None:
        raise UnknownSource(f"source {source_name!r} is not configured on this service")
    source = get_source(source_name)
    request = WebhookRequest(
        source=source_name,
        headers=headers,
        body=body,
        received_at=datetime.fromtimestamp(now, UTC),
        now=now,
        replay_window_s=config.replay_window_s
        or source.default_replay_window_s
        or services.settings.replay_window_s,
        signed=config.secret is not None,
    )
    if config.secret is not None or config.token is not None or not config.insecure:
        source.verify(request, config)
    delivery = source.normalise(parse_json(body), request)
    window = timedelta(days=services.settings.dedup_retention_days)
    if delivery.sent_at is not None and request.received_at - delivery.sent_at > window:
        raise StaleTimestamp(
            f"the body's own time {delivery.sent_at.isoformat()} is older than the "
            f"{services.settings.dedup_retention_days:g}-day window in which deliveries "
            "are remembered: it could be a replay"
        )
    most = services.settings.max_incidents_per_delivery
    if len(delivery.incidents) > most:
        raise TooManyIncidents(
            f"{len(delivery.incidents)} incidents in one call; this service takes at most "
            f"{most} (max_incidents_per_delivery)"
        )
    return delivery


def arrive(
    services: Services, source_name: str, headers: Mapping[str, str], body: bytes, now: float
) -> Arrival:
    """Verify and normalise one call, and plan what its incidents lead to (no database)."""
    delivery = read_delivery(services, source_name, headers, body, now)
    matcher = services.matcher
    plans = [
        (incident, [plan(m.runbook, incident) for m in matcher.match(incident)])
        for incident in delivery.incidents
    ]
    return Arrival(source_name, delivery, plans, now)


@dataclass(frozen=True)
class Arrival:
    """A verified delivery and the plans its incidents lead to. `started_by`: a human's
    manual run, recorded on the execution it starts."""

    source: str
    delivery: Delivery
    plans: list[tuple[Incident, list[Plan]]]
    now: float
    started_by: ActionRow | None = None


def submit_delivery(services: Services, arrival: Arrival) -> Future[Accepted]:
    """Queue a verified delivery and its plans for the next group commit; the future
    resolves once they are durable. Finish with `delivered`."""
    return services.db.together.submit(
        lambda session: _write_arrival(session, services, arrival),
        locks=(p.runbook.name for _, runbook_plans in arrival.plans for p in runbook_plans),
        recover=lambda session, failure: _after_conflict(session, services, arrival, failure),
    )


def store_delivery(services: Services, arrival: Arrival) -> Accepted:
    """Persist a verified delivery and its plans; a delivery id seen before is a duplicate."""
    return delivered(services, arrival, submit_delivery(services, arrival).result())


def delivered(services: Services, arrival: Arrival, accepted: Accepted) -> Accepted:
    """Once stored: wake the workers for new executions, count and log the delivery."""
    if accepted.executions:
        services.work_ready.set()
    if not accepted.duplicate:
        for incident in arrival.delivery.incidents:
            services.metrics.incidents.labels(source_label(arrival.source), incident.status).inc()
    # A delivery that started or joined nothing is routine (most alerts match no runbook):
    # at INFO it would cost a log line per webhook at full rate; it is stored and counted.
    level = logging.INFO if accepted.executions or accepted.attached else logging.DEBUG
    with log_context(event_id=accepted.event_id):
        log.log(
            level,
            "delivery %s: %d incident(s), executions %s, attached to %s%s",
            "duplicate" if accepted.duplicate else "accepted", accepted.incidents,
            accepted.executions, accepted.attached,
            f", ignored: {accepted.ignored}" if accepted.ignored else "",
        )  # fmt: skip
    return accepted


def _after_conflict(
    session: Session, services: Services, arrival: Arrival, failure: Exception
) -> Accepted:
    """The delivery's rows failed to insert. The unique delivery id, not a lookup first,
    tells a duplicate (one query fewer for every delivery that is not). Any other
    invariant that fails caught a race with another replica (two runs with one
    concurrency key): the next try sees the other side's rows."""
    for _ in range(2):
        if not isinstance(failure, IntegrityError):
            raise failure
        delivery_id = arrival.delivery.delivery_id
        existing = find_event(session=session, source=arrival.source, delivery_id=delivery_id)
        if existing is not None:
            return Accepted(existing.id, True, [], 0)
        try:
            with session.begin_nested():
                return _write_arrival(session, services, arrival)
        except IntegrityError as again:
            failure = again
    raise RuntimeError(f"could not store delivery {arrival.delivery.delivery_id} after 3 tries")


def _write_arrival(session: Session, services: Services, arrival: Arrival) -> Accepted:
    source_name, delivery, plans, started_by = (
        arrival.source, arrival.delivery, arrival.plans, arrival.started_by
    )  # fmt: skip
    moment = datetime.fromtimestamp(arrival.now, UTC)
    event_id = add_event(session=session, source=source_name, delivery=delivery, received_at=moment)
    created: list[Execution] = []
    attached: list[str] = []
    placed = in_their_occurrences(session=session, incidents=[incident for incident, _ in plans])
    incident_ids = add_incidents(session=session, event_id=event_id, incidents=placed)
    # A manual run is its own decision; a webhook runs what the runbook's `on` asks.
    runs = [
        [
            item for item in incident_plans
            if started_by is not None or incident.status == "resolved"
            or incident.phase in item.runbook.match.on
        ]
        for incident, (_, incident_plans) in zip(placed, plans, strict=True)
    ]  # fmt: skip
    # An acknowledgement, a repeat: on its occurrence's history, starting nothing. Looked
    # up together: a re-sent group of thousands is one query per 500, not one per alert.
    quiet = [
        (f"{incident.source}:{incident.fingerprint}", incident_id)
        for incident, incident_id, incident_runs in zip(placed, incident_ids, runs, strict=True)
        if not incident_runs and incident.phase == "updated"
    ]
    latest = latest_executions(session=session, incident_keys=[key for key, _ in quiet])
    for key, incident_id in quiet:
        if key in latest:
            attach(session=session, execution_id=latest[key], incident_id=incident_id, now=moment)
            attached.append(latest[key])
    for incident, incident_id, incident_runs in zip(placed, incident_ids, runs, strict=True):
        if incident.status == "resolved":
            key = f"{incident.source}:{incident.fingerprint}"
            note_resolution(session=session, incident_key=key, now=moment)
        for item in incident_runs:
            execution, joined = add_execution(
                session=session,
                plan=item,
                incident_id=incident_id,
                escalate_to=services.escalate_to(item.runbook.escalate),
                now=moment,
                trigger="webhook" if started_by is None else "manual",
            )
            if joined:
                attached.append(execution.id)
            else:
                created.append(execution)
            if started_by is not None:
                # Asking for a run that was already open is asking for it too: four-eyes
                # approval keeps the asker from approving it.
                execution.actions.append(started_by if not joined else ActionRow(
                    action="ask", by=started_by.by, identity=started_by.identity,
                    reason=started_by.reason, at=started_by.at,
                ))  # fmt: skip
    session.flush()
    return Accepted(
        event_id,
        False,
        [e.id for e in created],
        len(plans),
        attached,
        delivery.ignored,
    )


# ---------------------------------------------------------------- run


@dataclass
class Stop:
    """Why a running execution should stop: a human cancelled it, or the service is
    shutting down and its grace period is over."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    shutdown: threading.Event = field(default_factory=threading.Event)

    def __call__(self) -> bool:
        return self.cancelled.is_set() or self.shutdown.is_set()


def run_step(
    executor: Executor,
    step: StepInput,
    policy: Retry,
    *,
    stop: Callable[[], bool],
    keep_trying: Callable[[], bool],
    sleep: Callable[[float], Any],
    on_attempt: Callable[[int, StepResult], None],
) -> StepResult:
    """Run one step, retried with exponential backoff while it fails or times out, from
    attempt `step.attempt` (a resumed step keeps its count) up to `policy.attempts`.
    `stop()` ends an attempt; no new attempt starts once `keep_trying()` is false."""
    attempt = step.attempt - 1
    last: StepResult | None = None

    def once() -> StepResult:
        nonlocal attempt, last
        if last is not None and not keep_trying():
            return last  # stopped during the backoff: the retry is left to whoever resumes it
        attempt += 1
        started = datetime.now(UTC)
        try:
            result = executor.run(
                StepInput(step.execution_id, step.position, attempt, step.spec, step.timeout_s),
                cancelled=stop,
            )
        except ExecutorError as exc:
            result = StepResult("failed", None, "", started, datetime.now(UTC), error=str(exc))
        on_attempt(attempt, result)
        last = result
        return result

    retrying = Retrying(
        stop=stop_after_attempt(max(1, policy.attempts - step.attempt + 1)),
        wait=wait_exponential(multiplier=policy.backoff, max=policy.max_backoff),
        retry=retry_if_result(
            lambda r: r.status in ("failed", "timed_out") and not stop() and keep_trying()
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


def run_execution(services: Services, execution_id: str, stop: Stop) -> str:
    """Run a claimed execution's pending steps; answers the status it is left in: final,
    `verifying`, or `queued` when shutdown released it for another worker."""
    with services.db.read() as session:
        execution = session.get_one(Execution, execution_id)
        policy = Retry.model_validate(execution.runbook_spec.get("retry", {}))
        if execution.cancel_requested:  # asked while it went back to the queue
            stop.cancelled.set()
        steps = [
            (s.id, s.position, s.kind, s.spec, s.idempotent, s.attempts)
            for s in execution.steps
            if s.status == "pending"
        ]
    for step_id, position, kind, spec, idempotent, done in steps:
        if stop.cancelled.is_set() or services.stopping.is_set():
            # Between steps nothing is half-done: hand the rest back, or end it as asked.
            return _stop_between_steps(services, execution_id, stop)
        with services.db.write() as session:
            row = session.get_one(StepRow, step_id)
            row.status, row.started_at = "running", row.started_at or datetime.now(UTC)
        result = _run_one(services, execution_id, step_id, position, kind, spec, done, policy, stop)
        after = functools.partial(
            _after_step, services=services, execution_id=execution_id, step_id=step_id,
            result=result, policy=policy, stop=stop, position=position, kind=kind,
            idempotent=idempotent,
        )  # fmt: skip
        ended = persist(services, after)
        if ended is not None:
            return ended
    return persist(
        services,
        lambda session: start_verification(
            session.get_one(Execution, execution_id), datetime.now(UTC)
        ),
    )


def _after_step(
    session: Session,
    *,
    services: Services,
    execution_id: str,
    step_id: int,
    result: StepResult,
    policy: Retry,
    stop: Stop,
    position: int,
    kind: str,
    idempotent: bool,
) -> str | None:
    """Record how a step ended; the status the execution is left in, or None to go on."""
    row = session.get_one(StepRow, step_id)
    execution = session.get_one(Execution, execution_id)
    now = datetime.now(UTC)
    retries_left = row.attempts < policy.attempts
    if result.status == "succeeded":
        row.status, row.finished_at = "succeeded", now
        return None
    if stop.cancelled.is_set():
        final, error = "cancelled", cancel_note(execution)
    elif services.stopping.is_set() and (
        result.status == "cancelled"
        and idempotent
        or result.status in ("failed", "timed_out")
        and retries_left
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
    row.status, row.finished_at = final, now
    finish_execution(
        execution=execution, status=final, now=now,
        error=f"step {position + 1} ({kind}): {error}",
        escalate=final != "cancelled",
    )  # fmt: skip
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


def _run_one(
    services: Services,
    execution_id: str,
    step_id: int,
    position: int,
    kind: str,
    spec: dict[str, Any],
    done: int,
    policy: Retry,
    stop: Stop,
) -> StepResult:
    secrets = services.secrets

    def record(number: int, result: StepResult) -> None:
        # Masked before it is stored: a step that printed a configured secret (its own
        # environment, a file it read) must not hand it to every reader of the API.
        result = replace(
            result,
            output_tail=redact(result.output_tail, secrets),
            error=redact(result.error, secrets) if result.error else None,
        )
        persist(
            services,
            lambda session: record_attempt(
                session=session, step_id=step_id, number=number, result=result
            ),
        )
        took = (result.finished_at - result.started_at).total_seconds()
        services.metrics.step_seconds.labels(kind, result.status).observe(took)
        log.info(
            "step %d (%s) attempt %d: %s, exit %s, %.1fs%s", position + 1, kind, number,
            result.status, result.rc, took, f": {result.error}" if result.error else "",
        )  # fmt: skip

    executor = services.executors.get(kind)
    if executor is None:
        now = datetime.now(UTC)
        result = StepResult("failed", None, "", now, now, error=f"no executor for {kind!r}")
        record(done + 1, result)
        return result
    return run_step(
        executor,
        StepInput(execution_id, position, done + 1, spec, float(spec.get("timeout", 300))),
        policy,
        stop=stop,
        keep_trying=lambda: not services.stopping.is_set(),
        sleep=services.stopping.wait,
        on_attempt=record,
    )


def _stop_between_steps(services: Services, execution_id: str, stop: Stop) -> str:
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


def cancel_note(execution: Execution) -> str:
    asked = [a for a in execution.actions if a.action == "cancel"]
    if not asked:
        return "cancelled"
    return f"cancelled by {asked[-1].by}" + (f": {asked[-1].reason}" if asked[-1].reason else "")


def release(execution: Execution) -> None:
    """Back to the queue for any worker: nothing of it is running now."""
    execution.status, execution.claimed_by, execution.lease_expires_at = "queued", None, None


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


# ---------------------------------------------------------------- escalate


def escalation_message(
    services: Services, row: EscalationRow, execution: Execution
) -> EscalationMessage:
    base = services.settings.public_url.rstrip("/")
    return EscalationMessage(
        escalation_id=row.id,
        reason=row.reason,
        execution=execution_view(execution, services.secrets),
        runbook_description=str(execution.runbook_spec.get("description", "")),
        execution_url=f"{base}/ui/#/executions/{execution.id}",
        api_url=f"{base}/api/executions/{execution.id}",
        progress=DurableProgress(services.db, row.id, set(row.progress or [])),
        approvers=approvers(execution) if row.reason == "waiting_approval" else None,
    )


def approvers(execution: Execution) -> str:
    """Who may approve `execution`, in words: its runbook's policy, less whoever asked."""
    policy = Approval.model_validate(execution.runbook_spec.get("approval", False))
    asked = sorted({a.by for a in execution.actions if a.action in ("run", "ask")})
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


def now_s() -> float:
    return time.time()
