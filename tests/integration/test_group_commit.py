"""Group commit on the real databases: writes that arrive together share one transaction,
each is answered only once it is committed, and one write's failure is its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.store.db import Database
from app.store.models import Event


@pytest.fixture
def db(database_url: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(database_url.replace("sqlite:///", f"sqlite:///{tmp_path}/"))
    database.upgrade()
    yield database
    database.close()


def add_event(delivery_id: str) -> Callable[[Session], str]:
    def work(session: Session) -> str:
        event = Event(
            source="generic", delivery_id=delivery_id, event_type="t",
            received_at=datetime.now(UTC),
        )  # fmt: skip
        session.add(event)
        session.flush()
        return event.id

    return work


def stored(db: Database, *delivery_ids: str) -> int:
    """How many of these deliveries another connection sees committed."""
    with db.engine.connect() as connection:
        query = select(func.count()).where(Event.delivery_id.in_(delivery_ids))
        return int(connection.execute(query).scalar_one())


def test_writes_submitted_together_share_commits_and_all_land(db: Database) -> None:
    # Hold the writer busy so that the next 200 queue up behind it.
    gate = threading.Event()

    def blocked(_session: Session) -> None:
        assert gate.wait(10)

    first = db.together.submit(blocked)
    futures = [db.together.submit(add_event(f"d{i}")) for i in range(200)]
    gate.set()
    first.result(timeout=10)
    ids = [f.result(timeout=30) for f in futures]
    assert len(set(ids)) == 200
    assert stored(db, *(f"d{i}" for i in range(200))) == 200
    assert db.together.jobs == 201
    assert db.together.batches <= 5  # 1 for the blocker, then batches of up to 64


def test_a_write_is_answered_only_after_it_is_committed(db: Database) -> None:
    seen_at_answer: list[int] = []
    answered = threading.Event()

    def on_answer(_future: Future[str]) -> None:
        seen_at_answer.append(stored(db, "durable"))
        answered.set()

    db.together.submit(add_event("durable")).add_done_callback(on_answer)
    assert answered.wait(10)
    assert seen_at_answer == [1]


def test_one_failing_write_does_not_undo_the_others_in_its_batch(db: Database) -> None:
    gate = threading.Event()
    first = db.together.submit(lambda _s: gate.wait(10))
    before = db.together.submit(add_event("before"))
    duplicate_of_before = db.together.submit(add_event("before"))
    failing: Future[object] = db.together.submit(lambda _s: 1 / 0)
    after = db.together.submit(add_event("after"))
    gate.set()
    first.result(timeout=10)
    assert isinstance(before.result(timeout=10), str)
    with pytest.raises(IntegrityError):
        duplicate_of_before.result(timeout=10)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=10)
    assert isinstance(after.result(timeout=10), str)
    assert stored(db, "before", "after") == 2


def test_a_failed_commit_fails_every_write_in_it_and_stores_none(db: Database) -> None:
    # The writer is held in a batch of its own while the jobs queue, so they all make
    # the next batch together (a batch is every job waiting when it begins; a loaded
    # machine could begin one before the test had queued them all).
    holding, gate = threading.Event(), threading.Event()

    def hold(_session: Session) -> bool:
        holding.set()
        return gate.wait(10)

    held = db.together.submit(hold)
    assert holding.wait(10)
    first = db.together.submit(lambda _s: None)
    futures = [db.together.submit(add_event(f"lost{i}")) for i in range(3)]

    def break_the_commit(session: Session) -> None:
        connection = session.connection()
        if connection.dialect.name == "sqlite":
            # A foreign key checked only at COMMIT: the commit itself fails.
            connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
            connection.exec_driver_sql(
                "INSERT INTO incidents (id, event_id, source, fingerprint, status, received_at,"
                " data) VALUES ('x', 'no-such-event', 's', 'f', 'firing', '2026-01-01', '{}')"
            )
        else:  # the database connection is lost mid-batch
            connection.exec_driver_sql("SELECT pg_terminate_backend(pg_backend_pid())")

    breaker = db.together.submit(break_the_commit)
    gate.set()
    assert held.result(timeout=10) is True
    waiting: list[Future[Any]] = [first, *futures, breaker]
    for future in waiting:
        with pytest.raises(Exception):  # noqa: B017 - whatever the driver says, all fail
            future.result(timeout=10)
    assert stored(db, "lost0", "lost1", "lost2") == 0
    # The writer goes on: the next write lands.
    assert isinstance(db.together.submit(add_event("later")).result(timeout=10), str)


def test_a_failed_write_is_recovered_in_a_fresh_savepoint(db: Database) -> None:
    first = db.together.submit(add_event("taken")).result(timeout=10)

    def write_two(session: Session) -> str:
        add_event("partial")(session)  # rolled back with the failure that follows
        return add_event("taken")(session)

    def recover(session: Session, failure: Exception) -> str:
        assert isinstance(failure, IntegrityError)
        return str(session.scalars(select(Event.id).where(Event.delivery_id == "taken")).one())

    answer = db.together.submit(write_two, recover=recover).result(timeout=10)
    assert answer == first
    assert stored(db, "partial") == 0
