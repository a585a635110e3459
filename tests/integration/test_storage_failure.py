"""A store that reads but refuses writes (a full or read-only disk; here a PostgreSQL
database switched to read-only): `/readyz` says so (503) instead of ready, and a webhook
gets the documented JSON error (503 `storage_unavailable`, Retry-After) rather than a
plain-text 500; once the store takes writes again, so does the service."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from tests.support.postgres import PostgresServer
from tests.support.service import Api, alert


def read_only(server: PostgresServer, url: str, on: bool) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(server.url(), autocommit=True) as connection:
        connection.execute(
            f'ALTER DATABASE "{name}" SET default_transaction_read_only = {"on" if on else "off"}'
        )
        # Open connections keep the setting they started with: end them.
        connection.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


def wait_ready(api: Api, ready: bool) -> dict[str, object]:
    deadline = time.monotonic() + 15
    while True:
        answer = api.client.get("/readyz")
        if (answer.status_code == 200) == ready or time.monotonic() > deadline:
            return dict(answer.json())
        time.sleep(0.3)


def test_a_store_that_refuses_writes_is_not_ready_and_answers_json(
    make_api: Callable[..., Api], postgres: PostgresServer
) -> None:
    url = postgres.new_database()
    api = make_api([], database_url=url)
    assert api.client.get("/readyz").status_code == 200
    read_only(postgres, url, True)
    try:
        answer = wait_ready(api, False)
        assert answer["ready"] is False
        assert str(dict(answer["checks"])["database"]).startswith("cannot write")  # type: ignore[call-overload]
        webhook = api.alertmanager(alert("Anything"))
        assert webhook.status_code == 503, webhook.text
        assert webhook.json()["error"] == "storage_unavailable"
        assert webhook.headers["retry-after"] == "5"
    finally:
        read_only(postgres, url, False)
    assert wait_ready(api, True)["ready"] is True
    assert api.alertmanager(alert("Anything")).status_code == 202
