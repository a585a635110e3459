"""Engine and sessions.

SQLite is set up for durability and for several threads writing: WAL with
`synchronous=FULL` (a committed webhook survives power loss, not only a crash), and every
write transaction starts with `BEGIN IMMEDIATE`, so two writers queue on the lock instead
of failing half-way with SQLITE_BUSY when a read turns into a write.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_random

from app.store.group_commit import GroupCommit

MIGRATIONS = Path(__file__).parent / "migrations"


def newest_revision() -> str:
    """The newest migration's revision: the files are numbered, `0011_trust.py` is 0011
    (a test holds this to what Alembic reads from them)."""
    return max(p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py"))


def engine_url(url: str) -> str:
    """Accept plain `postgresql://` and pick the psycopg 3 driver for it."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    url = engine_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to the "begin" hook below instead of pysqlite.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("busy_timeout=30000", "synchronous=FULL", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        _switch_to_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        readonly = connection.get_execution_options().get("readonly", False)
        connection.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

    return engine


@retry(
    retry=retry_if_exception_type(sqlite3.OperationalError),
    wait=wait_random(0.01, 0.1),
    stop=stop_after_delay(30),
    reraise=True,
)
def _switch_to_wal(cursor: sqlite3.Cursor) -> None:
    """Connections that open a new database file together all try to switch it to WAL;
    SQLite answers SQLITE_BUSY at once to all but one, without its busy handler (waiting
    could deadlock), so the losers try again until the file is in WAL mode."""
    cursor.execute("PRAGMA journal_mode=WAL")


def lock_names(connection: Connection, names: Iterable[str]) -> None:
    """Hold a lock on each name until the transaction ends, so guards that read before
    they write (cooldown, rate limit, attach) see every replica's runs. PostgreSQL: a
    transaction-scoped advisory lock per name, taken in sorted order so two transactions
    cannot deadlock. SQLite needs nothing: `BEGIN IMMEDIATE` already serialises writers."""
    if connection.dialect.name != "postgresql":
        return
    for name in sorted(set(names)):
        key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), signed=True)
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._writer = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = sessionmaker(
            self.engine.execution_options(readonly=True), expire_on_commit=False
        )
        # SQLite has one writer at a time. Threads of this process queue here, handed the
        # turn the moment it is free, instead of in SQLite's busy handler, which sleeps
        # in growing steps (up to 100 ms) however soon the lock frees: under load that
        # cut ingest to ~90 requests/s. Other processes on the same file still meet
        # `busy_timeout`. PostgreSQL locks rows, so its writers run side by side.
        self._one_writer = threading.RLock() if self.engine.dialect.name == "sqlite" else None
        # Many short writes that arrive at once (webhooks) share transactions through it.
        self.together = GroupCommit(self.write, lambda s, names: lock_names(s.connection(), names))

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on error."""
        with self._one_writer or nullcontext(), self._writer.begin() as session:
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader.begin() as session:
            yield session

    def probe_write(self) -> None:
        """A write the way deliveries write (through the one writer, committed): fails
        when the store can read but not take a write (a full or read-only disk)."""
        with self.write() as session:
            session.execute(text("UPDATE write_probe SET written_at = :now WHERE id = 1"),
                            {"now": datetime.now(UTC)})  # fmt: skip

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (run at every start). Replicas that
        start together take turns: the first migrates, the others find it done. A
        database already at the newest is only read: Alembic (and the template engine
        it imports) is loaded when there is something to migrate, which took a third of
        an ordinary start's CPU."""
        if self.revision() == newest_revision():
            return
        from alembic import command  # here, not at the top: see above
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as connection:
            lock_names(connection, ["remediator:migrations"])
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def revision(self) -> str | None:
        """The migration the schema is at (None: not migrated yet). A database that cannot
        be reached is an error here, as it is for the migration."""
        with self.engine.connect() as connection:
            try:
                found = connection.execute(text("SELECT version_num FROM alembic_version"))
            except DBAPIError:  # no such table: a new database
                return None
            return found.scalar()

    def close(self) -> None:
        self.together.close()
        self.engine.dispose()
