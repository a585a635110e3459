"""GitLab CI (REST v4).

`POST /api/v4/projects/{id}/pipeline` with `ref` and `variables`
([{key, value, variable_type}]) answers 201 with the pipeline; `GET .../pipelines/{id}`
`status` is created, waiting_for_resource, preparing, pending, running, manual,
scheduled, then success, failed, canceled, skipped. `POST .../pipelines/{id}/cancel`.
The trace of a failed job (`GET .../jobs/{id}/trace`) is the output tail.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from app.config.sections import EngineConfig
from app.engine_http import EngineClient, EngineError
from app.steps.base import Remote, StepResult, StepStatus, engine_result, tail
from app.steps.pipeline.engine import segments

LAUNCH_WAIT_S = 20.0
RUNNING = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "manual", "scheduled"}
)
ENDED: dict[str, StepStatus] = {"success": "succeeded", "canceled": "cancelled"}


class GitLabCI:
    def __init__(self, config: EngineConfig) -> None:
        self.api = EngineClient("GitLab", config, auth=lambda t: {"private-token": t})
        self.poll_interval_s = config.poll_interval_s

    @staticmethod
    def target(spec: dict[str, Any]) -> str:
        return f"gitlab:{spec['project']}@{spec['ref']}"

    def launch(self, spec: dict[str, Any]) -> Remote:
        project = quote(spec["project"], safe="")
        variables = [{"key": k, "value": v, "variable_type": "env_var"}
                     for k, v in (spec.get("variables") or {}).items()]  # fmt: skip
        answer = self.api.post(
            f"/api/v4/projects/{project}/pipeline",
            {"ref": spec["ref"], "variables": variables},
            busy_wait_s=LAUNCH_WAIT_S,
        ).json()
        handle = {"engine": "gitlab", "project": spec["project"], "pipeline": int(answer["id"])}
        return Remote(handle, self._link(handle))

    def poll(self, handle: dict[str, Any]) -> Remote:
        pipeline = self._pipeline(handle)
        if pipeline.get("status") in RUNNING:
            return Remote(handle, self._link(handle))
        return Remote(handle, self._link(handle), ended=self._result(handle, pipeline, None))

    def cancel(self, handle: dict[str, Any], status: StepStatus) -> Remote:
        self.api.post(f"{self._path(handle)}/cancel")
        ended = self._result(handle, self._pipeline(handle), status)
        return Remote(handle, self._link(handle), ended=ended)

    def _path(self, handle: dict[str, Any]) -> str:
        project = quote(str(handle["project"]), safe="")
        return f"/api/v4/projects/{project}/pipelines/{handle['pipeline']}"

    def _pipeline(self, handle: dict[str, Any]) -> dict[str, Any]:
        pipeline: dict[str, Any] = self.api.get(self._path(handle)).json()
        return pipeline

    def _result(
        self, handle: dict[str, Any], pipeline: dict[str, Any], stopped: StepStatus | None
    ) -> StepResult:
        engine_status = str(pipeline.get("status"))
        status = ENDED.get(engine_status, "failed")
        if stopped is not None and engine_status != "success":
            status = stopped
        output = "" if engine_status == "success" else self._trace(handle)
        return engine_result(
            status, what=f"GitLab pipeline {handle['pipeline']}", engine_status=engine_status,
            url=self._link(handle), output=output,
        )  # fmt: skip

    def _trace(self, handle: dict[str, Any]) -> str:
        """The trace of the pipeline's last failed job: where a human looks first."""
        project = quote(str(handle["project"]), safe="")
        try:
            jobs = self.api.get(f"{self._path(handle)}/jobs").json()
            failed = [j for j in jobs if j.get("status") == "failed"]
            if not failed:
                return "\n".join(f"job {j.get('name')}: {j.get('status')}" for j in jobs)
            trace = self.api.get(f"/api/v4/projects/{project}/jobs/{failed[-1]['id']}/trace").text
        except EngineError as exc:
            return f"(trace not available: {exc})"
        return tail(f"job {failed[-1].get('name')} (failed):\n{trace}")

    def _link(self, handle: dict[str, Any]) -> str:
        """The pipeline's page, from the configured address and the handle."""
        return (
            f"{self.api.base}/{segments(str(handle['project']))}/-/pipelines/{handle['pipeline']}"
        )
