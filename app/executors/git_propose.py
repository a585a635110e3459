"""After a terraform revert applied: the same revert proposed in git, so that git, the
source of truth, stops saying the opposite of the state (the next pipeline run would
re-apply the bad version).

A branch `remediator/revert-<workdir>-<execution id, 8 characters>` gets one new commit
on top of the remote's `base` whose tree is `base`'s with the workdir's files as of the
applied version: only that workdir changes. A later revert of the same workdir, while
such a branch is still on the remote, adds its commit on top of that branch instead of
opening another. Nothing is force-pushed.

All of it happens in a private clone, never checked out, that borrows the live
repository's objects (`git clone --shared --no-checkout`): the live checkout, its index,
its refs and its config are never written. The remote is the live repository's own
(`git remote get-url`) unless the config names its URL (`git_hosting.remotes`), with
the code host's token for a remote on that host (`code_host.Reviews.git_env`), else
git's usual credentials for that URL. `git_says` looks again later, the same way, for
whether `base` now holds the applied version (merged). Nothing of a payload
reaches a git argument: the workdir and the remote are runbook text, the commit comes
from `revert_to`'s resolution, the execution id is ours.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from app.config import GIT_REMOTE_NAME
from app.errors import VersionError
from app.executors.git_versions import Version, run_git

BRANCH_PREFIX = "remediator/revert-"
# A remote's name and a branch name as runbook text may give them (git check-ref-format
# allows more; nothing here needs more).
GIT_NAME = GIT_REMOTE_NAME
AUTHOR = {
    "GIT_AUTHOR_NAME": "remediator",
    "GIT_AUTHOR_EMAIL": "remediator@localhost",
    "GIT_COMMITTER_NAME": "remediator",
    "GIT_COMMITTER_EMAIL": "remediator@localhost",
}


class Propose(BaseModel):
    """Propose each applied revert in git (runbook text only; nothing is templated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    remote: str = Field(default="origin", pattern=GIT_NAME, description="A remote of the repo.")
    base: str = Field(default="main", pattern=GIT_NAME, description="The branch to propose to.")


@dataclass(frozen=True)
class Proposal:
    """What was pushed, and what git says until it is merged."""

    branch: str
    commit: str | None  # None: git already says the applied version, nothing pushed
    remote: str
    base: str
    base_commit: str  # the tip of `base` it was proposed against
    git_version: str  # the last commit on `base` that changed the workdir
    applied: str  # the commit whose workdir the state now holds
    updated: bool  # added to a branch proposed before, not a new one
    drifted: bool  # `base` holds another configuration for the workdir than the state

    @property
    def drift(self) -> str | None:
        if not self.drifted:
            return None
        return (
            f"drift: git at {self.base_commit[:12]} ({self.base}) says {self.git_version[:12]}, "
            f"state at {self.applied[:12]}; proposed on {self.branch}"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"drift": self.drift}


class Reviewing(Protocol):
    """Where proposals are reviewed (a code host), as proposing needs it."""

    def still_open(self, branch: str, base: str) -> bool:
        """A proposal branch found on the remote is still under review, so a later
        revert adds to it rather than opening another."""

    def git_env(self, url: str) -> Mapping[str, str]:
        """git's environment for talking to the remote at `url` (its credentials)."""


class ProposeError(VersionError):
    """The revert applied, but proposing it in git failed (a refused push, say)."""


def propose_revert(
    repo_root: Path,
    workdir: str,
    name: str,
    applied: Version,
    execution_id: str,
    settings: Propose,
    message: str,
    reviews: Reviewing | None = None,
    url: str | None = None,
) -> Proposal:
    """Push the revert of `workdir` (a path relative to `repo_root`; `name` as the step
    names it, for the branch) to `applied`. Without `reviews` (no code host configured),
    any proposal branch of the workdir on the remote counts as still under review. `url`
    (from the config) is pushed to instead of the checkout's remote of that name."""
    url, talk = _remote(repo_root, settings, reviews, url)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "root"
    ours = f"refs/heads/{BRANCH_PREFIX}{slug}-*"
    open_ones = f"+{ours}:refs/proposing/open/{BRANCH_PREFIX}{slug}-*"
    with _fetched(repo_root, url, settings.base, talk, open_ones) as (private, work):
        base_commit = _git(work, "rev-parse", "--verify", "refs/proposing/base^{commit}")
        git_version = _git(work, "rev-list", "-n", "1", base_commit, "--", workdir) or base_commit
        found = _git(
            work, "for-each-ref", "--sort=-committerdate", "--format=%(refname)",
            "refs/proposing/open/",
        ).splitlines()  # fmt: skip
        open_refs = [
            ref
            for ref in found
            if reviews is None
            or reviews.still_open(ref.removeprefix("refs/proposing/open/"), settings.base)
        ]
        if open_refs:
            parent = _git(work, "rev-parse", open_refs[0])
            branch = open_refs[0].removeprefix("refs/proposing/open/")
        else:
            parent, branch = base_commit, f"{BRANCH_PREFIX}{slug}-{execution_id[:8]}"
        index = {"GIT_INDEX_FILE": str(Path(private) / "index")}
        _git(work, "read-tree", parent, env=index)
        _git(work, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", workdir, env=index)
        _git(work, "read-tree", f"--prefix={workdir}/", f"{applied.commit}:{workdir}", env=index)
        tree = _git(work, "write-tree", env=index)
        drifted = _tree(work, base_commit, workdir) != _tree(work, applied.commit, workdir)
        commit = None
        if drifted and tree != _git(work, "rev-parse", f"{parent}^{{tree}}"):
            commit = _git(work, "commit-tree", tree, "-p", parent, "-m", message, env=AUTHOR)
            _git(work, "push", "--quiet", "--", url, f"{commit}:refs/heads/{branch}", env=talk)
        # else: git already says the applied version, or the open proposal does
        return Proposal(branch, commit, settings.remote, settings.base, base_commit,
                        git_version, applied.commit, bool(open_refs), drifted)  # fmt: skip


@dataclass(frozen=True)
class GitSays:
    """What `base` on the remote holds for a workdir now."""

    base_commit: str
    agrees: bool  # its files are the applied version's: the proposal was merged


def git_says(
    repo_root: Path,
    workdir: str,
    applied: str,
    settings: Propose,
    reviews: Reviewing | None = None,
    url: str | None = None,
) -> GitSays:
    """Whether `base` on the remote now holds the `applied` commit's files for `workdir`
    (a path relative to `repo_root`), looked up in the same kind of private clone."""
    url, talk = _remote(repo_root, settings, reviews, url)
    with _fetched(repo_root, url, settings.base, talk) as (_, work):
        base_commit = _git(work, "rev-parse", "--verify", "refs/proposing/base^{commit}")
        agrees = _tree(work, base_commit, workdir) == _tree(work, applied, workdir)
        return GitSays(base_commit, agrees)


def _remote(
    repo_root: Path, settings: Propose, reviews: Reviewing | None, url: str | None
) -> tuple[str, Mapping[str, str]]:
    """The remote's URL (the config's, else the checkout's remote of that name) and
    git's environment for talking to it."""
    url = url or _git(repo_root, "remote", "get-url", "--", settings.remote)
    return url, reviews.git_env(url) if reviews is not None else {}


@contextmanager
def _fetched(
    repo_root: Path, url: str, base: str, env: Mapping[str, str], *refspecs: str
) -> Iterator[tuple[Path, Path]]:
    """A private clone that borrows the live repository's objects, never checked out,
    with the remote's `base` fetched as refs/proposing/base (and `refspecs`); answers its
    temporary directory and the clone in it."""
    with tempfile.TemporaryDirectory(prefix="remediator-propose-") as private:
        work = Path(private) / "repo"
        _git(None, "clone", "--quiet", "--no-checkout", "--shared", "--no-tags", "--",
             str(repo_root), str(work))  # fmt: skip
        _git(work, "fetch", "--quiet", "--no-tags", "--", url,
             f"+refs/heads/{base}:refs/proposing/base", *refspecs, env=env)  # fmt: skip
        yield Path(private), work


def _tree(work: Path, commit: str, path: str) -> str:
    return _git(work, "rev-parse", f"{commit}:{path}")


def _git(cwd: Path | None, *args: str, env: Mapping[str, str] | None = None) -> str:
    out = run_git(*args, cwd=cwd, error=ProposeError, env=env)
    return out.decode(errors="replace").strip()
