"""After a terraform revert applied: the same revert proposed in git, so that git, the
source of truth, stops saying the opposite of the state (the next pipeline run would
re-apply the bad version).

A branch `remediator/revert-<workdir>-<execution id, 8 characters>` gets one new commit
on top of the remote's `base` whose tree is `base`'s with the workdir's files as of the
applied version: only that workdir changes. A later revert of the same workdir, while
such a branch is still on the remote, adds its commit on top of that branch instead of
opening another, but only a branch remediator pushed itself whose tip is still a commit
it pushed (the `Ledger`): anyone who can push to the repository can push a branch with
the prefix, and remediator's commit and request on top of a stranger's commit would
lend it a trust it has not earned. Such a branch is named in the proposal as ignored.
Whatever is pushed touches only the workdir (checked against `base` before the push).
Nothing is force-pushed.

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
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from app.config.sections import GIT_REMOTE_NAME
from app.errors import VersionError
from app.gitops.versions import Version, run_git

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
    ignored: tuple[str, ...] = ()  # proposal-like branches not adopted, and why

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


class Ledger(Protocol):
    """The commits remediator pushed to proposal branches (kept in the database)."""

    def ours(self, remote: str, branch: str, commit: str) -> bool:
        """Whether remediator pushed `commit` to `branch` on `remote` (a URL without
        credentials)."""

    def record(self, remote: str, branch: str, commit: str, execution_id: str) -> None:
        """Remember `execution_id`'s push, before it is made: a push that then fails
        leaves a record of a commit no branch has, which matches nothing."""


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
    ledger: Ledger,
    reviews: Reviewing | None = None,
    url: str | None = None,
) -> Proposal:
    """Push the revert of `workdir` (a path relative to `repo_root`; `name` as the step
    names it, for the branch) to `applied`. Without `reviews` (no code host configured),
    any proposal branch of ours on the remote counts as still under review. `url` (from
    the config) is pushed to instead of the checkout's remote of that name."""
    url, talk = _remote(repo_root, settings, reviews, url)
    remote = without_credentials(url)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "root"
    ours = f"refs/heads/{BRANCH_PREFIX}{slug}-*"
    refspec = f"+{ours}:refs/proposing/open/{BRANCH_PREFIX}{slug}-*"
    with _fetched(repo_root, url, settings.base, talk, refspec) as (private, work):
        base_commit = _git(work, "rev-parse", "--verify", "refs/proposing/base^{commit}")
        git_version = _git(work, "rev-list", "-n", "1", base_commit, "--", workdir) or base_commit
        found = _git(
            work, "for-each-ref", "--sort=-committerdate", "--format=%(objectname) %(refname)",
            "refs/proposing/open/",
        ).splitlines()  # fmt: skip
        open_ones: list[tuple[str, str]] = []
        ignored: list[str] = []
        for tip, ref in (line.split(" ", 1) for line in found):
            branch = ref.removeprefix("refs/proposing/open/")
            if not ledger.ours(remote, branch, tip):
                ignored.append(f"{branch}: its tip {tip[:12]} was not pushed by remediator")
            elif reviews is None or reviews.still_open(branch, settings.base):
                open_ones.append((tip, branch))
        # The newest first: our own commits, so their committer dates are ours too.
        parent, branch = open_ones[0] if open_ones else (
            base_commit, f"{BRANCH_PREFIX}{slug}-{execution_id[:8]}"
        )  # fmt: skip
        index = {"GIT_INDEX_FILE": str(Path(private) / "index")}
        _git(work, "read-tree", parent, env=index)
        _git(work, "rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", workdir, env=index)
        _git(work, "read-tree", f"--prefix={workdir}/", f"{applied.commit}:{workdir}", env=index)
        tree = _git(work, "write-tree", env=index)
        drifted = _tree(work, base_commit, workdir) != _tree(work, applied.commit, workdir)
        commit = None
        if drifted and tree != _git(work, "rev-parse", f"{parent}^{{tree}}"):
            commit = _git(work, "commit-tree", tree, "-p", parent, "-m", message, env=AUTHOR)
            _only_touches(work, base_commit, commit, workdir)
            ledger.record(remote, branch, commit, execution_id)
            _git(work, "push", "--quiet", "--", url, f"{commit}:refs/heads/{branch}", env=talk)
        elif drifted:  # the open proposal says it already; its request is opened on it
            _only_touches(work, base_commit, parent, workdir)
        # else: git already says the applied version
        return Proposal(branch, commit, settings.remote, settings.base, base_commit,
                        git_version, applied.commit, bool(open_ones), drifted,
                        tuple(ignored))  # fmt: skip


def _only_touches(work: Path, base_commit: str, head: str, workdir: str) -> None:
    """Refuse a proposal whose branch changes anything outside `workdir` against `base`
    (since where they meet)."""
    changed = _git(work, "diff", "--name-only", "-z", "--no-renames",
                   f"{base_commit}...{head}").split("\0")  # fmt: skip
    inside = "" if workdir == "." else f"{workdir}/"
    outside = sorted(path for path in changed if path and not path.startswith(inside))
    if outside:
        raise ProposeError(
            f"the proposal branch would change files outside {workdir}: {', '.join(outside)}"
        )


def without_credentials(url: str) -> str:
    """A remote's URL as the ledger keys it: a token in its user part is no key."""
    parts = urlsplit(url)
    if not parts.scheme or "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


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
