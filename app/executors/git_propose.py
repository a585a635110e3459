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
(`git remote get-url`), with git's usual credentials for that URL. Nothing of a payload
reaches a git argument: the workdir and the remote are runbook text, the commit comes
from `revert_to`'s resolution, the execution id is ours.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from app.errors import VersionError
from app.executors.environment import step_environment
from app.executors.git_versions import GIT_TIMEOUT_S, Version

BRANCH_PREFIX = "remediator/revert-"
# A remote's name and a branch name as runbook text may give them (git check-ref-format
# allows more; nothing here needs more).
GIT_NAME = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$"
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
) -> Proposal:
    """Push the revert of `workdir` (a path relative to `repo_root`; `name` as the step
    names it, for the branch) to `applied`."""
    git = _Git(repo_root)
    url = git.out("remote", "get-url", "--", settings.remote)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "root"
    with tempfile.TemporaryDirectory(prefix="remediator-propose-") as private:
        work = _Git(Path(private) / "repo")
        git.out("clone", "--quiet", "--no-checkout", "--shared", "--no-tags", "--",
                str(repo_root), str(work.root))  # fmt: skip
        ours = f"refs/heads/{BRANCH_PREFIX}{slug}-*"
        work.out("fetch", "--quiet", "--no-tags", "--", url,
                 f"+refs/heads/{settings.base}:refs/proposing/base",
                 f"+{ours}:refs/proposing/open/{BRANCH_PREFIX}{slug}-*")  # fmt: skip
        base_commit = work.out("rev-parse", "--verify", "refs/proposing/base^{commit}")
        git_version = work.out("rev-list", "-n", "1", base_commit, "--", workdir) or base_commit
        open_branches = work.out(
            "for-each-ref", "--sort=-committerdate", "--format=%(refname)", "refs/proposing/open/"
        ).splitlines()
        if open_branches:
            parent = work.out("rev-parse", open_branches[0])
            branch = open_branches[0].removeprefix("refs/proposing/open/")
        else:
            parent, branch = base_commit, f"{BRANCH_PREFIX}{slug}-{execution_id[:8]}"
        index = {"GIT_INDEX_FILE": str(Path(private) / "index")}
        work.out("read-tree", parent, env=index)
        work.out("rm", "-r", "-q", "--cached", "--ignore-unmatch", "--", workdir, env=index)
        work.out("read-tree", f"--prefix={workdir}/", f"{applied.commit}:{workdir}", env=index)
        tree = work.out("write-tree", env=index)
        drifted = _tree(work, base_commit, workdir) != _tree(work, applied.commit, workdir)
        commit = None
        if drifted and tree != work.out("rev-parse", f"{parent}^{{tree}}"):
            commit = work.out("commit-tree", tree, "-p", parent, "-m", message, env=AUTHOR)
            work.out("push", "--quiet", "--", url, f"{commit}:refs/heads/{branch}")
        # else: git already says the applied version, or the open proposal does
        return Proposal(branch, commit, settings.remote, settings.base, base_commit,
                        git_version, applied.commit, bool(open_branches), drifted)  # fmt: skip


def _tree(work: _Git, commit: str, path: str) -> str:
    return work.out("rev-parse", f"{commit}:{path}")


class _Git:
    def __init__(self, root: Path) -> None:
        self.root = root

    def out(self, *args: str, env: dict[str, str] | None = None) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(self.root), *args] if self.root.exists() else ["git", *args],
                capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
                env=step_environment([], GIT_TERMINAL_PROMPT="0", LC_ALL="C") | (env or {}),
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise ProposeError("git is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise ProposeError(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g}s") from exc
        if done.returncode != 0:
            # The last lines: a refused push says why there ("remote: ...", "! [remote
            # rejected] ... (pre-receive hook declined)"), before git's own summary.
            why = [line for line in done.stderr.decode(errors="replace").splitlines() if line]
            said = " | ".join(line.strip() for line in why[-4:]) or f"exit {done.returncode}"
            raise ProposeError(f"git {args[0]}: {said[:1000]}")
        return done.stdout.decode(errors="replace").strip()
