"""The Executor protocol. A step that fails is a result, not an exception; an exception
(ExecutorError) means the machinery to run it broke."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

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


def tail(text: str, limit: int = OUTPUT_TAIL_CHARS) -> str:
    return text if len(text) <= limit else "…" + text[-limit:]
