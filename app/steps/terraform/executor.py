"""Terraform steps: revert a workdir to a known-good version through plan → guard → apply.

The terraform CLI is run directly rather than through python-terraform: that library runs
each command with `communicate()` and no timeout, cannot send SIGINT (the only signal
after which terraform releases its state lock and writes state), and builds flags for
Terraform 0.12. `interruptible.run_interruptible` gives all three.

One attempt:
1. `revert_to` is resolved to a commit (`git_versions`), and the terraform directory as
   of that commit is exported to a private temporary directory.
2. `terraform init` there. The configuration's own backend is used, so a remote backend
   is the team's real state. For the local backend (none declared, or `local`) an
   override file points it at the live workdir's state file, so the revert acts on the
   real state and takes the real lock, never on a copy.
3. `plan -out`, then `show -json` of that plan: the guard refuses (`refused`) a plan that
   destroys or replaces more than `max_destroy`; a plan with no changes succeeds as
   "no changes"; a `var` the configuration does not declare fails the step.
4. `apply` of exactly that plan file.

Runbook `var` values go in a JSON var file (mode 0600) in the private directory: never
through a shell, typed exactly as rendered (a list stays a list, with no re-parsing as
HCL), and out of the process list, where `-var` arguments would show secrets to anyone
on the host who can run `ps`.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.errors import VersionError
from app.gitops.proposer import ProposalWatch, RememberedPushes, RevertProposer
from app.gitops.versions import GitVersions, LastGoodLookup, Version
from app.processes import Finished, run_interruptible, step_environment
from app.steps.base import (
    ShadowOutcome,
    StepInput,
    StepResult,
    StepStatus,
    shadowed,
    tail,
    with_outputs,
)
from app.steps.terraform.plan import refusal, summarise
from app.steps.terraform.spec import TerraformStep

BACKEND_OVERRIDE = "zz_remediator_backend_override.tf.json"
# How often an executor without a watch (built outside a service) is asked: it has nothing.
UNWATCHED_S = 3600.0
INTERRUPT_GRACE_S = 30.0


class StepEnded(Exception):
    """The attempt is over before its apply (a command failed, was stopped, or refused)."""

    def __init__(self, status: StepStatus, error: str) -> None:
        super().__init__(error)
        self.status, self.error = status, error


class TerraformExecutor:
    kind = "terraform"
    dry_runs = True  # plan and guard, never apply

    def __init__(
        self,
        terraform_dir: Path,
        last_good: LastGoodLookup,
        *,
        binary: str = "terraform",
        interrupt_grace_s: float = INTERRUPT_GRACE_S,
        step_env: list[str] | None = None,
        proposer: RevertProposer | None = None,
        watch: ProposalWatch | None = None,
    ) -> None:
        self.terraform_dir = terraform_dir.resolve()
        # Terraform's own settings pass through (TF_LOG, a plugin cache, TF_TOKEN_* for a
        # registry) only when the config lists them; never the service's secrets.
        self.environment = step_environment(
            step_env or [], TF_IN_AUTOMATION="1", TF_INPUT="0", CHECKPOINT_DISABLE="1"
        )
        # Without one (built outside a service), a revert is pushed and nothing opened.
        self.proposer = proposer or RevertProposer(
            GitVersions(terraform_dir), None, "", None, {}, RememberedPushes()
        )
        self.versions = self.proposer.versions
        # Reverts proposed in git, looked after until git says what the state holds.
        self.watch = watch
        self.look_after_interval_s = watch.interval_s if watch is not None else UNWATCHED_S
        self.last_good = last_good
        self.binary = binary
        self.interrupt_grace_s = interrupt_grace_s

    def look_after(self) -> None:
        if self.watch is not None:
            self.watch.look_after()

    def target(self, spec: TerraformStep) -> tuple[Path, Version]:
        workdir = self.versions.workdir(spec.workdir)
        return workdir, self.versions.resolve(workdir, spec.revert_to, self.last_good)

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [f"workdir:{spec['workdir']}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        try:
            _, version = self.target(TerraformStep.model_validate(spec))
        except VersionError as exc:
            return {"version_error": str(exc)}
        return {"version": version.as_dict()}

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        started = datetime.now(UTC)
        spec = TerraformStep.model_validate(step.spec)
        attempt = _Attempt(self, spec, time.monotonic() + step.timeout_s, cancelled,
                           step.execution_id, shadow=step.shadow, live=step.said)  # fmt: skip
        try:
            status, error = attempt.run()
        except StepEnded as ended:
            status, error = ended.status, ended.error
        except VersionError as exc:
            status, error = "failed", str(exc)
        if step.shadow:
            return with_outputs(_as_shadow(attempt, status, error, started), attempt.outputs)
        result = StepResult(
            status,
            attempt.rc,
            tail(attempt.transcript),
            started,
            datetime.now(UTC),
            error=error,
            detail=attempt.detail or None,
            attention=attempt.attention,
        )
        return with_outputs(result, attempt.outputs)


def _as_shadow(
    attempt: _Attempt, status: StepStatus, error: str | None, started: datetime
) -> StepResult:
    """A shadow step's plan: what the revert would change, or that the guard would refuse
    it, or that it would fail (and why)."""
    found = dict(attempt.detail)
    found.pop("summary", None)
    plan = found.get("plan") or {}
    revert = attempt.detail.get("summary", "revert").split("; plan:")[0]
    said = f"{revert}; plan: {plan.get('text', 'none')}"
    if status == "refused":
        outcome: ShadowOutcome = "would be refused"
        said = f"{revert}: {error}"
    elif status != "succeeded":
        outcome, said = "would fail", f"{revert}: {error}"
    else:
        outcome = "no change" if plan.get("text") == "no changes" else "would change"
    return shadowed(outcome, said, started=started, rc=attempt.rc, output=attempt.transcript,
                    **found)  # fmt: skip


class _Attempt:
    """One attempt's commands, their transcript, and what it learnt on the way."""

    def __init__(
        self,
        executor: TerraformExecutor,
        spec: TerraformStep,
        deadline: float,
        cancelled: Callable[[], bool],
        execution_id: str,
        *,
        shadow: bool = False,
        live: Callable[[str], None] | None = None,
    ) -> None:
        self.executor, self.spec = executor, spec
        self.live = live
        # Init and plan only, the guard evaluated: never apply, never propose, and the
        # state not locked (a plan without the lock reads it; a real apply may run).
        self.shadow = shadow
        self.execution_id = execution_id
        self.deadline, self.cancelled = deadline, cancelled
        self.transcript = ""
        self.rc: int | None = None
        self.detail: dict[str, Any] = {}
        self.attention: str | None = None
        # The workdir's outputs after the apply (planned ones in a shadow).
        self.outputs: dict[str, Any] | None = None
        self.binary = executor.binary
        self.cwd = executor.terraform_dir

    def run(self) -> tuple[StepStatus, str | None]:
        workdir, version = self.executor.target(self.spec)
        self.detail["workdir"] = self.spec.workdir
        self.detail["version"] = version.as_dict()
        target = (
            f"{self.spec.workdir} to {version.commit[:12]} {version.subject!r} "
            f"({version.chosen_by})"
        )
        self.detail["summary"] = f"revert {target}"
        binary = shutil.which(self.binary)
        if binary is None:
            raise StepEnded("failed", f"{self.binary} is not installed (on PATH)")
        self.binary = binary
        with tempfile.TemporaryDirectory(prefix="remediator-terraform-") as private:
            tree = self.executor.versions.export(version.commit, Path(private) / "config")
            copy = tree / workdir.relative_to(self.executor.terraform_dir)
            self.cwd = copy
            varfile = Path(private) / "remediator.tfvars.json"
            varfile.touch(mode=0o600)
            varfile.write_text(json.dumps(self.spec.var), encoding="utf-8")
            self._init(copy, workdir)
            lock = "-lock=false" if self.shadow else f"-lock-timeout={self.spec.lock_timeout:g}s"
            plan_file = str(Path(private) / "revert.tfplan")
            self._terraform("plan", "-input=false", lock, f"-var-file={varfile}", "-out", plan_file)
            plan = json.loads(self._terraform("show", "-json", plan_file, machine=True))
            self._check_variables(plan)
            summary = summarise(plan)
            self.detail["plan"] = {**summary.as_dict(), "text": summary.text()}
            self.detail["summary"] = f"revert {target}; plan: {summary.text()}"
            why = refusal(summary, self.spec.max_destroy)
            if why is not None:
                self.detail["guard"] = "max_destroy"
                return "refused", why
            if self.shadow:
                self.outputs = _outputs((plan.get("planned_values") or {}).get("outputs"))
                return "succeeded", None
            self.detail["applied"] = False
            if not summary.changes_nothing:
                self._terraform("apply", "-input=false", lock, plan_file)
                self.detail["applied"] = True
            self.outputs = _outputs(json.loads(self._terraform("output", "-json", machine=True)))
            # Also when the state already held it (an attempt retried after its apply
            # landed and the service died): git may still say otherwise.
            self._propose(workdir, version)
            return "succeeded", None

    def _propose(self, workdir: Path, version: Version) -> None:
        """The applied revert, proposed in git; a failure leaves the revert succeeded and
        asks a human to bring git in line (`attention`)."""
        settings, proposer = self.spec.propose, self.executor.proposer
        if settings is None:
            return
        plan = str(self.detail.get("plan", {}).get("text", ""))
        proposed = proposer.propose(
            settings, self.spec.workdir, workdir, version, self.execution_id, plan
        )
        self.detail["proposal"] = proposed.detail
        self.attention = proposed.attention
        if proposed.summary:
            self.detail["summary"] += f"; {proposed.summary}"

    def _init(self, copy: Path, live: Path) -> None:
        self._terraform("init", "-input=false")
        backend = _backend(copy)
        if backend is not None and backend.get("type") != "local":
            return  # a remote backend: the configuration already names the real state
        path = Path(str((backend or {}).get("config", {}).get("path") or "terraform.tfstate"))
        state = path if path.is_absolute() else live / path
        override = {"terraform": {"backend": {"local": {"path": str(state)}}}}
        (copy / BACKEND_OVERRIDE).write_text(json.dumps(override), encoding="utf-8")
        self._terraform("init", "-input=false", "-reconfigure")

    def _check_variables(self, plan: dict[str, Any]) -> None:
        declared = set(plan.get("variables") or {})
        undeclared = sorted(set(self.spec.var) - declared)
        if undeclared:
            raise StepEnded(
                "failed",
                f"var {undeclared} not declared by {self.spec.workdir} at "
                f"{self.detail['version']['commit'][:12]}",
            )

    def _terraform(self, command: str, *args: str, machine: bool = False) -> str:
        """Run one terraform command; answers its output. `machine`: the output is read
        by us (JSON), so it stays out of the transcript and stderr stays out of it."""
        argv = [self.binary, command, "-no-color", *args]
        if not machine and self.live is not None:
            self.live(f"$ terraform {command} {' '.join(args)}\n")
        finished = run_interruptible(
            argv,
            cwd=self.cwd,
            env=self.executor.environment,
            deadline=self.deadline,
            cancelled=self.cancelled,
            grace_s=self.executor.interrupt_grace_s,
            stderr_apart=machine,
            live=None if machine else self.live,
        )
        self.rc = finished.rc
        if not machine or finished.rc != 0:
            shown = finished.stderr if machine else finished.output
            self.transcript += f"$ terraform {command} {' '.join(args)}\n{shown}\n"
        if finished.stopped is not None:
            raise StepEnded(finished.stopped, _stopped_error(command, finished, self.spec))
        if finished.rc != 0:
            raise StepEnded("failed", _failure(command, finished, self.spec))
        return finished.output


def _outputs(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """Terraform's outputs by name, a `sensitive` one masked (`terraform output -json` and
    a plan show sensitive values in clear); a value a plan does not know yet left out."""
    if not found:
        return None
    return {
        name: "***" if entry.get("sensitive") else entry["value"]
        for name, entry in found.items()
        if isinstance(entry, dict) and "value" in entry
    }


def _backend(copy: Path) -> dict[str, Any] | None:
    """The backend `init` configured, from its cache; None when none is declared."""
    try:
        cached = json.loads((copy / ".terraform" / "terraform.tfstate").read_text())
    except (OSError, ValueError):
        return None
    backend = cached.get("backend")
    return backend if isinstance(backend, dict) else None


def _stopped_error(command: str, finished: Finished, spec: TerraformStep) -> str:
    how = "killed after ignoring SIGINT" if finished.killed else "interrupted with SIGINT"
    if finished.stopped == "cancelled":
        return f"cancelled during terraform {command} ({how})"
    return f"terraform {command} did not finish within {spec.timeout:g}s ({how})"


LOCK_FIELDS = ("ID", "Path", "Operation", "Who", "Created")


def _failure(command: str, finished: Finished, spec: TerraformStep) -> str:
    if "Error acquiring the state lock" in finished.output:
        info = {
            name: match.group(1).strip()
            for name in LOCK_FIELDS
            if (match := re.search(rf"^\s*{name}:\s*(.*)$", finished.output, re.MULTILINE))
        }
        return (
            f"the state is locked by {info.get('Who', 'someone')} "
            f"({info.get('Operation', 'unknown operation')} since {info.get('Created', '?')}, "
            f"lock ID {info.get('ID', '?')}); waited {spec.lock_timeout:g}s"
        )
    errors = [line for line in finished.output.splitlines() if line.startswith("Error: ")]
    return f"terraform {command} exited with {finished.rc}" + (
        f": {errors[0].removeprefix('Error: ')}" if errors else ""
    )
