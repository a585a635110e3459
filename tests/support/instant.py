"""`instant:`, a step kind for tests in which Ansible is not the subject (replicas,
guards, approvals, escalation, metrics): what the test playbooks `append.yml` and
`write.yml` do, done by the service in its own thread, in milliseconds instead of an
`ansible-playbook` start (about 1.5 s of CPU on the 2-core machine). It goes through the
same extension point as every kind (the registry), so the rest of the service runs as
it does for Ansible; every Ansible behaviour keeps its real `ansible-playbook` tests.

In-process tests add it with the `instant_kind` fixture; a `remediator serve` has it
when started with `start_server(..., instant=True)` (this module as its entry point).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from app.config.settings import Settings
from app.fields.duration import Duration
from app.fields.templating import render_value
from app.gitops.records import Records
from app.steps.base import (
    KindDefaults,
    StepInput,
    StepResult,
    StepSpec,
    shadowed,
    strings_in,
    with_outputs,
)


class InstantStep(StepSpec):
    """Append `line` to `dest` (after `pause` seconds, and once the file `gate` exists),
    or with `values`, write them to `dest` as JSON; `fail`: fail instead. `outputs`: what
    it says it found (as a play's set_stats). A payload may fill `dest`, `values` and
    `outputs`: test code, on files the test owns."""

    dest: str
    line: str = "run"
    values: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    pause: Duration = 0.0
    gate: str | None = None
    fail: bool = False
    timeout: Duration = 60.0


class InstantExecutor:
    kind = "instant"
    dry_runs = True

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        started = datetime.now(UTC)
        spec = InstantStep.model_validate(step.spec)
        deadline = time.monotonic() + step.timeout_s
        until = time.monotonic() + spec.pause
        step.said(f"{spec.line} starting\n")
        while time.monotonic() < until or (spec.gate and not Path(spec.gate).exists()):
            if cancelled():
                return StepResult("cancelled", None, "", started, datetime.now(UTC),
                                  error="cancelled")  # fmt: skip
            if time.monotonic() > deadline:
                return StepResult("timed_out", None, "", started, datetime.now(UTC),
                                  error=f"timed out after {step.timeout_s:g}s")  # fmt: skip
            time.sleep(0.02)
        if step.shadow:
            return shadowed("would change", f"would write {spec.dest}", started=started)
        if spec.fail:
            failed = StepResult("failed", 1, "failing on purpose", started, datetime.now(UTC),
                                error="failing on purpose")  # fmt: skip
            return with_outputs(failed, spec.outputs)
        if spec.values is not None:
            Path(spec.dest).write_text(json.dumps(spec.values))
        else:
            with Path(spec.dest).open("a") as out:
                out.write(spec.line + "\n")
        done = StepResult("succeeded", 0, f"wrote {spec.dest}", started, datetime.now(UTC),
                          detail={"summary": f"wrote {Path(spec.dest).name}"})  # fmt: skip
        return with_outputs(done, spec.outputs)

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {"would_write": spec["dest"]}

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [f"file:{spec['dest']}"]


class InstantKind(KindDefaults):
    name = "instant"
    spec_model = InstantStep

    def templates(self, spec: InstantStep) -> Iterator[tuple[str, str]]:
        yield "dest", spec.dest
        yield from strings_in(spec.values or {}, "values")
        yield from strings_in(spec.outputs or {}, "outputs")

    def render(self, spec: InstantStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json")
        rendered["dest"] = render_value(spec.dest, context)
        rendered["values"] = render_value(spec.values, context)
        rendered["outputs"] = render_value(spec.outputs, context)
        return rendered

    def variables(self, spec: InstantStep) -> Mapping[str, Any]:
        return spec.values or {}

    def executor(self, settings: Settings, records: Records) -> InstantExecutor:
        return InstantExecutor()


def instant_step(dest: str | Path, **options: Any) -> dict[str, Any]:
    """A runbook step of this kind (see InstantStep for the options)."""
    return {"instant": {"dest": str(dest), **options}}


if __name__ == "__main__":  # `python -m tests.support.instant serve ...`: the CLI with it
    from app.cli import main
    from app.steps.registry import KINDS

    KINDS["instant"] = InstantKind()
    sys.exit(main())
