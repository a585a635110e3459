"""Proposing a revert in git, against a real bare remote: whatever remediator pushes
touches only the workdir, even on a branch its ledger says it pushed (a ledger row for a
commit that carries more, from a tampered database, is refused by the diff check), and
the ledger is keyed by the remote's URL without its credentials."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from app.gitops.propose import Propose, ProposeError, propose_revert, without_credentials
from app.gitops.proposer import RememberedPushes
from app.gitops.versions import GitVersions

ENV = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@localhost",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@localhost"}  # fmt: skip


def git(where: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(where), *args], capture_output=True, text=True,
                          env=ENV, check=True)  # fmt: skip
    return done.stdout.strip()


def commit(root: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD")


def test_a_branch_that_changes_more_than_the_workdir_is_refused_even_when_ours(
    tmp_path: Path,
) -> None:
    root, remote = tmp_path / "infra", tmp_path / "remote.git"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    good = commit(root, {"terraform/web/main.tf": "# release 1\n"}, "web: release 1")
    bad = commit(root, {"terraform/web/main.tf": "# release 2\n"}, "web: release 2")
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    git(root, "remote", "add", "origin", str(remote))
    git(root, "push", "-q", "origin", "main")
    git(root, "checkout", "-q", "-b", "planted")
    planted = commit(root, {".github/workflows/deploy.yml": "on: push\n"}, "Revert web")
    branch = "remediator/revert-web-planted1"
    git(root, "push", "-q", "origin", f"planted:refs/heads/{branch}")
    git(root, "checkout", "-q", "main")
    ledger = RememberedPushes()
    ledger.record(str(remote), branch, planted, "tampered")

    versions = GitVersions(root / "terraform")
    with pytest.raises(
        ProposeError, match=r"outside terraform/web: \.github/workflows/deploy\.yml"
    ):
        propose_revert(root, "terraform/web", "web", versions.describe(good, "previous"),
                       "0123abcd-0000", Propose(), "Revert web", ledger)  # fmt: skip
    assert git(remote, "rev-parse", branch) == planted  # nothing pushed
    assert git(remote, "rev-parse", "main") == bad
    assert git(remote, "for-each-ref", "--format=%(refname:short)") == f"main\n{branch}"


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://x-access-token:ghp_secret@github.com/acme/infra.git",
         "https://github.com/acme/infra.git"),
        ("https://github.com/acme/infra.git", "https://github.com/acme/infra.git"),
        ("git@github.com:acme/infra.git", "git@github.com:acme/infra.git"),
        ("/srv/git/infra.git", "/srv/git/infra.git"),
    ],
)  # fmt: skip
def test_the_ledger_keys_a_remote_by_its_url_without_credentials(url: str, key: str) -> None:
    assert without_credentials(url) == key
