"""HCP Terraform / Terraform Enterprise steps: revert a workspace to an earlier
configuration version the way the local `terraform` step reverts a workdir: plan, guard,
apply, on the workspace's own remote state, runs queue and policies.

    terraform_cloud:
      organization: acme
      workspace: web-prod
      revert_to: previous        # | last_good | configuration_version:cv-...
      max_destroy: 0
      timeout: 30m

Nothing in it comes from a payload: which workspace and which version are runbook text
(the names are checked at load and percent-encoded into the API path).

The contract (HCP Terraform API docs: workspaces, configuration-versions, runs, plans;
go-tfe's RunStatus values), JSON:API with `application/vnd.api+json` and a bearer token:
1. `GET /api/v2/organizations/{org}/workspaces/{name}`: the workspace id.
2. The version: `previous` is the configuration version of the applied run before the
   newest applied one (`GET /api/v2/workspaces/{id}/runs?filter[status]=applied`);
   `last_good` the newest one recorded here as applied and healthy for this workspace;
   `configuration_version:<id>` that one.
3. `POST /api/v2/runs` on that configuration version, not auto-applied.
4. Followed by `GET /api/v2/runs/{id}` until it can be confirmed (`actions.is-confirmable`)
   or ends. Then `GET /api/v2/plans/{plan}/json-output` (a redirect to the plan's JSON),
   the guard: past `max_destroy` the run is discarded (`POST .../actions/discard`) and the
   step `refused`; else `POST .../actions/apply`, and followed until `applied`.
   `planned_and_finished` is a plan with no changes: succeeded, nothing applied. The
   step's outputs are the workspace's state outputs (`GET .../current-state-version`,
   once `resources-processed` and written by this run, then
   `.../current-state-version-outputs`; sensitive ones masked), looked for up to
   OUTPUT_LOOKS more times before it ends without them.
   errored, discarded, canceled, force_canceled, policy_soft_failed (nobody overrode it)
   and planned_and_saved end it failed.
5. Timeout or cancel: `POST .../actions/cancel` while it plans or applies, `discard`
   while it waits for confirmation.
6. A shadow run creates a plan-only run (`plan-only: true`: HCP Terraform never applies
   it; it ends `planned_and_finished`), and says what its plan would change, or that the
   guard would refuse it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from pydantic import Field

from app.config.sections import EngineConfig
from app.engine_http import EngineClient, EngineError
from app.fields.duration import Duration
from app.gitops.versions import LastGoodLookup
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
    shadowed,
    with_outputs,
)
from app.steps.terraform.plan import refusal, summarise

if TYPE_CHECKING:
    from app.config.settings import Settings
    from app.gitops.records import Records

ENGINE = "terraform_cloud"
JSON_API = "application/vnd.api+json"
LAUNCH_WAIT_S = 20.0
# Looks after a run ended for its state's outputs to be processed; past them the step ends
# without outputs rather than wait (the run itself is done).
OUTPUT_LOOKS = 10
NAME = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$"
REVERT_TO = r"^(previous|last_good|configuration_version:cv-[A-Za-z0-9]+)$"
ENDED_FAILED = frozenset(
    {"errored", "discarded", "canceled", "force_canceled", "policy_soft_failed",
     "planned_and_saved"}
)  # fmt: skip


class TerraformCloudStep(StepSpec):
    """`terraform_cloud:` in a runbook. All of it is runbook text."""

    organization: str = Field(pattern=NAME)
    workspace: str = Field(pattern=NAME)
    revert_to: str = Field(
        pattern=REVERT_TO,
        description="previous (the configuration of the applied run before the newest) | "
        "last_good (last recorded applied and healthy) | configuration_version:<cv-id>.",
    )
    max_destroy: int = Field(
        default=0, ge=0, description="Refuse a plan that destroys or replaces more than this."
    )
    timeout: Duration = 1800.0


class TerraformCloudKind(KindDefaults):
    name = "terraform_cloud"
    spec_model = TerraformCloudStep
    engines = (ENGINE,)

    def templates(self, _spec: TerraformCloudStep) -> Iterator[tuple[str, str]]:
        return iter(())

    def render(self, spec: TerraformCloudStep, _context: Mapping[str, Any]) -> dict[str, Any]:
        return spec.model_dump(mode="json")

    def variables(self, _spec: TerraformCloudStep) -> Mapping[str, Any]:
        return {}

    def executor(self, settings: Settings, records: Records) -> Executor | None:
        config = self.engine(settings, ENGINE)
        return TerraformCloudExecutor(config, records.last_good) if config else None


def target(spec: Mapping[str, Any]) -> str:
    """The key its known-good versions are recorded under (beside terraform workdirs)."""
    return f"tfc:{spec['organization']}/{spec['workspace']}"


class TerraformCloudExecutor:
    kind = "terraform_cloud"
    dry_runs = True  # a plan-only run

    def __init__(self, config: EngineConfig, last_good: LastGoodLookup) -> None:
        self.api = EngineClient(
            "HCP Terraform", config, auth=lambda token: {"authorization": f"Bearer {token}"},
            headers={"accept": JSON_API},
        )  # fmt: skip
        self.poll_interval_s = config.poll_interval_s
        self.last_good = last_good

    def targets(self, spec: dict[str, Any]) -> list[str]:
        return [f"workspace:{spec['organization']}/{spec['workspace']}"]

    def preview(self, spec: dict[str, Any]) -> dict[str, Any]:
        return {"engine": self.api.base, "workspace": target(spec), "revert_to": spec["revert_to"]}

    def launch(self, step: StepInput) -> Remote:
        spec = step.spec
        path = f"/api/v2/organizations/{quote(spec['organization'], safe='')}/workspaces/"
        workspace = self.api.get(path + quote(spec["workspace"], safe=""),
                                 busy_wait_s=LAUNCH_WAIT_S).json()["data"]["id"]  # fmt: skip
        version = self._version(spec, str(workspace))
        body = {
            "data": {
                "type": "runs",
                "attributes": {
                    "message": f"remediator: revert to {spec['revert_to']} ({version}), "
                    f"execution {step.execution_id}",
                    "auto-apply": False,
                    **({"plan-only": True} if step.shadow else {}),
                },
                "relationships": {
                    "workspace": {"data": {"type": "workspaces", "id": workspace}},
                    "configuration-version": {
                        "data": {"type": "configuration-versions", "id": version}
                    },
                },
            }
        }
        run = self.api.post("/api/v2/runs", body, content_type=JSON_API,
                            busy_wait_s=LAUNCH_WAIT_S).json()["data"]  # fmt: skip
        handle = {"run": run["id"], "workspace": workspace, "version": version, "phase": "plan",
                  "plan_only": step.shadow}  # fmt: skip
        return Remote(handle, self._link(spec, handle))

    def _version(self, spec: Mapping[str, Any], workspace: str) -> str:
        revert_to = str(spec["revert_to"])
        if revert_to.startswith("configuration_version:"):
            return revert_to.split(":", 1)[1]
        if revert_to == "last_good":
            good = self.last_good(target(spec))
            if good is None:
                raise EngineError(f"last_good: no version of {target(spec)} is recorded as good")
            return good.commit
        runs = self.api.get(
            f"/api/v2/workspaces/{workspace}/runs",
            params={"filter[status]": "applied", "page[size]": "2"},
            busy_wait_s=LAUNCH_WAIT_S,
        ).json()["data"]
        if len(runs) < 2:
            raise EngineError(f"previous: {target(spec)} has no applied run before its newest")
        return str(runs[1]["relationships"]["configuration-version"]["data"]["id"])

    def poll(self, step: StepInput, handle: dict[str, Any]) -> Remote:
        run = self._run(handle)
        status = str(run["attributes"]["status"])
        url = self._link(step.spec, handle)
        if handle.get("plan_only"):
            return self._planned_only(step, handle, run, status, url)
        if status in ("applied", "planned_and_finished"):
            outputs = self._state_outputs(handle, ours=status == "applied")
            looks = int(handle.get("output_looks", 0))
            if outputs is None and looks < OUTPUT_LOOKS:
                # Its state's outputs are processed apart from the run: look again.
                return Remote({**handle, "output_looks": looks + 1}, url)
            summary = "no changes" if status == "planned_and_finished" else None
            ended = self._result(step, handle, "succeeded", status, summary=summary)
            return Remote(handle, url, ended=with_outputs(ended, outputs or None))
        if status in ENDED_FAILED:
            return Remote(handle, url, ended=self._result(step, handle, "failed", status))
        confirmable = bool((run["attributes"].get("actions") or {}).get("is-confirmable"))
        if handle["phase"] == "plan" and confirmable:
            return self._guard_then_apply(step, handle, run, url)
        return Remote(handle, url)

    def _guard_then_apply(
        self, step: StepInput, handle: dict[str, Any], run: dict[str, Any], url: str
    ) -> Remote:
        plan_id = run["relationships"]["plan"]["data"]["id"]
        plan = self.api.get(f"/api/v2/plans/{plan_id}/json-output", follow=True).json()
        summary = summarise(plan)
        why = refusal(summary, int(step.spec.get("max_destroy", 0)))
        actions = f"/api/v2/runs/{handle['run']}/actions"
        if why is not None:
            self.api.post(f"{actions}/discard", {"comment": f"remediator: {why}"},
                          content_type=JSON_API, ok=(409,))  # fmt: skip
            return Remote(handle, url, ended=refused_now(why, "max_destroy"))
        # 409: it was confirmed already (a look before a restart applied it).
        self.api.post(f"{actions}/apply", {"comment": "remediator: plan within max_destroy"},
                      content_type=JSON_API, ok=(409,))  # fmt: skip
        applying = {**handle, "phase": "apply", "plan": summary.text()}
        return Remote(applying, url)

    def _planned_only(
        self, step: StepInput, handle: dict[str, Any], run: dict[str, Any], status: str, url: str
    ) -> Remote:
        """A shadow's plan-only run: followed to its end, then what its plan would do."""
        run_id, version = handle["run"], handle["version"]
        what = f"HCP Terraform plan-only run {run_id} ({target(step.spec)} → {version})"
        started = datetime.now(UTC)
        if status in ENDED_FAILED:
            failed = shadowed("would fail", f"{what}: {status}", started=started, url=url,
                              run=run_id)  # fmt: skip
            return Remote(handle, url, ended=failed)
        if status != "planned_and_finished":
            return Remote(handle, url)
        plan_id = run["relationships"]["plan"]["data"]["id"]
        summary = summarise(
            self.api.get(f"/api/v2/plans/{plan_id}/json-output", follow=True).json()
        )
        found = {"url": url, "run": run_id, "plan": {**summary.as_dict(), "text": summary.text()}}
        why = refusal(summary, int(step.spec.get("max_destroy", 0)))
        if why is not None:
            ended = shadowed("would be refused", f"{what}: {why}", started=started,
                             guard="max_destroy", **found)  # fmt: skip
        elif summary.changes_nothing:
            ended = shadowed("no change", f"{what}; plan: no changes", started=started, **found)
        else:
            ended = shadowed("would change", f"{what}; plan: {summary.text()}", started=started,
                             **found)  # fmt: skip
        return Remote(handle, url, ended=ended)

    def cancel(self, step: StepInput, handle: dict[str, Any], status: StepStatus) -> Remote:
        actions = f"/api/v2/runs/{handle['run']}/actions"
        comment = {"comment": f"remediator: {status}"}
        answer = self.api.post(f"{actions}/cancel", comment, content_type=JSON_API, ok=(409,))
        if answer.status_code == 409:  # not planning or applying: waiting, so discard it
            self.api.post(f"{actions}/discard", comment, content_type=JSON_API, ok=(409,))
        engine_status = str(self._run(handle)["attributes"]["status"])
        final: StepStatus = "succeeded" if engine_status == "applied" else status
        return Remote(handle, self._link(step.spec, handle),
                      ended=self._result(step, handle, final, engine_status))  # fmt: skip

    def _state_outputs(self, handle: dict[str, Any], *, ours: bool) -> dict[str, Any] | None:
        """The workspace's current state outputs by name, a sensitive one masked; {} when
        it has no state; None while they are not there yet: HCP Terraform processes a
        state version's outputs after the run (`resources-processed`), and an applied run
        (`ours`) must be the one that wrote the current state."""
        base = f"/api/v2/workspaces/{handle['workspace']}"
        answer = self.api.get(f"{base}/current-state-version", ok=(404,))
        if answer.status_code == 404:
            return {}
        current = answer.json()["data"]
        wrote = ((current.get("relationships") or {}).get("run") or {}).get("data") or {}
        if not current["attributes"].get("resources-processed") or (
            ours and wrote.get("id") != handle["run"]
        ):
            return None
        listed = self.api.get(f"{base}/current-state-version-outputs").json()["data"]
        return {
            str(o["attributes"]["name"]): "***" if o["attributes"].get("sensitive")
            else o["attributes"].get("value")
            for o in listed
        }  # fmt: skip

    def _run(self, handle: dict[str, Any]) -> dict[str, Any]:
        run: dict[str, Any] = self.api.get(f"/api/v2/runs/{handle['run']}").json()["data"]
        return run

    def _result(
        self,
        step: StepInput,
        handle: dict[str, Any],
        status: StepStatus,
        engine_status: str,
        summary: str | None = None,
    ) -> StepResult:
        found: dict[str, Any] = {"run": handle["run"]}
        if status == "succeeded":
            # What `last_good` reads once the execution is verified healthy.
            found |= {"workdir": target(step.spec), "version": {"commit": handle["version"]}}
        plan = summary or handle.get("plan")
        return engine_result(
            status,
            what=f"HCP Terraform run {handle['run']} ({target(step.spec)} → {handle['version']}"
            + (f"; plan: {plan}" if plan else "")
            + ")",
            engine_status=engine_status,
            url=self._link(step.spec, handle),
            **found,
        )

    def _link(self, spec: Mapping[str, Any], handle: dict[str, Any]) -> str:
        org, workspace = quote(spec["organization"], safe=""), quote(spec["workspace"], safe="")
        return f"{self.api.base}/app/{org}/workspaces/{workspace}/runs/{handle['run']}"
