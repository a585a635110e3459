"""The `pipeline` step kind: trigger a CI run (the team's "rollback pipeline") and wait
for its conclusion, on GitHub Actions or GitLab CI.

    pipeline:
      github: {repo: acme/web, workflow: rollback.yml, ref: main,
               inputs: {service: "{{ incident.service }}"}}
    pipeline:
      gitlab: {project: acme/web, ref: main, variables: {SERVICE: "{{ incident.service }}"}}

What a payload may fill: the values of `inputs` / `variables` (data, sent as strings);
see `spec`. A pipeline step has no outputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from app.fields.templating import render_value
from app.steps.base import Executor, KindDefaults, strings_in
from app.steps.pipeline.executor import ENGINES, PipelineExecutor
from app.steps.pipeline.spec import PipelineStep

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.gitops.records import Records


class PipelineKind(KindDefaults):
    name = "pipeline"
    spec_model = PipelineStep
    engines = tuple(ENGINES)

    def templates(self, spec: PipelineStep) -> Iterator[tuple[str, str]]:
        if spec.github is not None:
            yield from strings_in(spec.github.inputs, "github.inputs")
        if spec.gitlab is not None:
            yield from strings_in(spec.gitlab.variables, "gitlab.variables")

    def render(self, spec: PipelineStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json", exclude_none=True)
        if spec.github is not None:
            rendered["github"]["inputs"] = _strings(render_value(spec.github.inputs, context))
        if spec.gitlab is not None:
            rendered["gitlab"]["variables"] = _strings(render_value(spec.gitlab.variables, context))
        return rendered

    def variables(self, spec: PipelineStep) -> Mapping[str, Any]:
        if spec.github is not None:
            return spec.github.inputs
        return spec.gitlab.variables if spec.gitlab is not None else {}

    def executor(self, settings: Settings, _records: Records) -> Executor | None:
        configs = {name: c for name in ENGINES if (c := self.engine(settings, name)) is not None}
        return PipelineExecutor(configs) if configs else None


def _strings(values: Any) -> dict[str, str]:
    """Both engines take inputs as strings; a rendered number or flag is sent as text."""
    return {str(key): _text(value) for key, value in dict(values).items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
