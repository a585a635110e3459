"""Runs `pipeline` steps: triggers a CI run (the team's "rollback pipeline") on the
engine the step names and follows it to its conclusion, by handle, from any replica."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.config.sections import EngineConfig
from app.errors import ExecutorError
from app.steps.base import Remote, StepInput, StepStatus
from app.steps.pipeline.engine import PipelineEngine
from app.steps.pipeline.github import GitHubActions
from app.steps.pipeline.gitlab import GitLabCI

# The engines a step may name, by its key under `pipeline:` and `engines:`. Adding one:
# its module and a line here (and its key on `PipelineStep`).
ENGINES: dict[str, type[PipelineEngine]] = {"github": GitHubActions, "gitlab": GitLabCI}


class PipelineExecutor:
    kind = "pipeline"

    def __init__(self, configs: Mapping[str, EngineConfig]) -> None:
        self.engines = {name: ENGINES[name](config) for name, config in configs.items()}
        self.poll_interval_s = min(engine.poll_interval_s for engine in self.engines.values())

    def _engine(self, name: str) -> PipelineEngine:
        engine = self.engines.get(name)
        if engine is None:
            raise ExecutorError(f"engines.{name} is not configured")
        return engine

    @staticmethod
    def _named(spec: dict[str, Any]) -> str:
        """The engine a rendered step names (the spec holds exactly one)."""
        return next(name for name in ENGINES if name in spec)

    def targets(self, spec: dict[str, Any]) -> list[str]:
        name = self._named(spec)
        return [ENGINES[name].target(spec[name])]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        name = self._named(spec)
        return {"engine": name, **spec[name]}

    def launch(self, step: StepInput) -> Remote:
        name = self._named(step.spec)
        return self._engine(name).launch(step.spec[name])

    def poll(self, _step: StepInput, handle: dict[str, Any]) -> Remote:
        return self._engine(handle["engine"]).poll(handle)

    def cancel(self, _step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        return self._engine(handle["engine"]).cancel(handle, status)
