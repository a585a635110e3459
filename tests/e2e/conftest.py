"""Fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import Server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Servers a test starts (append them); each is stopped after the test."""
    started: list[Server] = []
    yield started
    for server in started:
        server.close()
