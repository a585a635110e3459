"""Ansible steps through ansible-runner, the real `ansible-playbook`.

Each attempt gets a private data dir, removed afterwards. Rendered values go in as
extra-vars *data*, never through a shell. Ansible templates extra-vars itself (with an
unsandboxed Jinja), so every string is written tagged `!unsafe`: a payload value such as
`{{ lookup('pipe', 'id') }}` arrives as that text, never evaluated.

The playbook runs with a minimal environment (`app.executors.environment`), not the
service's: ansible-runner starts from a copy of `os.environ`, so what it inherited
unchanged is taken out again before the run. Names an incident put into `limit` are
checked against the inventory first (`app.sinks`): a run never starts on a host the
inventory does not have, or on every host.

Timeouts and cancels are enforced here, not by ansible-runner: its SIGKILL reaches only
the process group of `ansible-playbook`, while ansible-core (2.15+) runs each task in a
worker that calls setsid(), so the task and its children survived as orphans. We send
SIGTERM to every process of the run (ansible's own handler then stops its workers'
groups), and SIGKILL whatever is left after a grace period.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ansible_runner
import psutil
import yaml
from pydantic import Field

from app.errors import ExecutorError, SinkError
from app.executors.base import (
    Executor,
    StepInput,
    StepResult,
    StepSpec,
    StepStatus,
    strings_in,
    tail,
)
from app.executors.environment import step_environment, without_inherited
from app.executors.inventory import inventory_names
from app.runbooks.duration import Duration
from app.runbooks.paths import inside
from app.runbooks.templating import render_limit, render_value
from app.sinks import check_limit_names

if TYPE_CHECKING:
    from app.config import Settings
    from app.store.db import Database


class AnsibleStep(StepSpec):
    """`ansible:` in a runbook. A payload may fill `extra_vars` (as data, tagged
    `!unsafe`) and `limit` (inventory names only, each checked against the inventory)."""

    playbook: str = Field(min_length=1, description="Relative to the playbooks directory.")
    inventory: str | None = Field(default=None, description="Relative to the playbooks dir.")
    limit: str | None = Field(
        default=None,
        description="Template. Incident values may fill it only with inventory names, each "
        "of which must exist in the inventory; pattern syntax only as runbook text.",
    )
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration = 300.0


class RenderedAnsibleStep(AnsibleStep):
    """An Ansible step rendered for one incident, as stored and run: `limit_names` are
    the names incident values put into `limit`, which the executor checks against the
    inventory before anything runs."""

    limit_names: list[str] = Field(default_factory=list)


class AnsibleKind:
    name = "ansible"
    spec_model = AnsibleStep
    engines = ()

    def templates(self, spec: AnsibleStep) -> Iterator[tuple[str, str]]:
        if spec.limit:
            yield "limit", spec.limit
        yield from strings_in(spec.extra_vars, "extra_vars")

    def render(self, spec: AnsibleStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        if spec.limit:
            rendered["limit"], rendered["limit_names"] = render_limit(spec.limit, context)
        rendered["extra_vars"] = render_value(spec.extra_vars, context)
        return rendered

    def timeout_s(self, spec: AnsibleStep) -> float:
        return spec.timeout

    def variables(self, spec: AnsibleStep) -> Mapping[str, Any]:
        return spec.extra_vars

    def paths(self, spec: AnsibleStep) -> Iterator[tuple[str, str, str]]:
        yield "playbook", "playbooks_dir", spec.playbook
        if spec.inventory is not None:
            yield "inventory", "playbooks_dir", spec.inventory

    def executor(self, settings: Settings, _db: Database) -> Executor:
        return AnsibleExecutor(settings.playbooks_dir, settings.step_env)


RUN_MARKER = "REMEDIATOR_ANSIBLE_RUN"
_STATUS: dict[str, StepStatus] = {
    "successful": "succeeded",
    "failed": "failed",
    "timeout": "timed_out",
    "canceled": "cancelled",
}


def _tool_path() -> str:
    """PATH with this interpreter's bin directory first, so the ansible-core installed
    beside remediator is the one that runs even when its venv is not activated."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


class AnsibleExecutor:
    kind = "ansible"

    def __init__(self, playbooks_dir: Path, step_env: list[str] | None = None) -> None:
        self.playbooks_dir = playbooks_dir.resolve()
        self.path = _tool_path()
        self.step_env = list(step_env or [])
        if shutil.which("ansible-playbook", path=self.path) is None:
            raise ExecutorError("ansible-playbook is not installed (pip install ansible-core)")

    def _environment(self, **own: str) -> dict[str, str]:
        return step_environment(self.step_env, PATH=self.path, **own)

    def _check_limit(self, spec: RenderedAnsibleStep, inventory: Path | None) -> None:
        if spec.limit_names:
            known = inventory_names(inventory, env=self._environment())
            shown = spec.inventory or "(Ansible's default)"
            check_limit_names(spec.limit_names, known, shown)

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        deadline = time.monotonic() + step.timeout_s
        stopped: list[StepStatus] = []
        spec = RenderedAnsibleStep.model_validate(step.spec)
        started = datetime.now(UTC)
        playbook = inside(self.playbooks_dir, spec.playbook)
        inventory = inside(self.playbooks_dir, spec.inventory) if spec.inventory else None
        if playbook is None or (spec.inventory and inventory is None):
            return StepResult(
                "failed", None, "", started, datetime.now(UTC),
                error="playbook or inventory path leaves the playbooks directory",
            )  # fmt: skip
        try:
            self._check_limit(spec, inventory)
        except SinkError as exc:
            return StepResult("failed", None, "", started, datetime.now(UTC), error=str(exc))
        with tempfile.TemporaryDirectory(prefix="remediator-ansible-") as private_dir:

            def should_stop() -> bool:
                if not stopped and (cancelled() or time.monotonic() > deadline):
                    stopped.append("cancelled" if cancelled() else "timed_out")
                    terminate_run(private_dir)
                return bool(stopped)

            extravars = Path(private_dir) / "extravars.yml"
            extravars.write_text(unsafe_yaml(spec.extra_vars), encoding="utf-8")
            envvars = self._environment(
                **{
                    RUN_MARKER: private_dir,
                    "ANSIBLE_NOCOLOR": "1",
                    "ANSIBLE_RETRY_FILES_ENABLED": "0",
                    "ANSIBLE_LOCALHOST_WARNING": "0",
                    "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
                }
            )
            try:
                config = ansible_runner.RunnerConfig(
                    private_data_dir=private_dir,
                    project_dir=str(self.playbooks_dir),
                    playbook=str(playbook),
                    inventory=str(inventory) if inventory else None,
                    limit=spec.limit or None,
                    cmdline=shlex.join(["--extra-vars", f"@{extravars}"]),
                    quiet=True,
                    envvars=envvars,
                    # How often the runner looks at the clock and the cancel flag.
                    settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
                )
                config.prepare()
                config.env = without_inherited(config.env, envvars)
                runner = ansible_runner.Runner(config, cancel_callback=should_stop)
                runner.run()
                output = _read(Path(private_dir) / "artifacts" / runner.config.ident / "stdout")
                hosts = len((runner.stats or {}).get("processed", {}))
            except Exception as exc:  # ansible-runner raises many unrelated types
                raise ExecutorError(f"ansible-runner could not run the playbook: {exc}") from exc
        status = stopped[0] if stopped else _STATUS.get(runner.status, "failed")
        error = {
            "timed_out": f"playbook did not finish within {step.timeout_s:g}s and was stopped",
            "cancelled": "cancelled while running",
            "failed": f"ansible-playbook exited with {runner.rc}",
        }.get(status)
        if status == "succeeded" and hosts == 0:
            # A remediation that touched no host has not remediated anything.
            status, error = "failed", "the playbook matched no hosts (check inventory and limit)"
        return StepResult(status, runner.rc, tail(output), started, datetime.now(UTC), error=error)

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        rendered = RenderedAnsibleStep.model_validate(spec)
        playbook = inside(self.playbooks_dir, rendered.playbook)
        shown: dict[str, Any] = {"playbook_path": str(playbook) if playbook else None}
        inventory = inside(self.playbooks_dir, rendered.inventory) if rendered.inventory else None
        try:
            self._check_limit(rendered, inventory)
        except (SinkError, ExecutorError) as exc:
            shown["error"] = str(exc)
        return shown


class _UnsafeDumper(yaml.SafeDumper):
    """Dumps every string value as `!unsafe`, keys as plain names."""


def _unsafe_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("!unsafe", value)


def _plain_keys(dumper: yaml.SafeDumper, value: dict[Any, Any]) -> yaml.Node:
    pairs = [(dumper.represent_str(str(k)), dumper.represent_data(v)) for k, v in value.items()]
    return yaml.MappingNode("tag:yaml.org,2002:map", pairs)


_UnsafeDumper.add_representer(str, _unsafe_str)
_UnsafeDumper.add_representer(dict, _plain_keys)


def unsafe_yaml(extra_vars: dict[str, Any]) -> str:
    return yaml.dump(extra_vars, Dumper=_UnsafeDumper, allow_unicode=True)


def terminate_run(marker: str, grace_s: float = 5.0) -> None:
    """Stop every process of one run: all that inherited its RUN_MARKER environment value
    (ansible-playbook, its setsid workers, their modules' children), and their children."""
    own = [
        proc
        for proc in psutil.process_iter(["environ"])
        if (proc.info["environ"] or {}).get(RUN_MARKER) == marker
    ]
    family: dict[int, psutil.Process] = {}
    for proc in own:
        family[proc.pid] = proc
        try:
            family.update((child.pid, child) for child in proc.children(recursive=True))
        except psutil.Error:
            continue
    procs = list(family.values())
    for proc in procs:
        try:
            proc.send_signal(signal.SIGTERM)
        except psutil.Error:
            continue
    # Poll rather than psutil.wait_procs: waiting would reap ansible-runner's own child
    # and break its pexpect loop.
    end = time.monotonic() + grace_s
    alive = procs
    while alive and time.monotonic() < end:
        time.sleep(0.1)
        alive = [proc for proc in alive if _running(proc)]
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            continue


def _running(proc: psutil.Process) -> bool:
    try:
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
