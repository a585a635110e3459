"""Lease renewal beside a batch's results being recorded, on a real PostgreSQL: the
housekeeper's renewal of 13 leases and the worker's transaction that writes the 13
members' results in another order took row locks in opposite orders, and PostgreSQL
aborted one as a deadlock. A renewal now never waits for a row another transaction
holds: it renews the rest, and the held ones a third of a lease later."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.models import Execution
from app.store.queue import renew_leases
from tests.support.history import Past, write_history
from tests.support.postgres import PostgresServer

WORKER = "replica-a/worker-1"


def test_a_renewal_beside_a_batch_being_recorded_never_deadlocks(postgres: PostgresServer) -> None:
    db = Database(postgres.new_database())
    try:
        db.upgrade()
        now = datetime.now(UTC)
        write_history(db, [Past("fleet", "running", now, 0, None, False, False, None)] * 13)
        old = now + timedelta(seconds=5)
        with db.write() as session:
            session.execute(update(Execution).values(claimed_by=WORKER, lease_expires_at=old))
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
