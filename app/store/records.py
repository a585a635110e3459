"""Writing and finding what arrived: events, incidents in their occurrences, and the
executions they attach to. Each function works inside the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, exists, insert, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, lazyload

from app.incident import Incident
from app.store.models import (
    OPEN,
    Attachment,
    Base,
    Event,
    Execution,
    IncidentRow,
    StepRow,
    new_id,
)


def find_event(*, session: Session, source: str, delivery_id: str) -> Event | None:
    return session.scalars(
        select(Event).where(Event.source == source, Event.delivery_id == delivery_id)
    ).first()


# Built once: a statement made per call costs a cache-key walk on every delivery.
_INSERT_EVENT = insert(Base.metadata.tables[Event.__tablename__])
_INSERT_INCIDENT = insert(Base.metadata.tables[IncidentRow.__tablename__])


def add_event(
    *,
    session: Session,
    source: str,
    delivery_id: str,
    event_type: str,
    incident_count: int,
    shared: dict[str, Any] | None,
    received_at: datetime,
) -> str:
    """The event row for one delivery; its id. Written straight away (not at the next
    flush, and past the ORM: its unit of work was the larger part of ingest's cost), so a
    delivery id seen before fails here with IntegrityError."""
    event_id = new_id()
    session.connection().execute(
        _INSERT_EVENT,
        {
            "id": event_id, "source": source, "delivery_id": delivery_id,
            "event_type": event_type, "received_at": received_at,
            "incident_count": incident_count, "payload": shared,
        },
    )  # fmt: skip
    return event_id


# Held by the incident's own columns; `IncidentRow.document` puts them back.
_IN_COLUMNS = ("source", "fingerprint", "status", "received_at", "delivery_id", "occurrence")


def _lean(document: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in document.items()
        if key not in _IN_COLUMNS and value is not None and value != {}
    }


def add_incidents(*, session: Session, event_id: str, incidents: list[Incident]) -> list[str]:
    """The incident rows of one delivery, in one statement (a group of thousands of
    alerts is one round trip, not thousands); their ids."""
    rows = [
        {
            "id": new_id(), "event_id": event_id, "source": incident.source,
            "fingerprint": incident.fingerprint, "status": incident.status,
            # Most occurrences are the fingerprint itself: stored empty, read back as it.
            "occurrence": "" if incident.occurrence == incident.fingerprint
            else incident.occurrence,
            "received_at": incident.received_at,
            "data": _lean(incident.stored()),
        }
        for incident in incidents
    ]  # fmt: skip
    if rows:
        session.connection().execute(_INSERT_INCIDENT, rows)
    return [str(row["id"]) for row in rows]


def _newest_per_key(
    session: Session,
    *,
    columns: tuple[Any, ...],
    key: InstrumentedAttribute[Any],
    at: InstrumentedAttribute[Any],
    keys: list[str],
    equal: dict[str, Any] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """`columns` of the newest row (by `at`) for each of `keys`, among the rows whose
    other columns equal `equal`: one index walk per key, 500 keys per query, so a group
    of thousands of alerts takes a few round trips, not thousands."""
    newer = aliased(key.class_)
    same = equal or {}
    for start in range(0, len(keys), 500):
        rows = session.execute(
            select(*columns).where(
                key.in_(keys[start : start + 500]),
                *(getattr(key.class_, name) == value for name, value in same.items()),
                ~exists().where(
                    getattr(newer, key.key) == key,
                    getattr(newer, at.key) > at,
                    *(getattr(newer, name) == value for name, value in same.items()),
                ),
            )
        )
        yield from (tuple(row) for row in rows)


# Built once, with bound values: the newest incident of one fingerprint is one seek
# backwards along ix_incidents_latest. Per fingerprint it is several times cheaper than
# the batched NOT EXISTS below, whose statement was rebuilt and whose cache key was
# recomputed for every delivery: that was two thirds of the group-commit writer's time.
_LATEST_OF_ONE = (
    select(IncidentRow.status, IncidentRow.occurrence)
    .where(
        IncidentRow.source == bindparam("source"),
        IncidentRow.fingerprint == bindparam("fingerprint"),
    )
    .order_by(IncidentRow.received_at.desc())
    .limit(1)
)
# Up to this many fingerprints in a delivery are looked up one seek each; a larger
# group (a fleet's alerts) in the batched query, 500 keys a round trip.
FEW_FINGERPRINTS = 20


def in_their_occurrences(*, session: Session, incidents: list[Incident]) -> list[Incident]:
    """Each incident placed in its occurrence, against the latest one stored for its
    fingerprint: an `opened` event of an occurrence that is still open (a repeat, a
    re-sent group) is `updated`; an `updated` or `resolved` event belongs to the latest
    occurrence. Once that occurrence resolved, the next `opened` (or an `updated` saying it
    is active again) starts a new one."""
    latest: dict[tuple[str, str], tuple[str, str]] = {}
    connection = session.connection()
    for source in {incident.source for incident in incidents}:
        fingerprints = sorted({i.fingerprint for i in incidents if i.source == source})
        if len(fingerprints) <= FEW_FINGERPRINTS:
            for fingerprint in fingerprints:
                # On the connection, as the plain statement it is: the ORM's handling of a
                # session query was a tenth of the writer's time, one per delivery. (The
                # delivery's own rows are not written yet, and earlier ones are flushed.)
                row = connection.execute(
                    _LATEST_OF_ONE, {"source": source, "fingerprint": fingerprint}
                ).first()
                if row is not None:
                    latest[(source, fingerprint)] = (row.status, row.occurrence or fingerprint)
            continue
        for fingerprint, status, occurrence in _newest_per_key(
            session,
            columns=(IncidentRow.fingerprint, IncidentRow.status, IncidentRow.occurrence),
            key=IncidentRow.fingerprint,
            at=IncidentRow.received_at,
            keys=fingerprints,
            equal={"source": source},
        ):
            latest[(source, fingerprint)] = (status, occurrence or fingerprint)
    return [
        _placed(incident, latest.get((incident.source, incident.fingerprint)))
        for incident in incidents
    ]


def _placed(incident: Incident, latest: tuple[str, str] | None) -> Incident:
    if latest is None:
        return incident
    status, occurrence = latest
    if incident.phase == "opened":
        if status == "firing" and occurrence == incident.occurrence:
            return incident.model_copy(update={"phase": "updated"})
        return incident
    if incident.phase == "updated" and status == "resolved":
        # Active again after it resolved (a Rootly incident set back to started): reopened.
        return incident.model_copy(update={"phase": "opened"})
    return incident.model_copy(update={"occurrence": occurrence})


# The newest execution of one incident key: one seek backwards along ix_executions_incident.
# A re-sent alert (Alertmanager repeats each firing alert) looks one up on every delivery,
# and the batched NOT EXISTS, rebuilt per call, was a third of the writer's time.
_LATEST_EXECUTION_OF_ONE = (
    select(Execution.id)
    .where(Execution.incident_key == bindparam("incident_key"))
    .order_by(Execution.created_at.desc())
    .limit(1)
)


def latest_executions(*, session: Session, incident_keys: list[str]) -> dict[str, str]:
    """The newest execution's id, open or finished, for each incident key
    (`source:fingerprint`) that has one."""
    keys = sorted(set(incident_keys))
    if len(keys) <= FEW_FINGERPRINTS:
        connection = session.connection()  # see in_their_occurrences
        found = (
            (key, connection.scalar(_LATEST_EXECUTION_OF_ONE, {"incident_key": key}))
            for key in keys
        )
        return {key: str(execution_id) for key, execution_id in found if execution_id is not None}
    return {
        str(incident_key): str(execution_id)
        for incident_key, execution_id in _newest_per_key(
            session,
            columns=(Execution.incident_key, Execution.id),
            key=Execution.incident_key,
            at=Execution.created_at,
            keys=keys,
        )
    }


def incident_is_live(*, session: Session, source: str, fingerprint: str) -> bool:
    """The platform's incident with this fingerprint was seen, and last seen firing."""
    latest = _newest_per_key(
        session,
        columns=(IncidentRow.status,),
        key=IncidentRow.fingerprint,
        at=IncidentRow.received_at,
        keys=[fingerprint],
        equal={"source": source},
    )
    return any(status == "firing" for (status,) in latest)


def open_execution(*, session: Session, runbook: str, incident_key: str) -> Execution | None:
    """The execution of `runbook` for this incident that has not ended yet, if any."""
    return session.scalars(
        select(Execution).where(
            Execution.runbook == runbook,
            Execution.incident_key == incident_key,
            Execution.status.in_(OPEN),
        )
    ).first()


def attach(*, session: Session, execution_id: str, incident_id: str, now: datetime) -> None:
    """Record a later event of the incident on an execution: its history shows it."""
    # Added by id, not through `execution.attachments`: appending to the collection loads
    # every earlier attachment first, which made each alert of a storm slower than the last.
    session.add(Attachment(execution_id=execution_id, incident_id=incident_id, attached_at=now))


def execution_origin(*, session: Session, execution_id: str) -> tuple[str, Incident] | None:
    """The runbook an execution runs and the incident that started it, as it arrived."""
    # Those two only: the execution's steps, attempts, escalations and actions are not read.
    found = session.execute(
        select(Execution.runbook, IncidentRow)
        .join(IncidentRow, IncidentRow.id == Execution.incident_id)
        .where(Execution.id == execution_id)
    ).first()
    if found is None:
        return None
    runbook, incident = found
    return runbook, Incident.model_validate(incident.document)


def ended_steps(*, session: Session, kind: str, since: datetime) -> list[StepRow]:
    """The succeeded steps of `kind` that ended since `since`, newest first."""
    return list(
        session.scalars(
            select(StepRow)
            .where(StepRow.kind == kind, StepRow.finished_at >= since,
                   StepRow.status == "succeeded")
            .order_by(StepRow.finished_at.desc())
            # Their findings are what is read; each one's attempts are not.
            .options(lazyload(StepRow.attempt_rows))
        )
    )  # fmt: skip


def set_step_detail(*, session: Session, step_id: int, detail: dict[str, Any]) -> None:
    """Replace a step's findings (what it learnt since it ended, say)."""
    step = session.get(StepRow, step_id)
    if step is not None:
        step.detail = detail
