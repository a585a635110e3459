"""Pipeline steps: trigger a CI run (the team's "rollback pipeline") and wait for its
conclusion, on GitHub Actions or GitLab CI.

    pipeline:
      github: {repo: acme/web, workflow: rollback.yml, ref: main,
               inputs: {service: "{{ incident.service }}"}}
    pipeline:
      gitlab: {project: acme/web, ref: main, variables: {SERVICE: "{{ incident.service }}"}}

What a payload may fill: the values of `inputs` / `variables` (data, sent as JSON
strings). The repository, workflow, project and ref are runbook text: they choose the
code that runs. Each is checked against its shape at load and percent-encoded into the
path it names, so none can step outside the API call it belongs to.

GitHub (REST API 2022-11-28): `POST /repos/{owner}/{repo}/actions/workflows/{workflow}/
dispatches` with `return_run_details: true` answers 200 with `workflow_run_id` (since
2026-02); a server that does not know the field (an older GitHub Enterprise Server)
answers 422 naming it, and the dispatch is sent again without it (204), then the run is
found as the newest `workflow_dispatch` run of that workflow and branch created since.
`GET .../actions/runs/{id}`: `status` (queued, in_progress, waiting, ..., completed) and
`conclusion` (success, failure, cancelled, timed_out, ...). `POST .../runs/{id}/cancel`:
202, or 409 once it cannot be cancelled. `GET .../runs/{id}/jobs` gives each job's and
step's conclusion, which is the output kept here (logs are a zip download).

GitLab (REST v4): `POST /api/v4/projects/{id}/pipeline` with `ref` and `variables`
([{key, value, variable_type}]) answers 201 with the pipeline; `GET .../pipelines/{id}`
`status` is created, waiting_for_resource, preparing, pending, running, manual,
scheduled, then success, failed, canceled, skipped. `POST .../pipelines/{id}/cancel`.
The trace of a failed job (`GET .../jobs/{id}/trace`) is the output tail.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field, model_validator

from app.config import EngineConfig
from app.errors import ExecutorError
from app.executors.base import (
    Executor,
    Remote,
    StepInput,
    StepResult,
    StepSpec,
    StepStatus,
    engine_result,
    strings_in,
    tail,
)
from app.executors.engine_http import EngineClient, EngineError
from app.runbooks.duration import Duration
from app.runbooks.templating import render_value

if TYPE_CHECKING:
    from app.config import Settings
    from app.store.db import Database

LAUNCH_WAIT_S = 20.0
# A path segment that is a name: never `.` or `..` (no segment starts with a dot).
SEGMENT = r"[A-Za-z0-9_-][A-Za-z0-9_.-]*"
NAME = rf"^{SEGMENT}$"
# A branch or tag: no leading `-` or `.`, no `..`, nothing outside git's usual set.
REF = r"^[A-Za-z0-9_](?:[A-Za-z0-9_/-]|\.[A-Za-z0-9_/-])*$"

GITHUB_ENDED: dict[str, StepStatus] = {
    "success": "succeeded",
    "cancelled": "cancelled",
    "timed_out": "timed_out",
}
GITLAB_RUNNING = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"}
)
GITLAB_ENDED: dict[str, StepStatus] = {"success": "succeeded", "canceled": "cancelled"}


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


class PipelineKind:
    name = "pipeline"
    spec_model = PipelineStep
    engines = ("github", "gitlab")

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

    def timeout_s(self, spec: PipelineStep) -> float:
        return spec.timeout

    def variables(self, spec: PipelineStep) -> Mapping[str, Any]:
        if spec.github is not None:
            return spec.github.inputs
        return spec.gitlab.variables if spec.gitlab is not None else {}

    def paths(self, _spec: PipelineStep) -> Iterator[tuple[str, str, str]]:
        return iter(())

    def executor(self, settings: Settings, _db: Database) -> Executor | None:
        github, gitlab = settings.executors.get("github"), settings.executors.get("gitlab")
        if github is None and gitlab is None:
            return None
        return PipelineExecutor(github, gitlab)


def _strings(values: Any) -> dict[str, str]:
    """Both engines take inputs as strings; a rendered number or flag is sent as text."""
    return {str(key): _text(value) for key, value in dict(values).items()}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


class PipelineExecutor:
    kind = "pipeline"

    def __init__(self, github: EngineConfig | None, gitlab: EngineConfig | None) -> None:
        self.github = (
            EngineClient(
                "GitHub",
                github,
                auth=lambda t: {"authorization": f"Bearer {t}"},
                headers={
                    "accept": "application/vnd.github+json",
                    "x-github-api-version": "2022-11-28",
                },
            )  # fmt: skip
            if github is not None
            else None
        )
        self.gitlab = (
            EngineClient("GitLab", gitlab, auth=lambda t: {"private-token": t})
            if gitlab is not None
            else None
        )
        intervals = [c.poll_interval_s for c in (github, gitlab) if c is not None]
        self.poll_interval_s = min(intervals)

    def targets(self, spec: dict[str, Any]) -> list[str]:
        if "github" in spec:
            return [f"github:{spec['github']['repo']}/{spec['github']['workflow']}"]
        return [f"gitlab:{spec['gitlab']['project']}@{spec['gitlab']['ref']}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        engine = "github" if "github" in spec else "gitlab"
        return {"engine": engine, **spec[engine]}

    def _client(self, engine: str) -> EngineClient:
        client = self.github if engine == "github" else self.gitlab
        if client is None:
            raise ExecutorError(f"executors.{engine} is not configured")
        return client

    # ------------------------------------------------------------------ launch

    def launch(self, step: StepInput) -> Remote:
        if "github" in step.spec:
            return self._github_launch(step.spec["github"])
        return self._gitlab_launch(step.spec["gitlab"])

    def _github_launch(self, spec: dict[str, Any]) -> Remote:
        api = self._client("github")
        repo = _segments(spec["repo"])
        path = f"/repos/{repo}/actions/workflows/{quote(spec['workflow'], safe='')}/dispatches"
        body = {"ref": spec["ref"], "inputs": spec.get("inputs") or {}}
        since = datetime.now(UTC) - timedelta(seconds=5)
        answer = api.post(path, {**body, "return_run_details": True},
                          busy_wait_s=LAUNCH_WAIT_S, ok=(422,))  # fmt: skip
        if answer.status_code == 422:
            if "return_run_details" not in answer.text:
                raise EngineError(f"GitHub answered 422 to the dispatch: {answer.text[:300]}",
                                  status=422)  # fmt: skip
            # A server from before the field: dispatch without it, then find the run.
            api.post(path, body, busy_wait_s=LAUNCH_WAIT_S)
            run_id = self._github_find_run(api, repo, spec, since)
        else:
            run_id = int(answer.json()["workflow_run_id"])
        handle = {"engine": "github", "repo": spec["repo"], "run": run_id}
        return Remote(handle, self._link(handle))

    def _github_find_run(
        self, api: EngineClient, repo: str, spec: dict[str, Any], since: datetime
    ) -> int:
        path = f"/repos/{repo}/actions/workflows/{quote(spec['workflow'], safe='')}/runs"
        params = {"event": "workflow_dispatch", "branch": spec["ref"],
                  "created": f">={since.strftime('%Y-%m-%dT%H:%M:%SZ')}"}  # fmt: skip
        for _ in range(20):  # a dispatched run appears within seconds
            runs = api.get(path, params=params, busy_wait_s=LAUNCH_WAIT_S).json()
            found = runs.get("workflow_runs") or []
            if found:
                return int(max(found, key=lambda r: str(r.get("created_at")))["id"])
            time.sleep(1.0)
        raise EngineError("GitHub took the dispatch but no run of it appeared within 20s")

    def _gitlab_launch(self, spec: dict[str, Any]) -> Remote:
        api = self._client("gitlab")
        project = quote(spec["project"], safe="")
        variables = [{"key": k, "value": v, "variable_type": "env_var"}
                     for k, v in (spec.get("variables") or {}).items()]  # fmt: skip
        answer = api.post(
            f"/api/v4/projects/{project}/pipeline",
            {"ref": spec["ref"], "variables": variables},
            busy_wait_s=LAUNCH_WAIT_S,
        ).json()
        handle = {"engine": "gitlab", "project": spec["project"], "pipeline": int(answer["id"])}
        return Remote(handle, self._link(handle))

    # ------------------------------------------------------------------ follow

    def poll(self, _step: StepInput, handle: dict[str, Any]) -> Remote:
        if handle["engine"] == "github":
            run = self._github_run(handle)
            if run.get("status") != "completed":
                return Remote(handle, self._link(handle))
            return Remote(handle, self._link(handle), ended=self._github_result(handle, run, None))
        pipeline = self._gitlab_pipeline(handle)
        if pipeline.get("status") in GITLAB_RUNNING:
            return Remote(handle, self._link(handle))
        ended = self._gitlab_result(handle, pipeline, None)
        return Remote(handle, self._link(handle), ended=ended)

    def cancel(self, _step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        if handle["engine"] == "github":
            api = self._client("github")
            run_path = f"/repos/{_segments(handle['repo'])}/actions/runs/{handle['run']}"
            api.post(f"{run_path}/cancel", ok=(409,))
            run = self._github_run(handle)
            ended = self._github_result(handle, run, status)
            return Remote(handle, self._link(handle), ended=ended)
        api = self._client("gitlab")
        api.post(f"{self._gitlab_path(handle)}/cancel")
        pipeline = self._gitlab_pipeline(handle)
        ended = self._gitlab_result(handle, pipeline, status)
        return Remote(handle, self._link(handle), ended=ended)

    def _github_run(self, handle: dict[str, Any]) -> dict[str, Any]:
        api = self._client("github")
        run: dict[str, Any] = api.get(
            f"/repos/{_segments(handle['repo'])}/actions/runs/{handle['run']}"
        ).json()
        return run

    def _github_result(
        self, handle: dict[str, Any], run: dict[str, Any], stopped: StepStatus | None
    ) -> StepResult:
        conclusion = str(run.get("conclusion") or run.get("status"))
        status = GITHUB_ENDED.get(conclusion, "failed")
        if stopped is not None and conclusion != "success":
            status = stopped
        return engine_result(
            status, what=f"GitHub run {handle['run']} ({run.get('name', '')})",
            engine_status=conclusion, url=self._link(handle), output=self._github_jobs(handle),
        )  # fmt: skip

    def _github_jobs(self, handle: dict[str, Any]) -> str:
        api = self._client("github")
        try:
            jobs = api.get(
                f"/repos/{_segments(handle['repo'])}/actions/runs/{handle['run']}/jobs"
            ).json()
        except EngineError as exc:
            return f"(jobs not available: {exc})"
        lines = []
        for job in jobs.get("jobs") or []:
            lines.append(f"job {job.get('name')}: {job.get('conclusion') or job.get('status')}")
            lines.extend(
                f"  step {s.get('name')}: {s.get('conclusion') or s.get('status')}"
                for s in job.get("steps") or []
            )
        return tail("\n".join(lines))

    def _link(self, handle: dict[str, Any]) -> str:
        """The run's page, built from the configured address and the handle: a link in
        an escalation never comes from an engine's answer."""
        if handle["engine"] == "github":
            web = _web(self._client("github").base)
            return f"{web}/{_segments(handle['repo'])}/actions/runs/{handle['run']}"
        web = self._client("gitlab").base
        return f"{web}/{_segments(str(handle['project']))}/-/pipelines/{handle['pipeline']}"

    def _gitlab_path(self, handle: dict[str, Any]) -> str:
        project = quote(str(handle["project"]), safe="")
        return f"/api/v4/projects/{project}/pipelines/{handle['pipeline']}"

    def _gitlab_pipeline(self, handle: dict[str, Any]) -> dict[str, Any]:
        pipeline: dict[str, Any] = self._client("gitlab").get(self._gitlab_path(handle)).json()
        return pipeline

    def _gitlab_result(
        self, handle: dict[str, Any], pipeline: dict[str, Any], stopped: StepStatus | None
    ) -> StepResult:
        engine_status = str(pipeline.get("status"))
        status = GITLAB_ENDED.get(engine_status, "failed")
        if stopped is not None and engine_status != "success":
            status = stopped
        output = "" if engine_status == "success" else self._gitlab_trace(handle)
        return engine_result(
            status, what=f"GitLab pipeline {handle['pipeline']}", engine_status=engine_status,
            url=self._link(handle), output=output,
        )  # fmt: skip

    def _gitlab_trace(self, handle: dict[str, Any]) -> str:
        """The trace of the pipeline's last failed job: where a human looks first."""
        api = self._client("gitlab")
        project = quote(str(handle["project"]), safe="")
        try:
            jobs = api.get(f"{self._gitlab_path(handle)}/jobs").json()
            failed = [j for j in jobs if j.get("status") == "failed"]
            if not failed:
                return "\n".join(f"job {j.get('name')}: {j.get('status')}" for j in jobs)
            trace = api.get(f"/api/v4/projects/{project}/jobs/{failed[-1]['id']}/trace").text
        except EngineError as exc:
            return f"(trace not available: {exc})"
        return tail(f"job {failed[-1].get('name')} (failed):\n{trace}")


def _segments(path: str) -> str:
    return "/".join(quote(part, safe="") for part in path.split("/"))


def _web(api_base: str) -> str:
    """github.com's pages for api.github.com; a GitHub Enterprise Server serves both."""
    if api_base == "https://api.github.com":
        return "https://github.com"
    return api_base.removesuffix("/api/v3")
