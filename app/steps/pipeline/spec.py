"""`pipeline:` in a runbook: a CI run on GitHub Actions or GitLab CI.

What a payload may fill: the values of `inputs` / `variables` (data, sent as JSON
strings). The repository, workflow, project and ref are runbook text: they choose the
code that runs. Each is checked against its shape at load and percent-encoded into the
path it names, so none can step outside the API call it belongs to.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from app.fields.duration import Duration
from app.steps.base import StepSpec

# A path segment that is a name: never `.` or `..` (no segment starts with a dot).
SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
NAME = rf"^{SEGMENT}$"
# A branch or tag: no leading `-` or `.`, no `..`, nothing outside git's usual set.
REF = r"^[A-Za-z0-9_](?:[A-Za-z0-9_/-]|\.[A-Za-z0-9_/-])*$"


class GitHubPipeline(StepSpec):
    repo: str = Field(pattern=rf"^{SEGMENT}/{SEGMENT}$", description="owner/name")
    workflow: str = Field(pattern=NAME, description="The workflow's file name or id.")
    ref: str = Field(pattern=REF, description="The branch or tag to run the workflow from.")
    inputs: dict[str, Any] = Field(
        default_factory=dict, description="workflow_dispatch inputs; values are templates."
    )


class GitLabPipeline(StepSpec):
    project: str = Field(
        pattern=rf"^([0-9]+|{SEGMENT}(/{SEGMENT})+)$",
        description="The project's id or its full path (group/project).",
    )
    ref: str = Field(pattern=REF, description="The branch or tag to run the pipeline for.")
    variables: dict[str, Any] = Field(
        default_factory=dict, description="Pipeline variables; values are templates."
    )


class PipelineStep(StepSpec):
    """`pipeline:` in a runbook: exactly one of `github` and `gitlab`."""

    github: GitHubPipeline | None = None
    gitlab: GitLabPipeline | None = None
    timeout: Duration = 1800.0

    @model_validator(mode="after")
    def _one_engine(self) -> PipelineStep:
        if (self.github is None) == (self.gitlab is None):
            raise ValueError("give exactly one of github and gitlab")
        return self
