"""A real PostgreSQL for the tests: the Debian binaries (`initdb`, `pg_ctl`) run on a
temporary directory and a loopback port, as an unprivileged user when the tests run as
root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
import pytest

from app.store.db import Database
from tests.support.service import free_port


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


class PostgresServer:
    def __init__(self, directory: Path) -> None:
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise FileNotFoundError("initdb/pg_ctl not found (Debian package: postgresql)")
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        self._template: str | None = None
        self._template_lock = threading.Lock()

    def _run(self, argv: Sequence[str]) -> None:
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        subprocess.run(argv, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            os.chown(self.directory, entry.pw_uid, entry.pw_gid)
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                   "--encoding=UTF8", "--no-instructions"])  # fmt: skip
        self.resume()

    def resume(self) -> None:
        """Start the server on its existing data (after `stop`), on the same port."""
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 "
            "-c max_connections=200"
        )
        self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-w", "-t", "60",
                   "-l", str(self.directory / "log"), "start"])  # fmt: skip

    def stop(self) -> None:
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, *, migrated: bool = False) -> str:
        """A fresh database, empty or (`migrated`) at the newest schema; answers its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        template = f' TEMPLATE "{self._migrated()}"' if migrated else ""
        with psycopg.connect(self.url(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"{template}')
        return self.url(name)

    def _migrated(self) -> str:
        """A database migrated once, which `CREATE DATABASE ... TEMPLATE` copies: cheaper
        than every migration per test. Nothing stays connected to it (a template must not
        have sessions while it is copied)."""
        with self._template_lock:
            if self._template is None:
                name = "template_" + uuid.uuid4().hex[:12]
                with psycopg.connect(self.url(), autocommit=True) as connection:
                    connection.execute(f'CREATE DATABASE "{name}"')
                db = Database(self.url(name))
                try:
                    db.upgrade()
                finally:
                    db.close()
                self._template = name
            return self._template


@contextmanager
def running_postgres(prefix: str) -> Iterator[PostgresServer]:
    """A PostgreSQL server of its own in a fresh directory, stopped and removed after;
    pytest.skip when the Debian binaries are not installed."""
    # Not under pytest's tmp dir: that is private to root, and PostgreSQL runs as postgres.
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        server = PostgresServer(directory)
    except FileNotFoundError as exc:
        shutil.rmtree(directory, ignore_errors=True)
        pytest.skip(f"PostgreSQL is not installed: {exc}")
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
