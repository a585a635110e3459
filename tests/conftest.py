"""Fixtures (and the markers each test directory gives its tests); the helpers they and
the tests use are in `tests/support`."""

from __future__ import annotations

import http.server
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette 1.x asks for httpx2 under its test client; httpx is what the service
    # itself uses, and the client works the same (benches import this module too).
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient

from app.config.loading import load_settings
from app.main import create_app
from app.steps.registry import KINDS
from tests.support.instant import InstantKind
from tests.support.loopback import serving
from tests.support.postgres import PostgresServer, running_postgres
from tests.support.service import DEFAULT_SQLITE, Api, Recorded, Recorder, write_config


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    box: dict[str, Recorder] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            rec = box["rec"]
            reply = rec.replies.pop(0) if rec.replies else 200
            if reply == "hang":
                time.sleep(3)
                return
            rec.requests.append(
                Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            self.send_response(int(reply))
            for name, value in rec.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        do_GET = do_POST  # noqa: N815  (the same script answers HTTP checks)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        box["rec"] = Recorder(url=f"{base}/hook")
        yield box["rec"]


@pytest.fixture
def instant_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test-only `instant` step kind (tests.support.instant) in this process's
    registry, for this test only."""
    monkeypatch.setitem(KINDS, "instant", InstantKind())


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; each test takes a fresh database."""
    with running_postgres("remediator-pg-") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite (a file next to the config, copied from a migrated one by
    `write_config`) and on a real PostgreSQL (a database made from a migrated template)."""
    if request.param == "sqlite":
        return DEFAULT_SQLITE
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database(migrated=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """Like `database_url`, with nothing in it: for the tests of the migrations."""
    if request.param == "sqlite":
        return DEFAULT_SQLITE
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.new_database()


@pytest.fixture
def make_api(tmp_path: Path) -> Iterator[Callable[..., Api]]:
    """Start the real app (workers included) on a config with the given runbooks."""
    clients: list[TestClient] = []

    def start(runbooks: list[dict[str, Any]], **overrides: Any) -> Api:
        settings = load_settings(write_config(tmp_path, runbooks, **overrides))
        client = TestClient(create_app(settings))
        client.__enter__()
        clients.append(client)
        return Api(client, settings)

    yield start
    for client in clients:
        client.__exit__(None, None, None)


LAYERS = ("unit", "integration", "e2e")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Each test is marked with its directory (`-m unit`, `-m "not e2e"`), so a selection by
    marker is the same as one by path, and a new file cannot forget its marker."""
    for item in items:
        layer = item.path.parent.name
        if layer in LAYERS:
            item.add_marker(layer)
