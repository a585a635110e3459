"""Versions of a terraform workdir, kept in git: which commit a step's `revert_to` names,
and that commit's configuration exported apart from the live checkout.

The export is `git archive` of the terraform directory into a private temporary
directory, not a `git worktree`: it writes nothing into the repository (so a read-only
mount works), leaves no worktree bookkeeping behind when the service is killed, and never
touches the checkout the team applies from. The whole terraform directory is exported so
that modules referenced as `../modules/...` resolve as they do in the checkout.
"""

from __future__ import annotations

import io
import subprocess
import tarfile
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.errors import VersionError
from app.fields.paths import inside
from app.processes import step_environment

GIT_TIMEOUT_S = 60.0


def run_git(
    *args: str,
    cwd: Path | None,
    error: type[VersionError] = VersionError,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """git with a bounded time, no prompt and the minimal step environment (plus `env`);
    a failure is `error` with git's last words."""
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args] if cwd is not None else ["git", *args],
            capture_output=True, timeout=GIT_TIMEOUT_S, check=False,
            env=step_environment([], GIT_TERMINAL_PROMPT="0", LC_ALL="C") | dict(env or {}),
        )  # fmt: skip
    except FileNotFoundError as exc:
        raise error("git is not installed; terraform steps need it") from exc
    except subprocess.TimeoutExpired as exc:
        raise error(f"git {args[0]} took longer than {GIT_TIMEOUT_S:g}s") from exc
    if done.returncode != 0:
        # The last lines: a refused push says why there ("remote: ...", "! [remote
        # rejected] ... (pre-receive hook declined)"), before git's own summary.
        why = [line for line in done.stderr.decode(errors="replace").splitlines() if line]
        said = " | ".join(line.strip() for line in why[-4:]) or f"exit {done.returncode}"
        raise error(f"git {args[0]}: {said[:1000]}")
    return done.stdout


@dataclass(frozen=True)
class GoodVersion:
    """A version recorded as applied and healthy for a workdir."""

    commit: str
    recorded_by: str
    recorded_at: datetime


LastGoodLookup = Callable[[str], GoodVersion | None]


@dataclass(frozen=True)
class Version:
    commit: str
    subject: str
    committed_at: str
    chosen_by: str  # how `revert_to` led to this commit, in words

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class GitVersions:
    def __init__(self, terraform_dir: Path) -> None:
        self.terraform_dir = terraform_dir.resolve()

    def workdir(self, name: str) -> Path:
        """The live workdir `name` names, which must stay inside the terraform directory."""
        workdir = inside(self.terraform_dir, name)
        if workdir is None or not workdir.is_dir():
            raise VersionError(f"workdir {name!r} is not a directory in terraform_dir")
        return workdir

    def _git(self, *args: str, cwd: Path | None = None) -> bytes:
        return run_git(*args, cwd=cwd or self.terraform_dir)

    def _out(self, *args: str, cwd: Path | None = None) -> str:
        return self._git(*args, cwd=cwd).decode(errors="replace").strip()

    def root(self) -> Path:
        try:
            return Path(self._out("rev-parse", "--show-toplevel"))
        except VersionError as exc:
            raise VersionError(
                f"terraform_dir {self.terraform_dir} is not inside a git repository: {exc}"
            ) from exc

    def in_repo(self, workdir: Path) -> str:
        """`workdir` as a path relative to the repository root (for pathspecs)."""
        return workdir.resolve().relative_to(self.root().resolve()).as_posix() or "."

    def commit_of(self, ref: str) -> str:
        try:
            return self._out("rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}")
        except VersionError as exc:
            raise VersionError(f"{ref!r} is not a branch, tag or commit here") from exc

    def describe(self, commit: str, chosen_by: str) -> Version:
        full, subject, when = self._out("log", "-1", "--format=%H%x00%s%x00%cI", commit).split(
            "\x00"
        )
        return Version(full, subject, when, chosen_by)

    def resolve(self, workdir: Path, revert_to: str, last_good: LastGoodLookup) -> Version:
        """The commit whose configuration `revert_to` names for `workdir`."""
        root = self.root()
        relative = self.in_repo(workdir)  # pathspecs are relative to the root
        if revert_to == "previous":
            last = self._out("rev-list", "-n", "1", "HEAD", "--", relative, cwd=root)
            if not last:
                raise VersionError(f"no commit on HEAD touches {relative}")
            try:
                before = self._out("rev-parse", "--verify", f"{last}^")
            except VersionError as exc:
                raise VersionError(
                    f"{relative} has no version before {last[:12]}, the commit that added it"
                ) from exc
            version = self.describe(before, f"previous: before {last[:12]}, its last change")
        elif revert_to == "last_good":
            name = workdir.resolve().relative_to(self.terraform_dir).as_posix()
            good = last_good(name)
            if good is None:
                raise VersionError(
                    f"no version of {name} has been recorded as good yet "
                    "(POST /api/terraform/versions records one)"
                )
            version = self.describe(
                self.commit_of(good.commit),
                f"last_good: recorded by {good.recorded_by} at {good.recorded_at.isoformat()}",
            )
        else:
            ref = revert_to.removeprefix("git:")
            version = self.describe(self.commit_of(ref), f"git:{ref}")
        if not self._git("ls-tree", version.commit, "--", relative, cwd=root).strip():
            raise VersionError(f"{relative} does not exist at {version.commit[:12]}")
        return version

    def export(self, commit: str, dest: Path) -> Path:
        """Write the terraform directory as of `commit` under `dest`; answers where the
        terraform directory landed (so `answer / workdir` is the workdir's copy)."""
        subtree = self.in_repo(self.terraform_dir)
        archive = self._git("archive", "--format=tar", commit, "--", subtree, cwd=self.root())
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(dest, filter="data")
        return dest / subtree
