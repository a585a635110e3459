"""A step kind, whole: the StepKind protocol (what a runbook writes under the kind's key,
where a payload may go in it, which paths it names) and the Executor it builds (how it
runs). A step that fails is a result, not an exception; an exception (ExecutorError)
means the machinery to run it broke.

Adding a kind is one module holding its StepKind and Executor, and one line in
`app.steps.registry`; nothing else names a kind.

An executor is local (`run` blocks a worker thread until the step ends: a child process
on this host) or remote (`launch` starts work on an engine and answers at once with a
handle; `poll` and `cancel` follow it by that handle, from any replica, after any
restart, without a thread waiting on it).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from app.config.sections import EngineConfig
    from app.config.settings import Settings
    from app.gitops.records import Records

# `refused`: the step's own guard said no (a terraform plan that destroys too much).
StepStatus = Literal["succeeded", "failed", "timed_out", "cancelled", "refused"]
OUTPUT_TAIL_CHARS = 4000


@dataclass(frozen=True)
class StepInput:
    execution_id: str
    position: int
    attempt: int
    spec: dict[str, Any]
    timeout_s: float
    # A shadow run's step: change nothing, and say what would have changed (a dry run as
    # precise as the engine allows: `shadowed`), or only that it was rendered.
    shadow: bool = False
    # The runbook says the step is safe to repeat (`idempotent`).
    idempotent: bool = False
    # Called with the step's output as it is produced (whole lines or not), for people
    # following it live; the result's output tail is still what the step ended with.
    live: Callable[[str], None] | None = field(default=None, compare=False, repr=False)

    def said(self, text: str) -> None:
        """Output produced now, passed on to whoever follows the step live."""
        if self.live is not None and text:
            self.live(text)


@dataclass(frozen=True)
class StepResult:
    status: StepStatus
    rc: int | None
    output_tail: str
    started_at: datetime
    finished_at: datetime
    error: str | None = None
    # What the executor found out, for people and escalations (terraform: the version
    # and the plan summary); JSON-serialisable.
    detail: dict[str, Any] | None = None
    # It succeeded, but a human must still do something (a revert that applied and could
    # not be proposed in git): escalated, without failing the step.
    attention: str | None = None
    # What the step found, by name, for people (and, later, the runbook's next steps):
    # data, like a payload's values (a playbook may echo what an incident said). JSON.
    outputs: dict[str, Any] | None = None
    # False: trying it again could repeat an effect (a POST the service may have acted
    # on) or cannot change the answer (a 4xx): the runbook's retries do not.
    retry: bool = True


class Executor(Protocol):
    kind: str

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What the step would act on, for `simulate`, without changing anything."""

    def targets(self, spec: dict[str, Any]) -> list[str]:
        """What the step acts on, as the blast-radius budgets count it (hosts, a workdir,
        a workspace, a repository's workflow): from the rendered spec, changing nothing."""


@runtime_checkable
class DryRuns(Protocol):
    """An executor that honours `StepInput.shadow`: given a shadow step it changes
    nothing and answers what would have changed (`shadowed`). A shadow step of any other
    kind is never handed to its executor; it is recorded as rendered only."""

    dry_runs: bool


@runtime_checkable
class LocalExecutor(Executor, Protocol):
    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        """Run the step to its end, its timeout, or until `cancelled()` turns true."""


@runtime_checkable
class BatchExecutor(LocalExecutor, Protocol):
    """A local executor that can run the same step for many executions as one run (one
    `ansible-playbook` over all their hosts), each execution getting its own result."""

    def batch_key(self, spec: dict[str, Any]) -> str | None:
        """Steps with equal keys may share a run; None: this step always runs alone."""

    def run_batch(
        self,
        steps: Sequence[StepInput],
        *,
        cancelled: Callable[[], bool],
        max_errors: MaxErrors | None = None,
    ) -> list[StepResult]:
        """Run `steps` (equal batch keys) together, to their end, their timeout, or until
        `cancelled()` turns true, or until `max_errors` of their targets failed (the rest
        then `refused`); a result for each, in order, from its own part."""


@dataclass(frozen=True)
class Remote:
    """What an engine said of a remote step at one look. `handle` is all that following
    it needs (stored with the step, JSON); it may change as the work moves on (a run that
    was planned and is now applying). `ended` is set once the engine says it is over."""

    handle: dict[str, Any]
    url: str | None
    ended: StepResult | None = None


@runtime_checkable
class RemoteExecutor(Executor, Protocol):
    # How often a launched step is looked at; the engine's own pace, from its config.
    poll_interval_s: float

    def launch(self, step: StepInput) -> Remote:
        """Start the work; answers once the engine has it (or has refused it: `ended`).
        ExecutorError when the engine could not be asked."""

    def poll(self, step: StepInput, handle: dict[str, Any]) -> Remote:
        """Where the work is now. ExecutorError when the engine could not be asked (it
        is asked again at the next look)."""

    def cancel(self, step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        """Ask the engine to stop the work, and answer what it then reports, ended with
        `status` (timed_out or cancelled) whatever the engine says it is now."""


@runtime_checkable
class ShowsProgress(Protocol):
    """A remote executor whose engine gives a running job's output as it grows, so that
    people can follow it live: each look asks for the lines after those already shown."""

    def output_since(self, handle: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """The work's output since the last look, as far as the engine has it, and the
        handle noting where it is now shown up to (the executor's own keys); None when
        it has none to give (a workflow). ExecutorError when the engine could not be
        asked."""


@runtime_checkable
class LooksAfter(Protocol):
    """An executor with something to look after once its steps have ended (a revert
    proposed in git, until git says what the state holds). Every replica calls
    `look_after` each `look_after_interval_s`, so it must be safe on several at once."""

    look_after_interval_s: float

    def look_after(self) -> None:
        """One look; errors are logged by the caller and it is called again later."""


class StepSpec(BaseModel):
    """Base of a kind's spec: unknown keys are errors (a typo must not disable a guard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Spec = TypeVar("Spec", bound=BaseModel, contravariant=True)


class StepKind(Protocol[Spec]):
    """One kind of step. `spec_model` is the model of what a runbook writes under `name`;
    the methods take an instance of it."""

    @property
    def name(self) -> str: ...

    @property
    def spec_model(self) -> type[BaseModel]: ...

    @property
    def engines(self) -> tuple[str, ...]:
        """The `engines.<engine>` config entries the kind reads (none for a local kind)."""

    def templates(self, spec: Spec) -> Iterator[tuple[str, str]]:
        """Each template in the spec with its field (`extra_vars.host`), checked at load."""

    def render(self, spec: Spec, context: Mapping[str, Any]) -> dict[str, Any]:
        """The spec for one incident, as stored and run. The one place payload values
        enter a step: each templated field through its sink (app.fields.sinks)."""

    def timeout_s(self, spec: Spec) -> float: ...

    def variables(self, spec: Spec) -> Mapping[str, Any]:
        """The values the step passes on, by name: what `secret_vars` may name (their
        rendered values are masked wherever the name appears in the stored spec)."""

    def paths(self, spec: Spec) -> Iterator[tuple[str, str, str]]:
        """(field, the setting naming its base directory, path relative to it) for each
        path the step names: checked at load to exist and not leave that directory."""

    def executor(self, settings: Settings, records: Records) -> Executor | None:
        """What runs (and previews) steps of this kind, built once at start (`records`
        for a kind that reads or keeps what the store knows, as terraform's `last_good`);
        None when the engine it drives is not configured (its steps then fail saying so)."""


class KindDefaults:
    """What most kinds do alike, so each says only where it differs: the timeout is the
    spec's `timeout`, no paths are named, no engine is driven."""

    engines: tuple[str, ...] = ()

    def timeout_s(self, spec: Any) -> float:
        return float(spec.timeout)

    def paths(self, _spec: Any) -> Iterator[tuple[str, str, str]]:
        return iter(())

    @staticmethod
    def engine(settings: Settings, name: str) -> EngineConfig | None:
        """The `engines.<name>` connection, or None when it is not configured."""
        return settings.engines.get(name)


class MaxErrors(BaseModel):
    """How many of a batched step's hosts may fail before the play is stopped: `5`
    hosts, or `10%` of a batch's hosts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    count: int | None = None
    percent: float | None = None

    def limit(self, hosts: int) -> int:
        if self.count is not None:
            return self.count
        return max(1, int(hosts * (self.percent or 0.0) / 100.0))


def engine_result(
    status: StepStatus,
    *,
    what: str,
    engine_status: str,
    url: str | None,
    output: str = "",
    explanation: str = "",
    **found: Any,
) -> StepResult:
    """How a remote step ended, in the one form every engine's is recorded and escalated:
    `what: engine_status` as the summary and the error, the link, the engine's own word.
    Stamped now; the follower sets when the attempt began (at its launch)."""
    now = datetime.now(UTC)
    error = None
    if status != "succeeded":
        error = f"{what}: {engine_status}" + (f": {explanation}" if explanation else "")
    detail = {"summary": f"{what}: {engine_status}", "url": url, "engine_status": engine_status}
    return StepResult(status, None, output, now, now, error=error, detail=detail | found)


# What a shadow step found: it would change something, would change nothing, would fail,
# would be refused by its own guard, or could not be dry-run and was only rendered.
ShadowOutcome = Literal[
    "would change", "no change", "would fail", "would be refused", "rendered only"
]


def shadowed(
    outcome: ShadowOutcome,
    said: str,
    *,
    started: datetime,
    rc: int | None = None,
    output: str = "",
    **found: Any,
) -> StepResult:
    """How a shadow step's dry run ended, in the one form every kind records it: its
    `outcome`, and `said` (what it would have done) as the summary."""
    detail = {"summary": f"{outcome}: {said}", "shadow": {"outcome": outcome}} | found
    status: StepStatus = "failed" if outcome == "would fail" else "succeeded"
    error = said if outcome == "would fail" else None
    return StepResult(status, rc, tail(output), started, datetime.now(UTC), error=error,
                      detail=detail)  # fmt: skip


MAX_OUTPUTS_BYTES = 64 * 1024


def with_outputs(result: StepResult, outputs: dict[str, Any] | None) -> StepResult:
    """`result` carrying `outputs`, bounded: a step whose outputs are over 64 KiB (as
    JSON) fails saying so, rather than filling every later read of its execution."""
    if not outputs:
        return result
    size = len(json.dumps(outputs, default=str).encode())
    if size > MAX_OUTPUTS_BYTES:
        return replace(result, status="failed", error=(
            f"its outputs are {size / 1024:.0f} KiB, over the {MAX_OUTPUTS_BYTES // 1024} KiB a "
            "step may keep"
        ))  # fmt: skip
    return replace(result, outputs=json.loads(json.dumps(outputs, default=str)))


def chosen(configured: Mapping[str, Any], name: Any) -> str | None:
    """Which configured entry a step uses (a cluster, an endpoint): the one it names, or
    the only one when it names none; None when it names none of them."""
    if name is None and len(configured) == 1:
        [name] = configured
    return str(name) if name is not None and name in configured else None


def rendered_only(why: str) -> StepResult:
    """A shadow step its engine cannot dry-run: nothing is sent; it was rendered (its
    payload checks passed) and says so."""
    return shadowed("rendered only", why, started=datetime.now(UTC))


def refused_now(error: str, guard: str) -> StepResult:
    """Not run as asked, by the step's own guard: named like terraform's max_destroy, and
    never retried."""
    now = datetime.now(UTC)
    return StepResult("refused", None, "", now, now, error=error, detail={"guard": guard})


def strings_in(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Each string inside `value` (nested mappings and lists), with its path."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from strings_in(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from strings_in(item, f"{where}[{index}]")


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
