"""Stand-in GitHub Actions and GitLab CI on one loopback port. Each call is checked
against the cut-outs in fixtures/contracts/ (github-actions-dispatch.json,
gitlab-pipelines.json: paths, auth headers, body shapes) and answered as the engine
does: a dispatch is 200 with the run id (or, playing an older GitHub Enterprise Server,
422 for `return_run_details` and 204 without it), runs and pipelines go queued →
running → their conclusion, cancel is 202/409 (GitHub) or 200 (GitLab)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

from tests.support.contracts import EXTRACTS
from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json

GITHUB_TOKEN = "ghp_stand_in_token_0001"
GITLAB_TOKEN = "glpat-stand-in-token-0001"
GITHUB: dict[str, Any] = json.loads((EXTRACTS / "github-actions-dispatch.json").read_text())
GITLAB: dict[str, Any] = json.loads((EXTRACTS / "gitlab-pipelines.json").read_text())


@dataclass
class Run:
    id: int
    where: str  # owner/repo or the GitLab project
    body: dict[str, Any]
    started: float
    seconds: float
    outcome: str
    created_at: str
    cancelled: bool = False

    def state(self, now: float) -> str:
        if self.cancelled:
            return "cancelled"
        if now - self.started < 0.1:
            return "queued"
        if now - self.started < self.seconds:
            return "running"
        return self.outcome


@dataclass
class PipelineStandIn(LoopbackStandIn):
    seconds: float = 0.5
    outcome: str = "success"  # success | failure
    # Playing a GitHub Enterprise Server from before return_run_details.
    old_github: bool = False
    runs: dict[int, Run] = field(default_factory=dict)
    dispatches: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[int] = field(default_factory=list)
    handler_name: ClassVar[str] = "ci"

    def handler_class(self) -> type[StandInHandler]:
        return _Handler

    def new_run(self, where: str, body: dict[str, Any]) -> Run:
        run = Run(id=len(self.runs) + 5000, where=where, body=body, started=time.monotonic(),
                  seconds=self.seconds, outcome=self.outcome,
                  created_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))  # fmt: skip
        self.runs[run.id] = run
        self.dispatches.append({"where": where, **body})
        return run


@contextmanager
def pipeline_stand_in(**options: Any) -> Iterator[PipelineStandIn]:
    ci = PipelineStandIn(**options)
    ci.start()
    try:
        yield ci
    finally:
        ci.stop()


GITHUB_STATUS = {"queued": ("queued", None), "running": ("in_progress", None),
                 "success": ("completed", "success"), "failure": ("completed", "failure"),
                 "cancelled": ("completed", "cancelled")}  # fmt: skip
GITLAB_STATUS = {"queued": "pending", "running": "running", "success": "success",
                 "failure": "failed", "cancelled": "canceled"}  # fmt: skip


class _Handler(StandInHandler):
    ci: PipelineStandIn

    def _empty(self, status: int) -> None:
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def answer(self, method: str, raw: bytes) -> None:
        split = urlsplit(self.path)
        with self.ci.lock:
            if split.path.startswith("/repos/"):
                self._github(method, split.path, parse_qs(split.query), raw)
            elif split.path.startswith("/api/v4/"):
                self._gitlab(method, split.path, raw)
            else:
                self.refuse(404, "neither a GitHub nor a GitLab API path")

    # ------------------------------------------------------------------ GitHub

    def _github(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        for name, value in GITHUB["headers"].items():
            expected = f"Bearer {GITHUB_TOKEN}" if name == "authorization" else value
            if self.headers.get(name) != expected:
                self.refuse(
                    401 if name == "authorization" else 400, f"header {name} is not {expected}"
                )
                return
        ci = self.ci
        dispatch = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/workflows/([^/]+)/dispatches", path)
        if method == "POST" and dispatch:
            body = self.contract_body(raw, GITHUB["dispatch_request"], 422, "dispatch")
            if body is None:
                return
            if ci.old_github and "return_run_details" in body:
                answer_json(
                    self,
                    422,
                    {"message": 'Invalid request.\n\n"return_run_details" is not a permitted key.'},
                )
                return
            run = ci.new_run(
                unquote(dispatch.group(1)), {"workflow": unquote(dispatch.group(2)), **body}
            )
            if body.get("return_run_details"):
                answer = {"workflow_run_id": run.id, "run_url": f"{ci.base}/repos/{run.where}/actions/runs/{run.id}",
                          "html_url": f"{ci.base}/{run.where}/actions/runs/{run.id}"}  # fmt: skip
                jsonschema.validate(answer, GITHUB["dispatch_response"])
                answer_json(self, 200, answer)
            else:
                self._empty(204)
            return
        listing = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/workflows/([^/]+)/runs", path)
        if method == "GET" and listing:
            runs = [self._github_run(r) for r in ci.runs.values()
                    if r.where == unquote(listing.group(1)) and r.body.get("ref") in query.get("branch", [])]  # fmt: skip
            answer_json(self, 200, {"total_count": len(runs), "workflow_runs": runs})
            return
        one = re.fullmatch(r"/repos/([^/]+/[^/]+)/actions/runs/(\d+)(/cancel|/jobs)?", path)
        if one and int(one.group(2)) in ci.runs:
            run = ci.runs[int(one.group(2))]
            if one.group(3) == "/cancel" and method == "POST":
                ci.cancels.append(run.id)
                if run.state(time.monotonic()) in ("success", "failure", "cancelled"):
                    answer_json(
                        self, 409, {"message": "Cannot cancel a workflow run that is completed."}
                    )
                    return
                run.cancelled = True
                answer_json(self, 202, {})
                return
            if one.group(3) == "/jobs":
                status, conclusion = GITHUB_STATUS[run.state(time.monotonic())]
                job = {"name": "rollback", "status": status, "conclusion": conclusion,
                       "steps": [{"name": f"deploy {run.body.get('inputs')}", "status": status,
                                  "conclusion": conclusion}]}  # fmt: skip
                answer_json(self, 200, {"total_count": 1, "jobs": [job]})
                return
            answer = self._github_run(run)
            jsonschema.validate(answer, GITHUB["workflow_run"])
            answer_json(self, 200, answer)
            return
        self.refuse(404, "no such GitHub endpoint")

    def _github_run(self, run: Run) -> dict[str, Any]:
        status, conclusion = GITHUB_STATUS[run.state(time.monotonic())]
        return {"id": run.id, "name": run.body.get("workflow"), "status": status,
                "conclusion": conclusion, "event": "workflow_dispatch",
                "head_branch": run.body.get("ref"), "created_at": run.created_at,
                "html_url": f"{self.ci.base}/{run.where}/actions/runs/{run.id}"}  # fmt: skip

    # ------------------------------------------------------------------ GitLab

    def _gitlab(self, method: str, path: str, raw: bytes) -> None:
        if self.headers.get("private-token") != GITLAB_TOKEN:
            answer_json(self, 401, {"message": "401 Unauthorized"})
            return
        ci = self.ci
        create = re.fullmatch(r"/api/v4/projects/([^/]+)/pipeline", path)
        if method == "POST" and create:
            body = self.contract_body(raw, GITLAB["create_request"], 400, "pipeline")
            if body is None:
                return
            if "/" in create.group(1):
                self.refuse(404, "the project path was not percent-encoded")
                return
            run = ci.new_run(unquote(create.group(1)), body)
            answer = self._gitlab_pipeline(run)
            jsonschema.validate(answer, GITLAB["pipeline"])
            answer_json(self, 201, answer)
            return
        one = re.fullmatch(r"/api/v4/projects/([^/]+)/pipelines/(\d+)(/cancel|/jobs)?", path)
        if one and int(one.group(2)) in ci.runs:
            run = ci.runs[int(one.group(2))]
            if one.group(3) == "/cancel" and method == "POST":
                ci.cancels.append(run.id)
                if run.state(time.monotonic()) in ("queued", "running"):
                    run.cancelled = True
                answer_json(self, 200, self._gitlab_pipeline(run))
                return
            if one.group(3) == "/jobs":
                state = GITLAB_STATUS[run.state(time.monotonic())]
                answer_json(self, 200, [{"id": run.id * 10, "name": "rollback", "status": state}])
                return
            answer = self._gitlab_pipeline(run)
            jsonschema.validate(answer, GITLAB["pipeline"])
            answer_json(self, 200, answer)
            return
        trace = re.fullmatch(r"/api/v4/projects/([^/]+)/jobs/(\d+)/trace", path)
        if method == "GET" and trace:
            run = ci.runs[int(trace.group(2)) // 10]
            variables = json.dumps(run.body.get("variables"))
            self.text(200, f"$ ./rollback.sh\nvariables: {variables}\nERROR: rollback failed\n")
            return
        self.refuse(404, "no such GitLab endpoint")

    def _gitlab_pipeline(self, run: Run) -> dict[str, Any]:
        return {"id": run.id, "iid": run.id - 4999, "project_id": 42,
                "status": GITLAB_STATUS[run.state(time.monotonic())], "ref": run.body.get("ref"),
                "web_url": f"{self.ci.base}/{run.where}/-/pipelines/{run.id}"}  # fmt: skip
