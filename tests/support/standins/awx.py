"""A stand-in AWX (or AAP 2.5 gateway) on a loopback port. It checks each call against
the contract cut out in fixtures/contracts/awx-job-api.json (paths under the API root,
the bearer token, the launch body's fields and types) and answers as AWX does: a launch
is 201 with `job` and `ignored_fields`, jobs go pending → running → their outcome,
stdout is plain text (`format=txt`) or the lines from `start_line` on as they are printed
(`format=json`), cancel is 202 or 405. It can be made slow, busy (429), or down.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import jsonschema

from tests.support.contracts import EXTRACTS
from tests.support.loopback import LoopbackStandIn, StandInHandler, answer_json

AWX_TOKEN = "awx-token-for-remediator-0001"
CONTRACT: dict[str, Any] = json.loads((EXTRACTS / "awx-job-api.json").read_text())


@dataclass
class Template:
    id: int
    name: str
    ask_variables: bool = True
    ask_limit: bool = True
    ask_inventory: bool = False
    ask_job_type: bool = False
    survey_enabled: bool = False
    # How the jobs it launches go.
    seconds: float = 0.5
    outcome: str = "successful"
    # Fields a launch's answer lists as ignored whatever the prompts say (a survey that
    # drops variables it does not ask for).
    ignores: tuple[str, ...] = ()
    workflow: bool = False
    # What the play set with set_stats: a successful job's `artifacts`.
    artifacts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    id: int
    template: Template
    body: dict[str, Any]
    started: float
    cancelled_at: float | None = None

    def output(self, now: float, status: str) -> list[str]:
        """Its output so far: a line more every tenth of its run (in ANSI colour, as AWX
        keeps it), the recap once it ended."""
        lines = [f"\x1b[0;32mPLAY [{self.template.name}] ***\x1b[0m\n", "TASK [restart] ***\n",
                 f"limit={self.body.get('limit')} "
                 f"vars={json.dumps(self.body.get('extra_vars', {}))}\n"]  # fmt: skip
        lines += [f"progress {n}\n" for n in range(1, 10)]
        if status in ("pending", "running"):
            shown = int((now - self.started) / max(self.template.seconds, 0.01) * len(lines))
            return lines[:shown]
        return [*lines, f"PLAY RECAP *** {status}\n"]

    def status(self, now: float) -> str:
        if self.cancelled_at is not None:
            return "canceled"
        elapsed = now - self.started
        if elapsed < 0.1:
            return "pending"
        if elapsed < self.template.seconds:
            return "running"
        return self.template.outcome


@dataclass
class AwxStandIn(LoopbackStandIn):
    root: str = "/api/v2/"
    templates: dict[str, Template] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    launches: list[dict[str, Any]] = field(default_factory=list)
    cancels: list[int] = field(default_factory=list)
    # The next this-many calls are answered 429 with Retry-After: 1.
    busy: int = 0
    handler_name: ClassVar[str] = "awx"

    def handler_class(self) -> type[StandInHandler]:
        return _Handler

    def template(self, name: str, **options: Any) -> Template:
        made = Template(id=len(self.templates) + 7, name=name, **options)
        self.templates[name] = made
        return made

    def by_id(self, template_id: int, workflow: bool) -> Template | None:
        return next(
            (t for t in self.templates.values() if t.id == template_id and t.workflow == workflow),
            None,
        )


@contextmanager
def awx_stand_in(root: str = "/api/v2/") -> Iterator[AwxStandIn]:
    awx = AwxStandIn(root=root)
    awx.start()
    try:
        yield awx
    finally:
        awx.stop()


class _Handler(StandInHandler):
    awx: AwxStandIn
    error_key = "detail"

    def answer(self, method: str, raw: bytes) -> None:
        awx = self.awx
        if self.headers.get("authorization") != f"Bearer {AWX_TOKEN}":
            answer_json(self, 401, {"detail": "Authentication credentials were not provided."})
            return
        with awx.lock:
            if awx.busy > 0:
                awx.busy -= 1
                answer_json(self, 429, {"detail": "Request was throttled."}, {"retry-after": "1"})
                return
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        if path in ("/api/v2/", "/api/controller/v2/"):
            if path != awx.root:
                answer_json(self, 404, {"detail": "Not found."})
                return
            answer_json(
                self,
                200,
                {"jobs": f"{awx.root}jobs/", "job_templates": f"{awx.root}job_templates/"},
            )
            return
        if not path.startswith(awx.root):
            self.refuse(404, f"not under the API root {awx.root}")
            return
        rest = path[len(awx.root) :]
        with awx.lock:
            self._route(method, rest, query, raw)

    def _route(self, method: str, rest: str, query: dict[str, list[str]], raw: bytes) -> None:
        awx = self.awx
        listing = re.fullmatch(r"(job_templates|workflow_job_templates|inventories)/", rest)
        if method == "GET" and listing:
            names = query.get("name", [])
            workflow = listing.group(1) == "workflow_job_templates"
            found = [
                {"id": t.id, "name": t.name, "type": "job_template"}
                for t in awx.templates.values()
                if t.name in names and t.workflow == workflow
            ]
            answer_json(
                self, 200, {"count": len(found), "next": None, "previous": None, "results": found}
            )
            return
        launch = re.fullmatch(r"(job_templates|workflow_job_templates)/(\d+)/launch/", rest)
        if launch:
            workflow = launch.group(1) == "workflow_job_templates"
            template = awx.by_id(int(launch.group(2)), workflow)
            if template is None:
                answer_json(self, 404, {"detail": "Not found."})
                return
            if method == "GET":
                answer = {
                    "ask_variables_on_launch": template.ask_variables,
                    "ask_limit_on_launch": template.ask_limit,
                    "ask_inventory_on_launch": template.ask_inventory,
                    "ask_job_type_on_launch": template.ask_job_type,
                    "survey_enabled": template.survey_enabled,
                    "can_start_without_user_input": True,
                    "passwords_needed_to_start": [],
                    "variables_needed_to_start": [],
                }
                jsonschema.validate(answer, CONTRACT["launch_get_response"])
                answer_json(self, 200, answer)
                return
            self._launch(template, raw)
            return
        job_path = re.fullmatch(
            r"(jobs|workflow_jobs)/(\d+)/(stdout/|cancel/|job_host_summaries/)?", rest
        )
        if job_path:
            job = awx.jobs.get(int(job_path.group(2)))
            if job is None:
                answer_json(self, 404, {"detail": "Not found."})
                return
            now = time.monotonic()
            status = job.status(now)
            if job_path.group(3) == "cancel/":
                if method == "GET":
                    answer_json(
                        self, 200, {"can_cancel": status in CONTRACT["job_status"]["running"]}
                    )
                    return
                awx.cancels.append(job.id)
                if status not in CONTRACT["job_status"]["running"]:
                    answer_json(self, 405, {"detail": 'Method "POST" not allowed.'})
                    return
                job.cancelled_at = now
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if job_path.group(3) == "job_host_summaries/":
                answer_json(self, 200, self._summaries(job, status))
                return
            if job_path.group(3) == "stdout/":
                lines = job.output(now, status)
                if query.get("format") == ["json"]:
                    # The lines from start_line on, as AWX gives a growing output.
                    start = int(query.get("start_line", ["0"])[0])
                    answer = {"range": {"start": start, "end": max(start, len(lines)),
                                        "absolute_end": len(lines)},
                              "content": "".join(lines[start:])}  # fmt: skip
                    jsonschema.validate(answer, CONTRACT["stdout_json_response"])
                    answer_json(self, 200, answer)
                elif query.get("format") == ["txt"]:
                    self.text(200, "".join(lines))
                else:
                    self.refuse(400, "stdout asked without format=txt or format=json")
                return
            answer = self._job(job, status)
            jsonschema.validate(answer, CONTRACT["job_response"])
            answer_json(self, 200, answer)
            return
        self.refuse(404, "no such AWX endpoint")

    def _launch(self, template: Template, raw: bytes) -> None:
        awx = self.awx
        if not (self.headers.get("content-type") or "").startswith("application/json"):
            self.refuse(415, "launch body is not application/json")
            return
        body = self.contract_body(raw, CONTRACT["launch_request"], 400, "launch")
        if body is None:
            return
        prompts = {"extra_vars": template.ask_variables or template.survey_enabled,
                   "limit": template.ask_limit, "inventory": template.ask_inventory,
                   "job_type": template.ask_job_type}  # fmt: skip
        ignored = {
            name: body[name] for name in body
            if not prompts.get(name, False) or name in template.ignores
        }  # fmt: skip
        kept = {name: value for name, value in body.items() if name not in ignored}
        job = Job(id=len(awx.jobs) + 100, template=template, body=kept, started=time.monotonic())
        awx.jobs[job.id] = job
        awx.launches.append({"template": template.name, **body})
        key = "workflow_job" if template.workflow else "job"
        answer = {key: job.id, "ignored_fields": ignored, **self._job(job, "pending")}
        jsonschema.validate(answer, CONTRACT["launch_response"])
        location = f"{awx.root}{'workflow_jobs' if template.workflow else 'jobs'}/{job.id}/"
        answer_json(self, 201, answer, {"location": location})

    def _summaries(self, job: Job, status: str) -> dict[str, Any]:
        """Each host of the limit, as AWX sums a job up once it ended: a check job's task
        would change each host (`changed` counts), a failed job failed each."""
        hosts = [h for h in re.split(r"[,:]", str(job.body.get("limit", ""))) if h]
        ended = status not in CONTRACT["job_status"]["running"]
        failed = status in ("failed", "error")
        results = [
            {"host_name": host, "changed": 0 if failed else 1, "failures": 1 if failed else 0,
             "dark": 0, "ok": 0 if failed else 1, "skipped": 0}
            for host in (hosts if ended else [])
        ]  # fmt: skip
        answer = {"count": len(results), "next": None, "previous": None, "results": results}
        jsonschema.validate(answer, CONTRACT["job_host_summaries_response"])
        return answer

    def _job(self, job: Job, status: str) -> dict[str, Any]:
        jobs = "workflow_jobs" if job.template.workflow else "jobs"
        return {
            "id": job.id,
            "type": "workflow_job" if job.template.workflow else "job",
            "url": f"{self.awx.root}{jobs}/{job.id}/",
            "name": job.template.name,
            "status": status,
            "failed": status in ("failed", "error"),
            "job_explanation": "Job terminated due to error" if status == "error" else "",
            "limit": job.body.get("limit", ""),
            "extra_vars": json.dumps(job.body.get("extra_vars", {})),
            "job_type": job.body.get("job_type", "run"),
        } | (
            {}
            if job.template.workflow
            else {
                "artifacts": job.template.artifacts if status == "successful" else {},
            }
        )
