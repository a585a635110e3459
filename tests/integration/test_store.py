"""The database schema: the Alembic migrations build exactly the models' tables, on
SQLite and on PostgreSQL, so neither database drifts from the other."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from app.store.db import Database
from app.store.models import Base


def test_migrations_build_the_models_schema(empty_database_url: str, tmp_path: Path) -> None:
    url = empty_database_url.replace("sqlite:///", f"sqlite:///{tmp_path}/")
    db = Database(url)
    try:
        db.upgrade()
        db.upgrade()  # a second start changes nothing
        with db.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            indexes = {i["name"] for i in inspect(connection).get_indexes("executions")}
        assert diff == []
        assert {"uq_executions_key_held", "uq_executions_open_per_incident"} <= indexes
    finally:
        db.close()


def test_replicas_starting_together_migrate_once(empty_database_url: str, tmp_path: Path) -> None:
    url = empty_database_url.replace("sqlite:///", f"sqlite:///{tmp_path}/")
    databases = [Database(url) for _ in range(4)]
    try:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda db: db.upgrade(), databases))
        with databases[0].engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    finally:
        for db in databases:
            db.close()


def test_connections_opening_a_new_sqlite_file_together_all_succeed(tmp_path: Path) -> None:
    # Every round races eight first connections to switch a fresh file to WAL; before
    # the retry, about one round in thirty lost one with "database is locked".
    for round_ in range(60):
        url = f"sqlite:///{tmp_path}/race-{round_}.db"
        databases = [Database(url) for _ in range(8)]
        start = threading.Barrier(len(databases))
        try:
            with ThreadPoolExecutor(len(databases)) as pool:
                list(pool.map(partial(_ping_together, start), databases))
            with databases[0].engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            for db in databases:
                db.close()


def _ping_together(start: threading.Barrier, db: Database) -> None:
    start.wait()
    with db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def test_the_newest_revision_is_what_alembic_reads_and_a_migrated_start_reads_only(
    tmp_path: Path,
) -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from app.store.db import MIGRATIONS, newest_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert newest_revision() == ScriptDirectory.from_config(config).get_current_head()
    db = Database(f"sqlite:///{tmp_path}/fresh.db")
    try:
        assert db.revision() is None
        db.upgrade()
        assert db.revision() == newest_revision()
    finally:
        db.close()
    # A start on a migrated database neither loads nor runs Alembic.
    probe = (
        "import sys; from app.store.db import Database; "
        f"db = Database('sqlite:///{tmp_path}/fresh.db'); db.upgrade(); db.close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, timeout=60)  # fmt: skip
    assert loaded.stdout.strip() == "[]"
