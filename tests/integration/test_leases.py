"""Lease renewal beside a batch's results being recorded, on a real PostgreSQL: the
housekeeper's renewal of 13 leases and the worker's transaction that writes the 13
members' results in another order took row locks in opposite orders, and PostgreSQL
aborted one as a deadlock. A renewal now never waits for a row another transaction
holds: it renews the rest, and the held ones a third of a lease later."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.models import Attachment, Execution
from app.store.queue import expired_executions, renew_leases
from tests.support.history import Past, write_history
from tests.support.postgres import PostgresServer

WORKER = "replica-a/worker-1"


def _claimed(postgres: PostgresServer, count: int) -> tuple[Database, datetime, datetime]:
    """A database with `count` running executions that WORKER holds; now, and their lease."""
    db = Database(postgres.new_database())
    db.upgrade()
    now = datetime.now(UTC)
    write_history(db, [Past("fleet", "running", now, 0, None, False, False, None)] * count)
    lease = now + timedelta(seconds=5)
    with db.write() as session:
        session.execute(update(Execution).values(claimed_by=WORKER, lease_expires_at=lease))
    return db, now, lease


def test_a_renewal_beside_a_batch_being_recorded_never_deadlocks(postgres: PostgresServer) -> None:
    db, now, old = _claimed(postgres, 13)
    try:
        with db.read() as session:
            ids = sorted(session.scalars(select(Execution.id)))
        recording_holds = threading.Event()
        renewed = threading.Event()
        errors: list[BaseException] = []

        def record_the_batch() -> None:
            """Like the batch's record: each member's row in turn, newest id first."""
            try:
                with Session(db.engine) as session, session.begin():
                    for index, execution_id in enumerate(reversed(ids)):
                        session.execute(update(Execution).where(Execution.id == execution_id)
                                        .values(recoveries=1))  # fmt: skip
                        if index == 0:
                            recording_holds.set()
                            # The renewal runs now; before, it locked ids[0..11] and waited
                            # for ids[12], which this holds, while this waits for theirs.
                            renewed.wait(5)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        recorder = threading.Thread(target=record_the_batch)
        recorder.start()
        assert recording_holds.wait(10)
        later = now + timedelta(seconds=60)
        with Session(db.engine) as session, session.begin():
            renew_leases(session=session, worker_id=WORKER, execution_ids=ids, now=later,
                         lease_s=30)  # fmt: skip
        renewed.set()
        recorder.join(30)
        assert not recorder.is_alive() and errors == []
        with db.read() as session:
            leases = dict(session.execute(select(Execution.id, Execution.lease_expires_at)).all())
            recovered = set(session.scalars(select(Execution.recoveries)))
        assert recovered == {1}  # the batch's write went through whole
        # Every lease but the one the recording held is renewed; that one is next time's.
        assert leases[ids[-1]] == old
        assert all(leases[i] == later + timedelta(seconds=30) for i in ids[:-1])
    finally:
        db.close()


def test_a_storm_attaching_to_an_execution_does_not_starve_its_lease(
    postgres: PostgresServer,
) -> None:
    """Each alert of a storm inserts an attachment whose foreign key takes a KEY SHARE lock
    on the execution's row until its transaction commits. A renewal that asked for FOR
    UPDATE skipped that row every time, the lease ran out under a steady storm, and
    another replica interrupted a healthy run (CI, 80 alerts across two replicas)."""
    db, now, _ = _claimed(postgres, 2)
    try:
        with db.read() as session:
            (execution_id, _), (_, incident_id) = session.execute(
                select(Execution.id, Execution.incident_id).order_by(Execution.id)
            ).all()
        later = now + timedelta(seconds=60)
        with Session(db.engine) as attaching, attaching.begin():
            attaching.add(Attachment(execution_id=execution_id, incident_id=incident_id,
                                     attached_at=now))  # fmt: skip
            attaching.flush()  # the insert, and its KEY SHARE lock, are held from here
            with Session(db.engine) as session, session.begin():
                session.execute(text("SET LOCAL lock_timeout = '5s'"))
                renew_leases(session=session, worker_id=WORKER, execution_ids=[execution_id],
                             now=later, lease_s=30)  # fmt: skip
            with Session(db.engine) as session, session.begin():
                session.execute(text("SET LOCAL lock_timeout = '5s'"))
                expired = expired_executions(session=session, now=later + timedelta(days=1))
                # Recovery, claims and renewal all pass an attachment being written.
                assert execution_id in {e.id for e in expired}
        with db.read() as session:
            lease = session.scalar(select(Execution.lease_expires_at)
                                   .where(Execution.id == execution_id))  # fmt: skip
        assert lease == later + timedelta(seconds=30)
    finally:
        db.close()
