"""The README's first command runs scripts/demo.py: it must show a remediation happen."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.service import ROOT, free_port

# Serial: it applies terraform/web of this checkout, whose state no other test may touch.
pytestmark = [pytest.mark.server, pytest.mark.ansible, pytest.mark.serial]


def test_demo_shows_a_remediation_and_an_escalation(tmp_path: Path) -> None:
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
    # The demo runs `terraform` itself (the example config's terraform_bin).
    if shutil.which("terraform") is None or not _has_history("terraform/web", commits=2):
        assert "skipping the terraform demo" in result.stdout
    else:
        assert "state says: release 2.5.0" in result.stdout
        assert "revert-bad-web-release → succeeded" in result.stdout
        assert "state now says: release 2.4.1, max_connections 200" in result.stdout
        # The revert is proposed in git: the branch, its commit and its diff are shown.
        assert "the revert is proposed in git: branch remediator/revert-web-" in result.stdout
        assert "remediator: Revert web to" in result.stdout
        assert "diff --git a/terraform/web/" in result.stdout
        assert '+    version         = "2.4.1"' in result.stdout


def _has_history(path: str, commits: int) -> bool:
    """Whether this checkout holds `commits` commits touching `path` (a shallow clone or
    an exported tree does not, and the demo's `previous` revert needs them)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "rev-list", "--count", "HEAD", "--", path],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.returncode == 0 and int(done.stdout.strip() or 0) >= commits
