"""Ansible steps through ansible-runner, the real `ansible-playbook`.

Each attempt gets a private data dir, removed afterwards. Rendered values go in as
extra-vars *data*, never through a shell. Ansible templates extra-vars itself (with an
unsandboxed Jinja), so every string is written tagged `!unsafe`: a payload value such as
`{{ lookup('pipe', 'id') }}` arrives as that text, never evaluated.

The playbook runs with a minimal environment (`app.processes`), not the
service's: ansible-runner starts from a copy of `os.environ`, so what it inherited
unchanged is taken out again before the run. Names an incident put into `limit` are
checked against the inventory first (`app.fields.sinks`): a run never starts on a host the
inventory does not have, or on every host.

Timeouts and cancels are enforced here, not by ansible-runner: its SIGKILL reaches only
the process group of `ansible-playbook`, while ansible-core (2.15+) runs each task in a
worker that calls setsid(), so the task and its children survived as orphans. We send
SIGTERM to every process of the run (ansible's own handler then stops its workers'
groups), and SIGKILL whatever is left after a grace period.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ansible_runner

from app.errors import ExecutorError, SinkError
from app.fields.paths import inside
from app.fields.sinks import check_limit_names
from app.processes import RUN_MARKER, step_environment, terminate_run, without_inherited
from app.steps.ansible.inventory import inventory_listing
from app.steps.ansible.spec import RenderedAnsibleStep
from app.steps.ansible.unsafe_yaml import unsafe_yaml
from app.steps.base import (
    MaxErrors,
    StepInput,
    StepResult,
    StepStatus,
    rendered_only,
    shadowed,
    tail,
    with_outputs,
)
from app.tether import tethered

# What a playbook is given, after the service died, to stop before it is killed.
TETHER_GRACE_S = 5.0
NO_HOSTS = "the playbook matched no hosts (check inventory and limit)"
MAX_ERRORS = "max_errors"
# A play stopped by max_errors is asked to stop (SIGTERM), then killed this soon after.
MAX_ERRORS_GRACE_S = 1.0
# What counts towards a batch's max_errors: a task that failed (not ignored), a host lost.
FAILING_EVENTS = ("runner_on_failed", "runner_on_unreachable")
NOT_CHECK_SAFE = "check_mode: false (the playbook is not check-safe), so it was not run"
# A batch is many hosts by design; Ansible's default of 5 at once would serialise it.
BATCH_FORKS = 50
# A host or group name as a limit may hold it plainly; anything else is pattern syntax.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]*")


@dataclass(frozen=True)
class Played:
    """One ansible-playbook run: how it ended, and each host's line of the recap."""

    status: StepStatus
    rc: int | None
    output: str
    error: str | None
    recap: dict[str, str]  # host → ok, failed or unreachable
    events: list[dict[str, Any]]
    changed: frozenset[str] = frozenset()  # hosts a task changed (or would, in check mode)
    # Hosts that failed a task (not ignored) or were unreachable, as the play went.
    failed: frozenset[str] = frozenset()
    stopped_at_errors: bool = False  # ended early by the batch's max_errors
    # What the play set with `ansible.builtin.set_stats` (its stats event's
    # `artifact_data`, as AWX calls a job's `artifacts`).
    outputs: dict[str, Any] | None = None


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
    dry_runs = True  # check mode with diff

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
            known = inventory_listing(inventory, env=self._environment()).names
            shown = spec.inventory or "(Ansible's default)"
            check_limit_names(spec.limit_names, known, shown)

    def _paths(self, spec: RenderedAnsibleStep) -> tuple[Path, Path | None] | str:
        playbook = inside(self.playbooks_dir, spec.playbook)
        inventory = inside(self.playbooks_dir, spec.inventory) if spec.inventory else None
        if playbook is None or (spec.inventory and inventory is None):
            return "playbook or inventory path leaves the playbooks directory"
        return playbook, inventory

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        spec = RenderedAnsibleStep.model_validate(step.spec)
        started = datetime.now(UTC)
        paths = self._paths(spec)
        if isinstance(paths, str):
            return StepResult("failed", None, "", started, datetime.now(UTC), error=paths)
        try:
            self._check_limit(spec, paths[1])
        except SinkError as exc:
            return StepResult("failed", None, "", started, datetime.now(UTC), error=str(exc))
        if step.shadow and not spec.check_mode:
            return rendered_only(NOT_CHECK_SAFE)
        play = self._play(spec, *paths, spec.limit, spec.forks, step.timeout_s, cancelled,
                          check=step.shadow,
                          live=lambda event: step.said(_shown(event)))  # fmt: skip
        status, error = play.status, play.error
        if status == "succeeded" and not play.recap:
            # A remediation that touched no host has not remediated anything.
            status, error = "failed", NO_HOSTS
        ended = datetime.now(UTC)
        result = StepResult(status, play.rc, tail(play.output), started, ended, error=error)
        if step.shadow:  # set_stats runs in check mode too: what the play would report
            shadow = _as_shadow(result, sorted(play.recap), sorted(play.changed))
            return with_outputs(shadow, play.outputs)
        return with_outputs(result, play.outputs)

    def targets(self, spec: dict[str, Any]) -> list[str]:
        """The hosts of the limit through the inventory (a pattern's plain names only),
        every host of the inventory without one; the names themselves when it cannot be
        read (the step then fails on it anyway)."""
        rendered = RenderedAnsibleStep.model_validate(spec)
        paths = self._paths(rendered)
        names = [n for n in _limit_parts(rendered.limit) if _PLAIN_NAME.fullmatch(n)]
        if isinstance(paths, str) or paths[1] is None:
            return names or ["localhost"]  # no inventory: Ansible's implicit localhost
        try:
            listing = inventory_listing(paths[1], env=self._environment())
        except ExecutorError:
            return names
        hosts = listing.hosts_of(names) if rendered.limit else listing.hosts
        return sorted(hosts or names or {"localhost"})

    def batch_key(self, spec: dict[str, Any]) -> str | None:
        """The step but for its limit, when the limit is plain names (hosts or groups):
        a pattern (`web:&prod`, `!db-1`, `web-*`) means nothing once joined with others."""
        names = _limit_parts(spec.get("limit"))
        if not names or not all(_PLAIN_NAME.fullmatch(name) for name in names):
            return None
        shared = {k: v for k, v in spec.items() if k not in ("limit", "limit_names")}
        return json.dumps(shared, sort_keys=True)

    def run_batch(
        self,
        steps: Sequence[StepInput],
        *,
        cancelled: Callable[[], bool],
        max_errors: MaxErrors | None = None,
    ) -> list[StepResult]:
        """One play over the hosts of all `steps`; each step's result from its own hosts'
        recap, its output from its own hosts' lines (and the play's own). Members whose
        hosts overlap (two incidents for one host) go to a second play, run after. Once
        `max_errors` hosts failed the play is stopped: members with a failed host fail,
        the others (not reached, or not finished) are refused naming it."""
        specs = [RenderedAnsibleStep.model_validate(step.spec) for step in steps]
        if len({self.batch_key(step.spec) for step in steps} - {None}) != 1:
            raise ExecutorError("a batch must be one step but for its limit")
        started = datetime.now(UTC)
        shadow = steps[0].shadow  # a batch is all shadow or all real (its members' mode)
        if shadow and not specs[0].check_mode:
            return [rendered_only(NOT_CHECK_SAFE) for _ in steps]
        results: list[StepResult | None] = [None] * len(steps)

        def ended(index: int, status: StepStatus, error: str | None, output: str = "",
                  **detail: Any) -> None:  # fmt: skip
            rc = 0 if status == "succeeded" else None
            results[index] = StepResult(
                status, rc, tail(output), started, datetime.now(UTC), error=error, detail=detail
            )

        first = specs[0]
        paths = self._paths(first)
        if isinstance(paths, str):
            return [StepResult("failed", None, "", started, started, error=paths)] * len(steps)
        listing = inventory_listing(paths[1], env=self._environment())
        hosts: dict[int, frozenset[str]] = {}
        for index, spec in enumerate(specs):
            try:
                check_limit_names(spec.limit_names, listing.names,
                                  spec.inventory or "(Ansible's default)")  # fmt: skip
            except SinkError as exc:
                ended(index, "failed", str(exc))
                continue
            hosts[index] = listing.hosts_of(_limit_parts(spec.limit))
            if not hosts[index]:
                ended(index, "failed", NO_HOSTS)
        reached = [h for h in hosts.values() if h]
        allowed = max_errors.limit(len(set().union(*reached))) if max_errors and reached else None
        failed: set[str] = set()  # across the batch's plays
        for round_ in _disjoint_rounds({i: h for i, h in hosts.items() if h}):
            everyone = sorted(set().union(*(hosts[i] for i in round_)))
            if allowed is not None and len(failed) >= allowed:
                for index in round_:
                    ended(index, "refused", _max_errors(len(failed), allowed), guard=MAX_ERRORS,
                          hosts=sorted(hosts[index]))  # fmt: skip
                continue
            left = None if allowed is None else allowed - len(failed)
            members = [(steps[i], hosts[i]) for i in round_]
            live = functools.partial(_to_members, members, frozenset(everyone))
            play = self._play(first, *paths, ",".join(everyone), first.forks or BATCH_FORKS,
                              steps[0].timeout_s, cancelled, with_events=True, check=shadow,
                              max_errors=left, live=live)  # fmt: skip
            failed |= play.failed
            for index in round_:
                own = hosts[index]
                output = _own_lines(play.events, own, frozenset(everyone)) or play.output
                shown = {"hosts": sorted(own), "batch_hosts": len(everyone),
                         "changed": sorted(own & play.changed)}  # fmt: skip
                if play.stopped_at_errors:
                    if own & play.failed:
                        error = "; ".join(f"{host}: failed" for host in sorted(own & play.failed))
                        ended(index, "failed", error, output, **shown)
                    else:
                        assert allowed is not None
                        ended(index, "refused", _max_errors(len(failed), allowed), output,
                              guard=MAX_ERRORS, **shown)  # fmt: skip
                    continue
                if play.status in ("timed_out", "cancelled") or not play.recap:
                    ended(index, play.status if play.status != "succeeded" else "failed",
                          play.error or NO_HOSTS, output, **shown)  # fmt: skip
                    continue
                bad = {
                    host: why
                    for host in sorted(own)
                    if (why := play.recap.get(host, "not reached by the play")) != "ok"
                }
                if bad:
                    error = "; ".join(f"{host}: {why}" for host, why in bad.items())
                    ended(index, "failed", error, output, **shown)
                else:
                    ended(index, "succeeded", None, output, **shown)
        done = [result for result in results if result is not None]
        if shadow:
            return [
                _as_shadow(
                    r, (r.detail or {}).get("hosts", []), (r.detail or {}).get("changed", [])
                )
                for r in done
            ]
        return done

    def _play(
        self,
        spec: RenderedAnsibleStep,
        playbook: Path,
        inventory: Path | None,
        limit: str | None,
        forks: int | None,
        timeout_s: float,
        cancelled: Callable[[], bool],
        *,
        with_events: bool = False,
        check: bool = False,
        max_errors: int | None = None,
        live: Callable[[dict[str, Any]], None] | None = None,
    ) -> Played:
        deadline = time.monotonic() + timeout_s
        stopped: list[StepStatus] = []
        failed: set[str] = set()
        at_errors: list[bool] = []
        with tempfile.TemporaryDirectory(prefix="remediator-ansible-") as private_dir:

            def should_stop() -> bool:
                if not stopped and (cancelled() or time.monotonic() > deadline):
                    stopped.append("cancelled" if cancelled() else "timed_out")
                    terminate_run(private_dir)
                return bool(stopped)

            outputs: list[dict[str, Any]] = []

            def seen(event: dict[str, Any]) -> bool:
                if live is not None and event.get("stdout"):
                    live(event)
                data = event.get("event_data") or {}
                if event.get("event") == "playbook_on_stats" and data.get("artifact_data"):
                    outputs.append(dict(data["artifact_data"]))
                if event.get("event") in FAILING_EVENTS and not data.get("ignore_errors"):
                    failed.add(str(data.get("host")))
                    if not stopped and max_errors is not None and len(failed) >= max_errors:
                        # At once, from the event itself: every second more is hosts more.
                        stopped.append("failed")
                        at_errors.append(True)
                        terminate_run(private_dir, grace_s=MAX_ERRORS_GRACE_S)
                return True  # every event is kept

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
                    limit=limit or None,
                    forks=forks,
                    cmdline=shlex.join(
                        ["--extra-vars", f"@{extravars}", *(["--check", "--diff"] if check else [])]
                    ),
                    quiet=True,
                    envvars=envvars,
                    # How often the runner looks at the clock and the cancel flag.
                    settings={"pexpect_timeout": 0.5, "suppress_ansible_output": True},
                )
                config.prepare()
                config.env = without_inherited(config.env, envvars)
                # Dies with the service, its tree too (a setsid worker, a module's child).
                config.command = tethered(config.command, "TERM", "tree", TETHER_GRACE_S)
                runner = ansible_runner.Runner(config, cancel_callback=should_stop,
                                               event_handler=seen)  # fmt: skip
                runner.run()
                output = _read(Path(private_dir) / "artifacts" / runner.config.ident / "stdout")
                events = list(runner.events) if with_events else []
                stats: dict[str, dict[str, int]] = runner.stats or {}
            except Exception as exc:  # ansible-runner raises many unrelated types
                raise ExecutorError(f"ansible-runner could not run the playbook: {exc}") from exc
        status = stopped[0] if stopped else _STATUS.get(runner.status, "failed")
        error = {
            "timed_out": f"playbook did not finish within {timeout_s:g}s and was stopped",
            "cancelled": "cancelled while running",
            "failed": f"ansible-playbook exited with {runner.rc}",
        }.get(status)
        changed = frozenset(str(host) for host, n in (stats.get("changed") or {}).items() if n)
        found = outputs[-1] if outputs else None
        return Played(status, runner.rc, output, error, _recap(stats), events, changed,
                      frozenset(failed), bool(at_errors), found)  # fmt: skip

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


def _max_errors(failed: int, allowed: int) -> str:
    return (
        f"max_errors: the batched play was stopped after {failed} host(s) failed "
        f"(max_errors allows {allowed}); this execution's hosts were not reached or not finished"
    )


def _as_shadow(result: StepResult, hosts: list[str], changed: list[str]) -> StepResult:
    """A check-mode run's result as a shadow step's: which hosts would change (the diff
    is in its output), or that it would fail, and why."""
    found = {"hosts": hosts, "changed": changed} | {
        k: v for k, v in (result.detail or {}).items() if k not in ("hosts", "changed")
    }
    if result.status != "succeeded":
        return shadowed("would fail", result.error or result.status, started=result.started_at,
                        rc=result.rc, output=result.output_tail, **found)  # fmt: skip
    if changed:
        said = f"{len(changed)} host(s) would change: {', '.join(changed[:10])}"
        return shadowed("would change", said, started=result.started_at, rc=result.rc,
                        output=result.output_tail, **found)  # fmt: skip
    return shadowed("no change", f"{len(hosts)} host(s) checked, none would change",
                    started=result.started_at, rc=result.rc, output=result.output_tail,
                    **found)  # fmt: skip


def _recap(stats: dict[str, dict[str, int]]) -> dict[str, str]:
    """Each host the play reached, from its stats: failed, unreachable or ok."""
    recap = {}
    for host in stats.get("processed") or {}:
        if (stats.get("dark") or {}).get(host):
            recap[host] = "unreachable"
        elif (stats.get("failures") or {}).get(host):
            recap[host] = "failed"
        else:
            recap[host] = "ok"
    return recap


def _limit_parts(limit: str | None) -> list[str]:
    """The names of a limit, split as Ansible splits a pattern (on commas, else colons)."""
    if not limit:
        return []
    return [part.strip() for part in limit.split("," if "," in limit else ":")]


def _disjoint_rounds(hosts: dict[int, frozenset[str]]) -> list[list[int]]:
    """Members grouped into plays in which no host belongs to two of them: a host's
    result must be one member's, and two incidents for one host run one after the other
    as they would unbatched."""
    rounds: list[tuple[list[int], set[str]]] = []
    for index, own in hosts.items():
        for members, taken in rounds:
            if not own & taken:
                members.append(index)
                taken.update(own)
                break
        else:
            rounds.append(([index], set(own)))
    return [members for members, _ in rounds]


def _shown(event: dict[str, Any]) -> str:
    """An event as the play's display shows it."""
    return str(event.get("stdout") or "") + "\n"


def _to_members(
    members: Sequence[tuple[StepInput, frozenset[str]]],
    everyone: frozenset[str],
    event: dict[str, Any],
) -> None:
    """A batched play's event, live, to each member it is about: its hosts' lines and
    the play's own, as its output tail will be."""
    for step, own in members:
        if text := _own_lines([event], own, everyone):
            step.said(text + "\n")


def _own_lines(events: list[dict[str, Any]], own: frozenset[str], everyone: frozenset[str]) -> str:
    """The play's output as one member sees it: its hosts' lines and the play's own
    (headers, errors), without the lines of the batch's other hosts."""
    others = everyone - own
    lines: list[str] = []
    for event in events:
        text = event.get("stdout") or ""
        host = (event.get("event_data") or {}).get("host")
        if not text or (host is not None and host not in own):
            continue
        lines.extend(
            line for line in text.splitlines() if line.split(" :", 1)[0].strip() not in others
        )
    return "\n".join(lines)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
