"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.servers import Server, start_server
from tests.support.service import runbook, write_config
from tests.support.terraform_repo import TERRAFORM, TerraformRepo


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (append them); each is stopped after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()


@pytest.fixture
def replicas(tmp_path: Path, database_url: str) -> Iterator[Any]:
    """`start(runbooks, count=2, **config)`: that many `remediator serve` replicas on one
    database (the test's SQLite file or PostgreSQL), short leases; stopped after the test."""
    started: list[Server] = []

    def start(runbooks: list[dict[str, Any]], count: int = 2, **overrides: Any) -> list[Server]:
        config = write_config(tmp_path, runbooks, database_url=database_url, workers=2,
                              lease_s=3, **overrides)  # fmt: skip
        instant = "instant" in json.dumps(runbooks)
        for _ in range(count):
            started.append(start_server(config, name=f"replica-{len(started)}",
                                        instant=instant))  # fmt: skip
        return started[-count:]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """`start(repo, step, ...)`: a `remediator serve` whose one runbook reverts `repo`'s
    terraform on a WebReleaseErrors alert with `step`; stopped after the test."""
    servers: list[Server] = []

    def start(
        repo: TerraformRepo,
        step: dict[str, Any],
        escalation: Any = None,
        config: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Server:
        service = tmp_path / "service"
        service.mkdir(exist_ok=True)
        revert = runbook("web-revert", "WebReleaseErrors", {"terraform": step}, **extra)
        written = write_config(
            service, [revert], terraform_dir=str(repo.terraform_dir), terraform_bin=TERRAFORM,
            escalation=escalation or {}, **(config or {}),
        )  # fmt: skip
        servers.append(start_server(written))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
