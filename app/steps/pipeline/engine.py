"""One CI engine a `pipeline` step can run on, as the executor drives it: start a run
for the step's spec, look at it or cancel it by its handle, link to its page."""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import quote

from app.config.sections import EngineConfig
from app.steps.base import Remote, StepStatus


class PipelineEngine(Protocol):
    poll_interval_s: float

    def __init__(self, config: EngineConfig) -> None: ...

    @staticmethod
    def target(spec: dict[str, Any]) -> str:
        """What a run of the engine's part of a step acts on, for blast-radius budgets
        (known before the run starts, whether or not the engine is configured)."""

    def launch(self, spec: dict[str, Any]) -> Remote:
        """Start a run of the engine's part of a rendered step (`spec["github"]`, say)."""

    def poll(self, handle: dict[str, Any]) -> Remote:
        """The run as it is now; `ended` once it has."""

    def cancel(self, handle: dict[str, Any], status: StepStatus) -> Remote:
        """Ask the engine to stop the run; it ended with `status` unless it succeeded."""


def segments(path: str) -> str:
    """`owner/name` with each part percent-encoded, so none steps outside its segment."""
    return "/".join(quote(part, safe="") for part in path.split("/"))
