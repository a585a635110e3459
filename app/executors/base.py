"""A step kind, whole: the StepKind protocol (what a runbook writes under the kind's key,
where a payload may go in it, which paths it names) and the Executor it builds (how it
runs). A step that fails is a result, not an exception; an exception (ExecutorError)
means the machinery to run it broke.

Adding a kind is one module holding its StepKind and Executor, and one line in
`app.executors.kinds`; nothing else names a kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from app.config import Settings
    from app.store.db import Database

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


class Executor(Protocol):
    kind: str

    def run(self, step: StepInput, *, cancelled: Callable[[], bool]) -> StepResult:
        """Run the step to its end, its timeout, or until `cancelled()` turns true."""

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What the step would act on, for `simulate`, without changing anything."""


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

    def templates(self, spec: Spec) -> Iterator[tuple[str, str]]:
        """Each template in the spec with its field (`extra_vars.host`), checked at load."""

    def render(self, spec: Spec, context: Mapping[str, Any]) -> dict[str, Any]:
        """The spec for one incident, as stored and run. The one place payload values
        enter a step: each templated field through its sink (app.sinks)."""

    def timeout_s(self, spec: Spec) -> float: ...

    def variables(self, spec: Spec) -> Mapping[str, Any]:
        """The values the step passes on, by name: what `secret_vars` may name (their
        rendered values are masked wherever the name appears in the stored spec)."""

    def paths(self, spec: Spec) -> Iterator[tuple[str, str, str]]:
        """(field, the setting naming its base directory, path relative to it) for each
        path the step names: checked at load to exist and not leave that directory."""

    def executor(self, settings: Settings, db: Database) -> Executor:
        """What runs (and previews) steps of this kind, built once at start (`db` for a
        kind that reads what the store knows, as terraform's `last_good`)."""


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
