"""The README's first command runs scripts/demo.py: it must show a remediation happen."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port

pytestmark = [pytest.mark.server, pytest.mark.ansible]


def test_demo_shows_a_remediation_and_an_escalation(tmp_path) -> None:
    env_db = f"sqlite:///{tmp_path}/demo.db"
    result = subprocess.run(
        [sys.executable, "scripts/demo.py", "--once", "--port", str(free_port()), "--receiver-port", str(free_port())],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False,
        env={**os.environ, "REMEDIATOR_DATABASE_URL": env_db},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "clear-cache-when-full → succeeded" in result.stdout
    assert "now holds 0 files" in result.stdout
    assert "database-failover → failed" in result.stdout
    assert "ESCALATION received" in result.stdout
