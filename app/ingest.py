"""Ingest: the journey of a webhook until it is durable.

arrive, submit_delivery, delivered:
                   verify → normalise → match → plan → persist (event, incidents,
                   executions, in one transaction, committed with the deliveries that
                   arrived at the same moment) → answer 202 with execution ids

What happens to an execution after that is `app.executions`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import (
    StaleTimestamp,
    TooManyIncidents,
    UnknownSource,
    UnsupportedPayload,
)
from app.executions.lifecycle import add_execution, note_resolution
from app.executions.trust import BLAST_RADIUS_LOCK, with_targets
from app.incident import Incident
from app.logs import log_context
from app.metrics import source_label
from app.runbooks.plan import Plan, plan
from app.services import Services
from app.sources.base import Delivery, WebhookRequest
from app.sources.registry import SOURCES, get_source
from app.store.models import ActionRow, Execution
from app.store.records import (
    add_event,
    add_incidents,
    attach,
    find_event,
    in_their_occurrences,
    latest_executions,
)

log = logging.getLogger("remediator.flows")
T = TypeVar("T")


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


def calls_out(source_name: str) -> bool:
    """Whether verifying a call of this source may call out to its platform (for keys)."""
    return source_name in SOURCES and SOURCES[source_name].calls_out


def arrive(
    services: Services,
    source_name: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    query: Mapping[str, str] | None = None,
) -> Arrival:
    """Verify and normalise one call, and plan what its incidents lead to (no database)."""
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
        signed=config.secret is not None or bool(config.topic_arns),
        query=query or {},
    )
    if config.proves_calls() or not config.insecure:
        source.verify(request, config)
    delivery = source.normalise(parse_json(body), request)
    _within_limits(services, request, delivery)
    matcher = services.matcher
    plans = [
        (incident, [with_targets(plan(m.runbook, incident), services.trust, services.executors)
                    for m in matcher.match(incident)])
        for incident in delivery.incidents
    ]  # fmt: skip
    return Arrival(source_name, delivery, plans, now)


def _within_limits(services: Services, request: WebhookRequest, delivery: Delivery) -> None:
    """Refuse a body older than the dedup window (a possible replay whose id is
    forgotten) and a delivery of more incidents than the service takes at once."""
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
        locks=_locks(services, arrival),
        recover=lambda session, failure: _after_conflict(session, services, arrival, failure),
    )


def _locks(services: Services, arrival: Arrival) -> list[str]:
    """The runbooks' names (replicas see each other's runs), and the blast radius when one
    is configured (two replicas never both spend its last unit)."""
    names = [p.runbook.name for _, runbook_plans in arrival.plans for p in runbook_plans]
    if names and services.trust.blast_radius is not None:
        names.append(BLAST_RADIUS_LOCK)
    return names


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
    event_id = add_event(
        session=session, source=source_name, delivery_id=delivery.delivery_id,
        event_type=delivery.event_type, incident_count=len(delivery.incidents),
        shared=delivery.shared, received_at=moment,
    )  # fmt: skip
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
            note_resolution(session=session, incident_key=key, now=moment,
                            followers=services.follows_incident)  # fmt: skip
        for item in incident_runs:
            execution, joined = add_execution(
                session=session,
                plan=item,
                incident_id=incident_id,
                escalate_to=services.escalate_to(item.runbook.escalate),
                now=moment,
                policy=services.trust,
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


def now_s() -> float:
    return time.time()
