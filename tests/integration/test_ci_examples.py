"""The example CI jobs (examples/ci/), run by their commands as written (not by a CI
engine): in a copy of a runbook repository whose pull request adds a runbook, lint and
the tests pass, the history is fetched from a loopback file server, the backtest reports
the new match, and the report is posted to a loopback stand-in of GitHub's issue-comment
and GitLab's merge-request-note endpoints, which check the request as the real ones do
(path, auth header, JSON `body`). Steps that need the internet (installing remediator,
`uses:` actions) are the only ones not run; remediator is on PATH from the test's venv."""

from __future__ import annotations

import http.server
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config.loading import load_settings
from app.ingest import arrive, store_delivery
from app.services import build_services
from tests.support.loopback import serving
from tests.support.service import ROOT, alert

EXAMPLES = ROOT / "examples" / "ci"
BIN = str(Path(sys.executable).parent)
GITHUB_TOKEN, NOTE_TOKEN = "ghs_example_token_0001", "glpat-example-token-0001"
# The pull request: a runbook for an alert the history has and no runbook matched.
NEW_RUNBOOK = {
    "name": "clear-cache-when-almost-full",
    "match": {"all": [{"field": "labels.alertname", "equals": "CacheAlmostFull"}]},
    "steps": [{"ansible": {"playbook": "clear-cache.yml",
                           "extra_vars": {"cache_dir": "/tmp/remediator-demo/cache"}}}],
}  # fmt: skip


@dataclass
class Platform:
    """The file server holding the export, and the code hosts' comment endpoints."""

    events: bytes = b""
    comments: list[dict[str, Any]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


@pytest.fixture
def platform() -> Iterator[tuple[Platform, str]]:
    state = Platform()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            if self.path != "/exports/events.jsonl":
                return self._answer(404, {"message": "Not Found"})
            self.send_response(200)
            self.send_header("content-length", str(len(state.events)))
            self.end_headers()
            self.wfile.write(state.events)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            github = re.fullmatch(r"/repos/acme/runbooks/issues/7/comments", self.path)
            gitlab = re.fullmatch(r"/api/v4/projects/42/merge_requests/3/notes", self.path)
            # docs.github.com/rest/issues/comments#create-an-issue-comment;
            # docs.gitlab.com/api/notes/#create-new-merge-request-note
            if github and self.headers.get("authorization") != f"Bearer {GITHUB_TOKEN}":
                return self._answer(401, {"message": "Bad credentials"})
            if gitlab and self.headers.get("private-token") != NOTE_TOKEN:
                return self._answer(401, {"message": "401 Unauthorized"})
            if not (github or gitlab):
                state.violations.append(f"POST {self.path}")
                return self._answer(404, {"message": "Not Found"})
            try:
                sent = json.loads(body)
            except ValueError:
                sent = None
            if not isinstance(sent, dict) or not isinstance(sent.get("body"), str):
                state.violations.append(f"{self.path}: body is not JSON with a text `body`")
                return self._answer(422, {"message": "Validation Failed"})
            host = "github" if github else "gitlab"
            if github and self.headers.get("x-github-api-version") != "2022-11-28":
                state.violations.append("no X-GitHub-Api-Version")
            state.comments.append({"host": host, "body": sent["body"]})
            self._answer(201, {"id": len(state.comments), "body": sent["body"]})

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as base:
        yield state, base


@pytest.fixture
def repository(tmp_path: Path, platform: tuple[Platform, str]) -> Path:
    """A runbook repository (the examples' runbooks, playbooks and terraform, and the CI
    config) on a branch that adds a runbook; its events export on the file server."""
    repo = tmp_path / "runbooks-repo"
    for part in ("runbooks", "playbooks", "terraform"):
        shutil.copytree(ROOT / part, repo / part)
    (repo / "ci").mkdir()
    shutil.copy(EXAMPLES / "remediator.yaml", repo / "ci" / "remediator.yaml")
    # The production service's history, made by the real ingest, then exported.
    production = tmp_path / "production.yaml"
    production.write_text(yaml.safe_dump({
        "runbooks_dir": str(repo / "runbooks"), "playbooks_dir": str(repo / "playbooks"),
        "terraform_dir": str(repo / "terraform"),
        "database_url": f"sqlite:///{tmp_path / 'production.db'}",
        "sources": {"alertmanager": {"insecure": True}},
        "escalation": {"webhook": {"url": "http://127.0.0.1:9/"}},
    }))  # fmt: skip
    services = build_services(load_settings(production))
    try:
        for body in (
            (ROOT / "runbooks" / "tests" / "payloads" / "cache-full.json").read_bytes(),
            json.dumps(alert("CacheAlmostFull", fingerprint="almost", instance="web-2")).encode(),
        ):
            store_delivery(services, arrive(services, "alertmanager", {}, body,
                                            datetime.now(UTC).timestamp()))  # fmt: skip
    finally:
        services.db.close()
    exported = subprocess.run(
        [sys.executable, "-m", "app.cli", "--config", str(production), "events", "export",
         "--since", "1d"], capture_output=True, check=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    platform[0].events = exported.stdout
    (repo / "runbooks" / "almost-full.yml").write_text(yaml.safe_dump(NEW_RUNBOOK))
    return repo


def _run(script: str, repo: Path, env: dict[str, str]) -> None:
    """As the CI runners run a script: bash, stopping at the first failing command or
    pipe (GitHub's `bash -eo pipefail {0}`; GitLab's runner sets the same)."""
    ran = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=repo, env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(repo), **env},
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert ran.returncode == 0, f"{script}\n{ran.stdout}\n{ran.stderr}"


def _installs(script: str) -> bool:
    """The install step: `pip install remediator==…` needs the package index."""
    return bool(re.search(r"pip install .*remediator==", script))


def _reported(state: Platform, host: str, repo: Path) -> str:
    assert state.violations == []
    (comment,) = [c for c in state.comments if c["host"] == host]
    body: str = comment["body"]
    assert body == (repo / "backtest.md").read_text()
    assert body.startswith("### remediator backtest: 1 of 2 incident(s)")
    assert "clear-cache-when-almost-full" in body and "new match" in body
    return body


def test_the_github_actions_job_checks_and_comments(
    repository: Path, platform: tuple[Platform, str]
) -> None:
    state, base = platform
    workflow = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())
    values = {
        "secrets.REMEDIATOR_EVENTS_URL": f"{base}/exports/events.jsonl",
        "github.token": GITHUB_TOKEN,
        "github.event.pull_request.number": "7",
    }
    summary = repository / "summary.md"
    env = {
        **workflow["env"], "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_API_URL": base,
        "GITHUB_REPOSITORY": "acme/runbooks",
    }  # fmt: skip
    skipped = []
    for step in workflow["jobs"]["runbooks"]["steps"]:
        if "uses" in step or _installs(step["run"]):
            skipped.append(step.get("uses") or step["name"])
            continue
        step_env = {
            name: re.sub(r"\$\{\{\s*([\w.]+)\s*\}\}", lambda m: values[m.group(1)], str(value))
            for name, value in step.get("env", {}).items()
        }
        assert "${{" not in step["run"], "expressions go through env:, not into the script"
        _run(step["run"], repository, {**env, **step_env})
    assert skipped == ["actions/checkout@v4", "actions/setup-python@v5", "Install remediator",
                       "actions/upload-artifact@v4"]  # fmt: skip
    assert "<testsuites" in (repository / "runbook-tests.xml").read_text()
    body = _reported(state, "github", repository)
    assert summary.read_text() == body


def test_the_gitlab_ci_job_checks_and_notes(
    repository: Path, platform: tuple[Platform, str]
) -> None:
    state, base = platform
    job = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())["runbooks"]
    assert all(_installs(line) for line in job["before_script"])
    env = {
        **job["variables"], "REMEDIATOR_EVENTS_URL": f"{base}/exports/events.jsonl",
        "REMEDIATOR_NOTE_TOKEN": NOTE_TOKEN, "CI_API_V4_URL": f"{base}/api/v4",
        "CI_PROJECT_ID": "42", "CI_MERGE_REQUEST_IID": "3",
    }  # fmt: skip
    for line in job["script"]:
        _run(line, repository, env)
    assert job["artifacts"]["reports"]["junit"] == "runbook-tests.xml"
    assert "<testsuites" in (repository / "runbook-tests.xml").read_text()
    _reported(state, "gitlab", repository)
