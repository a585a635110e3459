"""A terraform revert proposed back to git through a running `remediator serve`: pushed
to a branch once and updated by the next, pull and merge requests opened on the code
host, planted branches never adopted, the code host's token only where it belongs, and
the drift shown until the proposal is merged."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.servers import Server
from tests.support.service import API_TOKEN, Recorder
from tests.support.standins.code_host import (
    GITHUB_TOKEN,
    GITLAB_TOKEN,
    CodeHostStandIn,
    code_host_stand_in,
)
from tests.support.standins.git_http import git_http_server
from tests.support.terraform_repo import (
    TerraformRepo,
    fire,
    requires_terraform,
    terraform_repo,
    web_tf,
)

pytestmark = requires_terraform

AUTH = {"authorization": f"Bearer {API_TOKEN}"}


def bare_remote(repo: TerraformRepo, tmp_path: Path) -> Path:
    """A bare repository as `origin`, holding main as the live repository has it."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "origin", "main")
    return remote


def git_at(remote: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(remote), *args], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return done.stdout.strip()


def test_an_applied_revert_is_proposed_in_git_once_and_updated_by_the_next(
    tmp_path: Path, serve: Any
) -> None:
    repo = terraform_repo(tmp_path)
    remote = bare_remote(repo, tmp_path)
    live_head = repo.git("rev-parse", "HEAD")
    step = {"workdir": "web", "revert_to": "previous", "propose": {"remote": "origin"}}
    server = serve(repo, step)
    first = fire(server)
    assert first["status"] == "succeeded", first
    assert repo.state()["terraform_data.web"] == "release-1"
    proposal = first["steps"][0]["detail"]["proposal"]
    branch = f"remediator/revert-web-{first['id'][:8]}"
    assert proposal["branch"] == branch and proposal["updated"] is False
    assert proposal["applied"] == repo.good and proposal["base_commit"] == repo.bad
    assert proposal["drift"].startswith(f"drift: git at {repo.bad[:12]} (main) says")
    assert "drift: git at" in first["steps"][0]["detail"]["summary"]
    # One branch, one commit on top of main, touching only the workdir, restoring it.
    assert git_at(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/") == (
        f"main\n{branch}"
    )
    assert git_at(remote, "rev-list", f"main..{branch}") == proposal["commit"]
    assert git_at(remote, "diff", "--name-only", "main", branch) == "terraform/web/main.tf"
    assert git_at(remote, "show", f"{branch}:terraform/web/main.tf") == git_at(
        remote, "show", f"{repo.good}:terraform/web/main.tf"
    )
    assert git_at(remote, "log", "-1", "--format=%an %s", branch).startswith(
        "remediator Revert web to"
    )
    assert git_at(remote, "rev-parse", "main") == repo.bad  # nothing force-pushed
    # The live checkout was never touched: same HEAD, clean, no new branch or remote ref.
    assert repo.git("rev-parse", "HEAD") == live_head and repo.git("status", "--porcelain") == ""
    assert "remediator" not in repo.git("for-each-ref", "--format=%(refname)")

    # A later revert of the same workdir, to another version (a hotfix committed since),
    # adds its commit to the open proposal instead of opening another.
    hotfix = repo.commit(web_tf("release-1.1"), "web: release 1.1")
    server.close()
    again = serve(repo, {**step, "revert_to": f"git:{hotfix}"})
    second = fire(again)
    assert second["status"] == "succeeded", second
    later = second["steps"][0]["detail"]["proposal"]
    assert later["branch"] == branch and later["updated"] is True
    assert git_at(remote, "rev-list", f"main..{branch}").split() == [later["commit"],
                                                                     proposal["commit"]]  # fmt: skip
    assert git_at(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/") == (
        f"main\n{branch}"
    )
    assert 'input = "release-1.1"' in git_at(remote, "show", f"{branch}:terraform/web/main.tf")


def test_a_revert_the_state_already_holds_is_still_proposed(tmp_path: Path, serve: Any) -> None:
    """The state holds the version already (an attempt retried after its apply landed
    and the service died, say): nothing is applied, and git is still brought in line."""
    repo = terraform_repo(tmp_path)
    remote = bare_remote(repo, tmp_path)
    server = serve(repo, {"workdir": "web", "revert_to": "previous"})
    assert fire(server)["status"] == "succeeded"
    server.close()
    again = fire(serve(repo, PROPOSE))
    assert again["status"] == "succeeded", again
    detail = again["steps"][0]["detail"]
    assert detail["applied"] is False and detail["proposal"]["commit"]
    branch = detail["proposal"]["branch"]
    assert git_at(remote, "rev-parse", branch) == detail["proposal"]["commit"]


def test_a_push_the_remote_refuses_is_escalated_and_the_revert_stays_succeeded(
    tmp_path: Path, serve: Any, recorder: Recorder
) -> None:
    repo = terraform_repo(tmp_path)
    remote = bare_remote(repo, tmp_path)
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected: pushes need review' >&2\nexit 1\n")
    hook.chmod(0o755)
    step = {"workdir": "web", "revert_to": "previous", "propose": {"remote": "origin"}}
    server = serve(repo, step, escalation={"webhook": {"url": recorder.url}},
                   escalate=["webhook"])  # fmt: skip
    execution = fire(server)
    assert execution["status"] == "succeeded", execution
    assert repo.state()["terraform_data.web"] == "release-1"
    detail = execution["steps"][0]["detail"]
    assert "pre-receive hook declined" in detail["proposal"]["error"]
    assert "protected: pushes need review" in detail["proposal"]["error"]
    assert "NOT proposed in git" in detail["summary"]
    [message] = [r.json() for r in recorder.wait_for(1)]
    assert message["reason"] == "attention"
    assert "NOT proposed in git" in json.dumps(message["execution"]["steps"])
    assert git_at(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/") == "main"


HOSTILE_INSTANCE = (
    "@acme/oncall #12 !3 [docs](javascript:alert(1)) <img src=x> *now* \u202eexe.txt\u2066"
)
PROPOSE = {"workdir": "web", "revert_to": "previous", "propose": {"remote": "origin"}}
HOSTED = {"github": {"token": GITHUB_TOKEN, "repo": "acme/infra"},
          "gitlab": {"token": GITLAB_TOKEN, "project": "acme/platform/infra"}}  # fmt: skip


@dataclass(frozen=True)
class Hosted:
    repo: TerraformRepo
    remote: Path
    host: CodeHostStandIn
    config: dict[str, Any]  # the service's `git_hosting`


@contextmanager
def hosted(tmp_path: Path, kind: str, **options: Any) -> Iterator[Hosted]:
    """A terraform repository whose proposals go to a bare remote, and a stand-in code
    host (`kind`) for their requests, named in the config."""
    repo = terraform_repo(tmp_path)
    remote = bare_remote(repo, tmp_path)
    with code_host_stand_in(remote=remote, **options) as host:
        config = {"git_hosting": {kind: {"url": host.base, **HOSTED[kind]}}}
        yield Hosted(repo, remote, host, config)


def test_a_revert_opens_one_pull_request_the_next_updates_it_and_a_merged_one_is_history(
    tmp_path: Path, serve: Any, recorder: Recorder
) -> None:
    with hosted(tmp_path, "github", rate_limited=1) as hosting:
        repo, github, step = hosting.repo, hosting.host, PROPOSE
        server = serve(repo, step, config=hosting.config,
                       escalation={"webhook": {"url": recorder.url}},
                       notify_on_success=["webhook"])  # fmt: skip
        first = fire(server, instance=HOSTILE_INSTANCE)
        assert first["status"] == "succeeded", first
        detail = first["steps"][0]["detail"]
        branch = f"remediator/revert-web-{first['id'][:8]}"
        [pull] = github.requests.values()
        # Opened once, after the push (the stand-in refuses a head the remote lacks),
        # though the first call found the rate limit spent.
        assert (pull.where, pull.branch, pull.base) == ("acme/infra", branch, "main")
        assert detail["proposal"]["request"] == {"url": pull_url(github, 1), "number": 1,
                                                 "opened": True}  # fmt: skip
        assert f"pull request: {pull_url(github, 1)}" in detail["summary"]
        assert pull.title == f"Revert web to {repo.good[:12]} (remediator)"
        assert f"http://remediator.test/ui/#/executions/{first['id']}" in pull.body
        assert "`web-revert`" in pull.body and "Drift:" in pull.body
        assert "terraform_data.web" in pull.body  # the plan, in its code block
        # The incident's title is payload data: no mention, reference, link or markup.
        for live in ("@acme", "#12", "[docs](", "<img", "*now*"):
            assert not re.search(r"(?<!\\)" + re.escape(live), pull.body), live
        # GitHub resolves `\\@acme` and `\\#12` all the same: a zero-width joiner breaks them.
        assert "\\@\u200dacme\\/oncall \\#\u200d12 \\!\u200d3 \\[docs\\]" in pull.body
        assert not re.search("[@#!][A-Za-z0-9]", pull.body.split("Drift:")[0]), pull.body
        assert not set("\u202e\u2066") & set(pull.body)
        # The success notice carries the request's link.
        [notice] = [r.json() for r in recorder.wait_for(1)]
        assert notice["type"] == "remediation.succeeded"
        assert pull_url(github, 1) in json.dumps(notice)

        # A later revert of the workdir adds to the same branch and the same request.
        hotfix = repo.commit(web_tf("release-1.1"), "web: release 1.1")
        server.close()
        again = serve(repo, {**step, "revert_to": f"git:{hotfix}"}, config=hosting.config)
        second = fire(again)
        assert second["status"] == "succeeded", second
        later = second["steps"][0]["detail"]["proposal"]
        assert later["branch"] == branch and later["updated"] is True
        assert later["request"] == {"url": pull_url(github, 1), "number": 1, "opened": False}
        assert list(github.requests) == [1] and len(pull.updates) == 1
        assert first["id"][:8] in pull.body and second["id"][:8] in pull.body

        # Merged: the branch is history, so the next revert opens a new branch and request.
        github.merge(1)
        again.close()
        third = fire(serve(repo, {**step, "revert_to": f"git:{repo.good}"}, config=hosting.config))
        assert third["status"] == "succeeded", third
        newest = third["steps"][0]["detail"]["proposal"]
        assert newest["branch"] == f"remediator/revert-web-{third['id'][:8]}"
        assert newest["updated"] is False and newest["request"]["number"] == 2
        assert github.violations == []


def plant(remote: Path, branch: str, on: str, path: str, work: Path) -> str:
    """Someone with push rights pushes `branch`: `on` plus a file at `path`, committed in
    the future so that it sorts newest. Answers the planted commit."""
    clone = work / f"planter-{len(list(work.glob('planter-*')))}"
    future = "2099-01-01T00:00:00Z"
    env = {**os.environ, "GIT_AUTHOR_NAME": "remediator", "GIT_AUTHOR_EMAIL": "remediator@localhost",
           "GIT_COMMITTER_NAME": "remediator", "GIT_COMMITTER_EMAIL": "remediator@localhost",
           "GIT_AUTHOR_DATE": future, "GIT_COMMITTER_DATE": future}  # fmt: skip

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(clone), *args], capture_output=True, text=True,
                              env=env, check=True)  # fmt: skip
        return done.stdout.strip()

    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    git("checkout", "-q", "--detach", on)
    (clone / path).parent.mkdir(parents=True, exist_ok=True)
    (clone / path).write_text("on: push\njobs: {steal: {runs-on: x, steps: [{run: env}]}}\n")
    git("add", "-A")
    git("commit", "-q", "-m", "Revert web")
    git("push", "-q", "origin", f"HEAD:refs/heads/{branch}")
    return git("rev-parse", "HEAD")


def test_a_planted_or_moved_proposal_branch_is_never_adopted(tmp_path: Path, serve: Any) -> None:
    """Anyone who can push can push a branch with remediator's prefix (here a workflow
    file, committed in the future so it sorts newest), or push onto one of remediator's
    own: neither gets remediator's commit or its pull request; a fresh branch does, and
    the step says which branch it ignored and why."""
    with hosted(tmp_path, "github") as hosting:
        repo, remote, github = hosting.repo, hosting.remote, hosting.host
        workflow = ".github/workflows/deploy.yml"
        planted = plant(remote, "remediator/revert-web-planted1", repo.bad, workflow, tmp_path)
        server = serve(repo, PROPOSE, config=hosting.config)
        first = fire(server)
        assert first["status"] == "succeeded", first
        proposal = first["steps"][0]["detail"]["proposal"]
        ours = f"remediator/revert-web-{first['id'][:8]}"
        assert proposal["branch"] == ours and proposal["updated"] is False
        assert proposal["ignored"] == [
            f"remediator/revert-web-planted1: its tip {planted[:12]} was not pushed by remediator"
        ]
        assert "ignored remediator/revert-web-planted1" in first["steps"][0]["detail"]["summary"]
        assert git_at(remote, "rev-parse", "remediator/revert-web-planted1") == planted
        assert git_at(remote, "diff", "--name-only", "main", ours) == "terraform/web/main.tf"
        [pull] = github.requests.values()
        assert pull.branch == ours

        # Someone pushes onto remediator's own branch: it is no longer remediator's.
        moved = plant(remote, ours, proposal["commit"], workflow, tmp_path)
        hotfix = repo.commit(web_tf("release-1.1"), "web: release 1.1")
        server.close()
        second = fire(serve(repo, {**PROPOSE, "revert_to": f"git:{hotfix}"}, config=hosting.config))
        assert second["status"] == "succeeded", second
        later = second["steps"][0]["detail"]["proposal"]
        assert later["branch"] == f"remediator/revert-web-{second['id'][:8]}"
        assert f"{ours}: its tip {moved[:12]} was not pushed by remediator" in later["ignored"]
        assert git_at(remote, "rev-parse", ours) == moved
        assert sorted(r.branch for r in github.requests.values()) == sorted([ours, later["branch"]])
        assert workflow not in git_at(remote, "diff", "--name-only", "main", later["branch"])
        assert github.violations == []


def pull_url(host: Any, number: int) -> str:
    return f"{host.base}/acme/infra/pull/{number}"


def test_a_revert_opens_a_gitlab_merge_request_on_a_namespaced_project(
    tmp_path: Path, serve: Any
) -> None:
    with hosted(tmp_path, "gitlab", rate_limited=1) as hosting:
        gitlab = hosting.host
        execution = fire(serve(hosting.repo, PROPOSE, config=hosting.config))
        assert execution["status"] == "succeeded", execution
        [request] = gitlab.requests.values()
        assert request.where == "acme/platform/infra" and request.base == "main"
        assert request.branch == f"remediator/revert-web-{execution['id'][:8]}"
        url = f"{gitlab.base}/acme/platform/infra/-/merge_requests/1"
        assert f"merge request: {url}" in execution["steps"][0]["detail"]["summary"]
        # The project path went as one percent-encoded segment.
        assert "POST /api/v4/projects/acme%2Fplatform%2Finfra/merge_requests" in gitlab.calls
        assert gitlab.violations == []


def test_a_code_host_that_fails_leaves_the_revert_pushed_and_escalated(
    tmp_path: Path, serve: Any, recorder: Recorder
) -> None:
    with hosted(tmp_path, "github", failing=True) as hosting:
        repo, remote = hosting.repo, hosting.remote
        server = serve(repo, PROPOSE, config=hosting.config, escalate=["webhook"],
                       escalation={"webhook": {"url": recorder.url}})  # fmt: skip
        execution = fire(server)
    assert execution["status"] == "succeeded", execution
    assert repo.state()["terraform_data.web"] == "release-1"
    detail = execution["steps"][0]["detail"]
    branch = f"remediator/revert-web-{execution['id'][:8]}"
    assert detail["proposal"]["branch"] == branch and "500" in detail["proposal"]["request_error"]
    assert f"pushed {branch}, but NO pull request was opened" in detail["summary"]
    assert branch in git_at(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads/")
    [message] = [r.json() for r in recorder.wait_for(1)]
    assert message["reason"] == "attention"


def test_the_push_to_the_code_host_carries_its_token_and_only_there(
    tmp_path: Path, serve: Any
) -> None:
    """A remote over HTTP that demands credentials (real `git http-backend`), named in the
    config's `git_hosting.remotes`: git is given the code host's token as a header, so
    the push lands; the live repository has no remote at all."""
    repo = terraform_repo(tmp_path)
    served = tmp_path / "served"
    bare = served / "infra.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    repo.git("push", "-q", str(bare), "main")
    with (
        git_http_server(served, "x-access-token", GITHUB_TOKEN) as git_http,
        code_host_stand_in(remote=bare) as github,
    ):
        config = {"git_hosting": {
            "github": {"url": github.base, **HOSTED["github"]},
            "remotes": {"origin": f"{git_http.base}/infra.git"},
        }}  # fmt: skip
        execution = fire(serve(repo, PROPOSE, config=config))
    assert execution["status"] == "succeeded", execution
    proposal = execution["steps"][0]["detail"]["proposal"]
    assert git_at(bare, "rev-parse", proposal["branch"]) == proposal["commit"]
    assert proposal["request"]["number"] == 1
    expected = "Basic " + base64.b64encode(f"x-access-token:{GITHUB_TOKEN}".encode()).decode()
    assert git_http.authorizations and set(git_http.authorizations) == {expected}
    assert repo.git("remote") == ""  # nothing was written to the live repository's config


def test_the_drift_is_shown_until_the_proposal_is_merged(tmp_path: Path, serve: Any) -> None:
    with hosted(tmp_path, "github") as hosting:
        repo, github = hosting.repo, hosting.host
        config = {**hosting.config, "drift_check_interval_s": 0.3}
        server = serve(repo, PROPOSE, config=config)
        first = fire(server)
        assert first["status"] == "succeeded", first
        drift = first["steps"][0]["detail"]["proposal"]["drift"]
        assert drift.startswith("drift: git at")
        time.sleep(1.5)  # several looks: git still says the bad version
        assert proposal_of(server, first["id"])["drift"] == drift

        github.close(1)  # closed without merging: said, and the drift stays
        closed = wait_for(server, first["id"], lambda p: p["request"].get("state") == "closed")
        assert closed["drift"] == drift

        # A later revert of the workdir supersedes the first one's drift.
        hotfix = repo.commit(web_tf("release-1.1"), "web: release 1.1")
        server.close()
        server = serve(repo, {**PROPOSE, "revert_to": f"git:{hotfix}"}, config=config)
        second = fire(server)
        assert second["status"] == "succeeded", second
        superseded = wait_for(server, first["id"], lambda p: p["drift"] is None)
        assert superseded["settled"] == f"superseded by the revert of execution {second['id'][:8]}"

        # Merged: git now says what the state holds, and the execution says so.
        github.merge(second["steps"][0]["detail"]["proposal"]["request"]["number"])
        merged = wait_for(server, second["id"], lambda p: p["drift"] is None)
        base = git_at(hosting.remote, "rev-parse", "main")
        assert merged["settled"].startswith(f"git at {base[:12]} (main) says the applied version")
        summary = server.api(f"/executions/{second['id']}")["steps"][0]["detail"]["summary"]
        assert "no drift: git at" in summary and "; drift: git at" not in summary
        assert github.violations == []


def proposal_of(server: Server, execution_id: str) -> dict[str, Any]:
    proposal: dict[str, Any] = server.api(f"/executions/{execution_id}")["steps"][0]["detail"][
        "proposal"
    ]
    return proposal


def wait_for(
    server: Server, execution_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """The execution's proposal once `done` says so (within 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        proposal = proposal_of(server, execution_id)
        if done(proposal) or time.monotonic() > deadline:
            return proposal
        time.sleep(0.2)
