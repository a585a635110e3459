"""GitHub Actions (REST API 2022-11-28).

`POST /repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` with
`return_run_details: true` answers 200 with `workflow_run_id` (since 2026-02); a server
that does not know the field (an older GitHub Enterprise Server) answers 422 naming it,
and the dispatch is sent again without it (204), then the run is found as the newest
`workflow_dispatch` run of that workflow and branch created since.
`GET .../actions/runs/{id}`: `status` (queued, in_progress, waiting, ..., completed) and
`conclusion` (success, failure, cancelled, timed_out, ...). `POST .../runs/{id}/cancel`:
202, or 409 once it cannot be cancelled. `GET .../runs/{id}/jobs` gives each job's and
step's conclusion, which is the output kept here (logs are a zip download).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from app.config.sections import EngineConfig
from app.engine_http import EngineClient, EngineError
from app.steps.base import Remote, StepResult, StepStatus, engine_result, tail
from app.steps.pipeline.engine import segments

LAUNCH_WAIT_S = 20.0
API = "https://api.github.com"
ENDED: dict[str, StepStatus] = {
    "success": "succeeded",
    "cancelled": "cancelled",
    "timed_out": "timed_out",
}


class GitHubActions:
    def __init__(self, config: EngineConfig) -> None:
        self.api = EngineClient(
            "GitHub",
            config,
            auth=lambda t: {"authorization": f"Bearer {t}"},
            headers={"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"},
        )
        self.poll_interval_s = config.poll_interval_s

    @staticmethod
    def target(spec: dict[str, Any]) -> str:
        return f"github:{spec['repo']}/{spec['workflow']}"

    def launch(self, spec: dict[str, Any]) -> Remote:
        repo = segments(spec["repo"])
        path = f"/repos/{repo}/actions/workflows/{quote(spec['workflow'], safe='')}/dispatches"
        body = {"ref": spec["ref"], "inputs": spec.get("inputs") or {}}
        since = datetime.now(UTC) - timedelta(seconds=5)
        answer = self.api.post(path, {**body, "return_run_details": True},
                               busy_wait_s=LAUNCH_WAIT_S, ok=(422,))  # fmt: skip
        if answer.status_code == 422:
            if "return_run_details" not in answer.text:
                raise EngineError(f"GitHub answered 422 to the dispatch: {answer.text[:300]}",
                                  status=422)  # fmt: skip
            # A server from before the field: dispatch without it, then find the run.
            self.api.post(path, body, busy_wait_s=LAUNCH_WAIT_S)
            run_id = self._find_run(repo, spec, since)
        else:
            run_id = int(answer.json()["workflow_run_id"])
        handle = {"engine": "github", "repo": spec["repo"], "run": run_id}
        return Remote(handle, self._link(handle))

    def _find_run(self, repo: str, spec: dict[str, Any], since: datetime) -> int:
        path = f"/repos/{repo}/actions/workflows/{quote(spec['workflow'], safe='')}/runs"
        params = {"event": "workflow_dispatch", "branch": spec["ref"],
                  "created": f">={since.strftime('%Y-%m-%dT%H:%M:%SZ')}"}  # fmt: skip
        for _ in range(20):  # a dispatched run appears within seconds
            runs = self.api.get(path, params=params, busy_wait_s=LAUNCH_WAIT_S).json()
            found = runs.get("workflow_runs") or []
            if found:
                return int(max(found, key=lambda r: str(r.get("created_at")))["id"])
            time.sleep(1.0)
        raise EngineError("GitHub took the dispatch but no run of it appeared within 20s")

    def poll(self, handle: dict[str, Any]) -> Remote:
        run = self._run(handle)
        if run.get("status") != "completed":
            return Remote(handle, self._link(handle))
        return Remote(handle, self._link(handle), ended=self._result(handle, run, None))

    def cancel(self, handle: dict[str, Any], status: StepStatus) -> Remote:
        self.api.post(f"{self._run_path(handle)}/cancel", ok=(409,))
        ended = self._result(handle, self._run(handle), status)
        return Remote(handle, self._link(handle), ended=ended)

    def _run_path(self, handle: dict[str, Any]) -> str:
        return f"/repos/{segments(handle['repo'])}/actions/runs/{handle['run']}"

    def _run(self, handle: dict[str, Any]) -> dict[str, Any]:
        run: dict[str, Any] = self.api.get(self._run_path(handle)).json()
        return run

    def _result(
        self, handle: dict[str, Any], run: dict[str, Any], stopped: StepStatus | None
    ) -> StepResult:
        conclusion = str(run.get("conclusion") or run.get("status"))
        status = ENDED.get(conclusion, "failed")
        if stopped is not None and conclusion != "success":
            status = stopped
        return engine_result(
            status, what=f"GitHub run {handle['run']} ({run.get('name', '')})",
            engine_status=conclusion, url=self._link(handle), output=self._jobs(handle),
        )  # fmt: skip

    def _jobs(self, handle: dict[str, Any]) -> str:
        try:
            jobs = self.api.get(f"{self._run_path(handle)}/jobs").json()
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
        an escalation never comes from an engine's answer. github.com's pages for
        api.github.com; a GitHub Enterprise Server serves both."""
        base = self.api.base
        web = (
            "https://github.com"
            if base == "https://api.github.com"
            else base.removesuffix("/api/v3")
        )
        return f"{web}/{segments(handle['repo'])}/actions/runs/{handle['run']}"
