"""Terraform reverts through a running `remediator serve`: an Alertmanager webhook reverts
bad real state, the guard refuses a destructive revert and escalates it, a hung apply is
interrupted and leaves the state unlocked, and a version can be recorded as known good.
(Proposing the revert in git: test_terraform_proposals.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.service import API_TOKEN, Recorder, bearer
from tests.support.terraform_repo import (
    CANARY,
    fire,
    hanging_version,
    requires_terraform,
    sleepers,
    terraform_repo,
)

pytestmark = requires_terraform

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def test_a_webhook_reverts_bad_state_and_records_the_version_as_good(
    tmp_path: Path, serve: Any
) -> None:
    repo = terraform_repo(tmp_path)
    server = serve(
        repo, {"workdir": "web", "revert_to": "previous", "var": {"note": "{{ incident.title }}"}}
    )
    execution = fire(server)

    assert execution["status"] == "succeeded", execution
    assert repo.state()["terraform_data.web"] == "release-1"
    assert repo.state()["terraform_data.note"].startswith("WebReleaseErrors")
    [step] = execution["steps"]
    assert step["kind"] == "terraform"
    assert step["detail"]["version"]["commit"] == repo.good
    assert step["detail"]["plan"]["change"] == ["terraform_data.note", "terraform_data.web"]
    assert not repo.locked()

    [recorded] = server.api("/terraform/versions", workdir="web")
    assert recorded["commit"] == repo.good
    assert recorded["execution_id"] == execution["id"]
    assert recorded["recorded_by"] == f"remediator (execution {execution['id']})"

    # A CI job records the version it applied and saw healthy; `last_good` reverts to it.
    ci = httpx.post(
        f"{server.base}/api/terraform/versions", headers=bearer("ci"), timeout=30,
        json={"workdir": "web", "ref": "main"},
    )  # fmt: skip
    assert ci.status_code == 201, ci.text
    assert ci.json()["commit"] == repo.bad and ci.json()["subject"] == "web: release 2"
    newest = server.api("/terraform/versions", workdir="web", limit=1)
    assert [v["recorded_by"] for v in newest] == ["ci"]

    for body, word in [
        ({"workdir": "web", "ref": "no-such-tag"}, "no-such-tag"),
        ({"workdir": "../..", "ref": "main"}, "../.."),
        ({"workdir": "web", "ref": "--output=/tmp/x"}, "--output"),
    ]:
        refused = httpx.post(f"{server.base}/api/terraform/versions", headers=AUTH, json=body)
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "unknown_version"
        assert word in refused.json()["detail"]
    unauthenticated = httpx.get(f"{server.base}/api/terraform/versions", params={"workdir": "web"})
    assert unauthenticated.status_code == 401


def test_a_destructive_revert_is_refused_and_escalated_with_its_plan(
    tmp_path: Path, serve: Any, recorder: Recorder
) -> None:
    repo = terraform_repo(tmp_path, bad_extra=CANARY)
    server = serve(
        repo, {"workdir": "web", "revert_to": "previous"},
        escalate=["webhook"], escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    execution = fire(server)

    assert execution["status"] == "refused"
    assert execution["guard"] == "max_destroy"
    assert "terraform_data.canary" in execution["error"]
    assert repo.state()["terraform_data.canary"] == "canary"  # nothing applied
    assert repo.state()["terraform_data.web"] == "release-2-broken"

    [sent] = recorder.wait_for(1)
    escalation = sent.json()
    assert escalation["reason"] == "refused"
    assert escalation["execution"]["guard"] == "max_destroy"
    [attempt] = escalation["execution"]["steps"][0]["attempt_log"]
    assert attempt["status"] == "refused"
    assert attempt["detail"]["plan"]["destroy"] == ["terraform_data.canary"]
    assert f"revert web to {repo.good[:12]}" in attempt["detail"]["summary"]
    assert "1 to destroy" in attempt["detail"]["summary"]
    assert server.api("/terraform/versions", workdir="web") == []


def test_a_hung_apply_is_interrupted_and_leaves_the_state_unlocked(
    tmp_path: Path, serve: Any, recorder: Recorder
) -> None:
    repo = terraform_repo(tmp_path)
    hanging_version(repo, 179)
    server = serve(
        repo, {"workdir": "web", "revert_to": "git:hangs", "timeout": "6s"},
        escalate=["webhook"], escalation={"webhook": {"url": recorder.url}},
    )  # fmt: skip
    execution = fire(server)

    assert execution["status"] == "timed_out", execution
    assert "interrupted with SIGINT" in execution["error"]
    assert not repo.locked()
    assert sleepers(179) == []
    assert repo.terraform("plan", "-lock-timeout=0s", "-input=false").returncode == 0
    [sent] = recorder.wait_for(1)
    assert sent.json()["reason"] == "timed_out"
    assert "Interrupt received" in sent.json()["execution"]["steps"][0]["output_tail"]


def test_a_revision_expression_reverts_through_a_running_server(tmp_path: Path, serve: Any) -> None:
    """`git:HEAD~1` (and `^`, `@{n}` forms) are revisions git resolves; the loader used to
    refuse them."""
    repo = terraform_repo(tmp_path)
    execution = fire(serve(repo, {"workdir": "web", "revert_to": "git:HEAD~1"}))
    assert execution["status"] == "succeeded", execution
    assert execution["steps"][0]["detail"]["version"]["commit"] == repo.good
    assert repo.state()["terraform_data.web"] == "release-1"
