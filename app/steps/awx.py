"""AWX / Red Hat AAP steps: launch a job template (or a workflow job template) on the
engine the team already runs, and follow the job to its end.

    awx:
      job_template: restart-nginx        # a name or an id; or workflow_job_template:
      extra_vars: {host: "{{ incident.labels.instance }}"}
      limit: "{{ incident.labels.instance }}"
      timeout: 30m

What a payload may fill: `extra_vars` values (data, sent as JSON) and `limit`, whose
templated parts must render to host or group names (no patterns, no `all`, no `:`/`!`/`&`
syntax: the same rule as the ansible step, though the inventory lives on the engine, so
the names are not looked up here). The template, the inventory and the engine's address
are runbook and configuration text.

The contract (AWX `awx/api/templates/api/*.md` and the views they document):
- The API root is `/api/v2/` on AWX and `/api/controller/v2/` through the AAP 2.5+
  gateway; which one is asked once, at the first step.
- `GET .../job_templates/{id}/launch/` says what the template prompts for
  (`ask_variables_on_launch`, `ask_limit_on_launch`, `ask_inventory_on_launch`,
  `survey_enabled`). A value it would not take is refused here before any job starts:
  AWX would run the job without it (a job without its `limit` runs on every host).
- `POST .../launch/` answers 201 (202 on older releases) with `job` (or
  `workflow_job`) and `ignored_fields`; anything we sent that it ignored cancels the job
  at once and refuses the step, naming the template setting to turn on.
- `GET .../jobs/{id}/`: `status` is new | pending | waiting | running, then successful
  | failed | error | canceled. `GET .../jobs/{id}/stdout/?format=txt` is its output.
- `POST .../jobs/{id}/cancel/`: 202, or 405 when the job can no longer be cancelled.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field, model_validator

from app.config.sections import EngineConfig
from app.engine_http import EngineClient, EngineError
from app.fields.duration import Duration
from app.fields.templating import render_limit, render_value
from app.steps.base import (
    Executor,
    KindDefaults,
    Remote,
    StepInput,
    StepResult,
    StepSpec,
    StepStatus,
    engine_result,
    refused_now,
    rendered_only,
    shadowed,
    strings_in,
    tail,
    with_outputs,
)

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.gitops.records import Records

ENGINE = "awx"
# How long a launch waits out an engine that is busy (429/503) or refuses connections,
# before the attempt fails (and the runbook's retry policy decides).
LAUNCH_WAIT_S = 20.0
PROMPT_GUARD = "prompt_on_launch"
NOT_CHECKED = "check: false (the job template is not run in check mode), so nothing was launched"
API_ROOTS = ("/api/controller/v2/", "/api/v2/")
# Where a running job's output has been shown up to (its lines), kept in its handle.
SHOWN_LINES = "shown_lines"
# Colour codes in a job's stored output (its json format gives the raw lines).
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
RUNNING = frozenset({"new", "pending", "waiting", "running"})
ENDED: dict[str, StepStatus] = {
    "successful": "succeeded",
    "failed": "failed",
    "error": "failed",
    "canceled": "cancelled",
}
# What a launch sends → the template's "Prompt on launch" switch that makes AWX take it.
PROMPTS = {
    "extra_vars": ("ask_variables_on_launch", "Variables"),
    "limit": ("ask_limit_on_launch", "Limit"),
    "inventory": ("ask_inventory_on_launch", "Inventory"),
    "job_type": ("ask_job_type_on_launch", "Job Type"),
}


class AwxStep(StepSpec):
    """`awx:` in a runbook."""

    job_template: str | int | None = Field(default=None, description="A name or an id.")
    workflow_job_template: str | int | None = Field(
        default=None, description="A name or an id (instead of job_template)."
    )
    extra_vars: dict[str, Any] = Field(
        default_factory=dict, description="Sent as the job's extra_vars; values are templates."
    )
    limit: str | None = Field(
        default=None,
        min_length=1,
        description="Hosts or groups; a templated part must render to names only.",
    )
    inventory: str | int | None = Field(default=None, description="A name or an id.")
    timeout: Duration = 1800.0
    check: bool = Field(
        default=False,
        description="In a shadow run, launch the job template with job_type: check (its "
        "'Prompt on launch' for Job Type must be on); otherwise a shadow only renders it.",
    )

    @model_validator(mode="after")
    def _one_template(self) -> AwxStep:
        if (self.job_template is None) == (self.workflow_job_template is None):
            raise ValueError("give exactly one of job_template and workflow_job_template")
        if self.check and self.workflow_job_template is not None:
            raise ValueError(
                "check: a workflow job template has no check mode; only a job template"
            )
        return self


class AwxKind(KindDefaults):
    name = "awx"
    spec_model = AwxStep
    engines = (ENGINE,)

    def templates(self, spec: AwxStep) -> Iterator[tuple[str, str]]:
        yield from strings_in(spec.extra_vars, "extra_vars")
        if spec.limit is not None:
            yield "limit", spec.limit

    def render(self, spec: AwxStep, context: Mapping[str, Any]) -> dict[str, Any]:
        rendered = spec.model_dump(mode="json", exclude_none=True)
        rendered["extra_vars"] = render_value(spec.extra_vars, context)
        if spec.limit is not None:
            rendered["limit"], _ = render_limit(spec.limit, context)
        return rendered

    def variables(self, spec: AwxStep) -> Mapping[str, Any]:
        return spec.extra_vars

    def executor(self, settings: Settings, _records: Records) -> Executor | None:
        config = self.engine(settings, ENGINE)
        return AwxExecutor(config) if config is not None else None


class AwxExecutor:
    kind = "awx"
    dry_runs = True  # a check-mode job, when the step says `check: true`

    def __init__(self, config: EngineConfig) -> None:
        self.api = EngineClient(
            "AWX", config, auth=lambda token: {"authorization": f"Bearer {token}"}
        )
        self.poll_interval_s = config.poll_interval_s
        self._root: str | None = None
        self._lock = threading.Lock()

    def targets(self, spec: dict[str, Any]) -> list[str]:
        """The limit's names (the inventory is on the engine), else the template itself."""
        limit = str(spec.get("limit") or "")
        names = [n.strip() for n in limit.replace(":", ",").split(",") if n.strip()]
        template, workflow = _template(spec)
        kind = "workflow_job_template" if workflow else "job_template"
        return sorted(set(names)) or [f"{kind}:{template}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        template, workflow = _template(spec)
        return {
            "engine": self.api.base,
            "workflow_job_template" if workflow else "job_template": template,
            "extra_vars": spec.get("extra_vars", {}),
            "limit": spec.get("limit"),
            "inventory": spec.get("inventory"),
        }

    def launch(self, step: StepInput) -> Remote:
        spec = step.spec
        if step.shadow and not spec.get("check"):
            return Remote({}, None, ended=rendered_only(NOT_CHECKED))
        root = self.root()
        template, workflow = _template(spec)
        templates = "workflow_job_templates" if workflow else "job_templates"
        template_id = self._id(root, templates, template)
        body: dict[str, Any] = {}
        if spec.get("extra_vars"):
            body["extra_vars"] = spec["extra_vars"]
        if spec.get("limit"):
            body["limit"] = spec["limit"]
        if spec.get("inventory") is not None:
            body["inventory"] = self._id(root, "inventories", spec["inventory"])
        if step.shadow:
            body["job_type"] = "check"  # Ansible's check mode, on the engine
        launch_path = f"{root}{templates}/{template_id}/launch/"
        prompts = self.api.get(launch_path, busy_wait_s=LAUNCH_WAIT_S).json()
        refusal = _not_prompted(prompts, body, template)
        if refusal is not None:
            return Remote({}, None, ended=refused_now(refusal, PROMPT_GUARD))
        answer = self.api.post(launch_path, body, busy_wait_s=LAUNCH_WAIT_S).json()
        jobs = "workflow_jobs" if workflow else "jobs"
        job = answer.get("workflow_job" if workflow else "job", answer.get("id"))
        if not isinstance(job, int):
            raise EngineError(f"AWX launched {template!r} but named no job: {str(answer)[:200]}")
        handle = {"root": root, "jobs": jobs, "job": job, "template": str(template),
                  "check": step.shadow}  # fmt: skip
        ignored = sorted(set(answer.get("ignored_fields") or {}) & set(body))
        if ignored:
            self._cancel(handle)
            error = (
                f"AWX ignored {', '.join(ignored)} for {template!r} and would have run the "
                f"job without them; turn on 'Prompt on launch' for "
                f"{', '.join(PROMPTS[f][1] for f in ignored if f in PROMPTS)} on the template. "
                f"Job {job} was cancelled."
            )
            return Remote(handle, self._link(handle), ended=refused_now(error, PROMPT_GUARD))
        return Remote(handle, self._link(handle))

    def poll(self, _step: StepInput, handle: dict[str, Any]) -> Remote:
        job = self.api.get(f"{handle['root']}{handle['jobs']}/{handle['job']}/").json()
        status = str(job.get("status"))
        if status in RUNNING:
            return Remote(handle, self._link(handle))
        return Remote(handle, self._link(handle), ended=self._result(handle, job, None))

    def cancel(self, _step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        self._cancel(handle)
        job = self.api.get(f"{handle['root']}{handle['jobs']}/{handle['job']}/").json()
        return Remote(handle, self._link(handle), ended=self._result(handle, job, status))

    def root(self) -> str:
        """The API root, asked once: the AAP gateway's controller path, else AWX's."""
        with self._lock:
            if self._root is None:
                for root in API_ROOTS:
                    try:
                        self.api.get(root, busy_wait_s=LAUNCH_WAIT_S)
                    except EngineError as exc:
                        if exc.status in (404, 403):
                            continue
                        raise
                    self._root = root
                    break
                else:
                    raise EngineError(f"AWX: neither of {API_ROOTS} answers at {self.api.base}")
            return self._root

    def _id(self, root: str, collection: str, name: str | int) -> int:
        if isinstance(name, int) or name.isdigit():
            return int(name)
        found = self.api.get(
            f"{root}{collection}/", params={"name": name}, busy_wait_s=LAUNCH_WAIT_S
        ).json()
        results = found.get("results") or []
        if len(results) != 1:
            raise EngineError(f"AWX has {len(results)} {collection} named {name!r}")
        return int(results[0]["id"])

    def _cancel(self, handle: dict[str, Any]) -> None:
        # 405: it can no longer be cancelled (it ended meanwhile); what it reports is read next.
        self.api.post(f"{handle['root']}{handle['jobs']}/{handle['job']}/cancel/", ok=(405,))

    def _result(
        self, handle: dict[str, Any], job: dict[str, Any], stopped: StepStatus | None
    ) -> StepResult:
        engine_status = str(job.get("status"))
        status = ENDED.get(engine_status, "failed")
        if stopped is not None and engine_status != "successful":
            # We stopped it; a job that finished first keeps the engine's word for it.
            status = stopped
        if handle.get("check"):
            return self._checked(handle, status, engine_status)
        ended = engine_result(
            status,
            what=f"AWX job {handle['job']} ({handle['template']})",
            engine_status=engine_status,
            url=self._link(handle),
            output="" if handle["jobs"] == "workflow_jobs" else self._stdout(handle),
            explanation=str(job.get("job_explanation") or "").strip(),
            job=handle["job"],
        )
        # A job's `artifacts`: what its play set with set_stats (a workflow job has none).
        artifacts = job.get("artifacts")
        return with_outputs(ended, artifacts if isinstance(artifacts, dict) else None)

    def _checked(
        self, handle: dict[str, Any], status: StepStatus, engine_status: str
    ) -> StepResult:
        """A shadow's check-mode job, as a shadow step says it: which hosts would change
        (from the job's host summaries), or that it would fail."""
        what = f"AWX check job {handle['job']} ({handle['template']}): {engine_status}"
        url, output = self._link(handle), self._stdout(handle)
        started = datetime.now(UTC)
        if status != "succeeded":
            return shadowed("would fail", what, started=started, output=output, url=url,
                            job=handle["job"])  # fmt: skip
        summaries = self.api.get(
            f"{handle['root']}jobs/{handle['job']}/job_host_summaries/", params={"page_size": "200"}
        ).json()
        rows = summaries.get("results") or []
        hosts = sorted(str(row.get("host_name")) for row in rows)
        changed = sorted(str(row.get("host_name")) for row in rows if row.get("changed"))
        found = {"url": url, "job": handle["job"], "hosts": hosts, "changed": changed}
        if changed:
            said = f"{len(changed)} host(s) would change: {', '.join(changed[:10])}"
            return shadowed("would change", said, started=started, output=output, **found)
        return shadowed("no change", f"{len(hosts)} host(s) checked, none would change",
                        started=started, output=output, **found)  # fmt: skip

    def output_since(self, handle: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        if handle["jobs"] == "workflow_jobs":
            return None  # its output is its jobs'
        line = int(handle.get(SHOWN_LINES, 0))
        answer = self.api.get(
            f"{handle['root']}jobs/{handle['job']}/stdout/",
            params={"format": "json", "start_line": str(line)},
        ).json()
        end = int((answer.get("range") or {}).get("end", line))
        return ANSI.sub("", str(answer.get("content") or "")), {**handle, SHOWN_LINES: end}

    def _stdout(self, handle: dict[str, Any]) -> str:
        try:
            text = self.api.get(
                f"{handle['root']}jobs/{handle['job']}/stdout/", params={"format": "txt"}
            ).text
        except EngineError as exc:
            return f"(output not available: {exc})"
        return tail(text)

    def _link(self, handle: dict[str, Any]) -> str:
        kind = "workflow" if handle["jobs"] == "workflow_jobs" else "playbook"
        if handle["root"] == API_ROOTS[0]:
            return f"{self.api.base}/execution/jobs/{kind}/{handle['job']}/output"
        return f"{self.api.base}/#/jobs/{kind}/{handle['job']}/output"


def _template(spec: Mapping[str, Any]) -> tuple[str | int, bool]:
    if spec.get("workflow_job_template") is not None:
        return spec["workflow_job_template"], True
    return spec["job_template"], False


def _not_prompted(
    launch: Mapping[str, Any], body: Mapping[str, Any], template: object
) -> str | None:
    """Why the template would not take what we send, or None. Variables are taken when
    prompted for or when a survey asks for them (AWX then keeps only the survey's; what it
    drops comes back in `ignored_fields`)."""
    missing = [
        label
        for field, (flag, label) in PROMPTS.items()
        if field in body
        and not launch.get(flag, False)
        and not (field == "extra_vars" and launch.get("survey_enabled"))
    ]
    if not missing:
        return None
    return (
        f"AWX template {template!r} does not prompt on launch for {', '.join(missing)}, so "
        f"AWX would run the job without them; turn on 'Prompt on launch' for "
        f"{', '.join(missing)} on the template"
    )
