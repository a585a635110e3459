"""A stand-in HCP Terraform on a loopback port, checking each call against the cut-out in
fixtures/contracts/hcp-terraform-runs.json (JSON:API media type, bearer token, the run
body's shape) and answering as HCP Terraform does: runs go pending → planning → planned
(confirmable) → after `apply`, applying → applied; `planned_and_finished` for a plan
with no changes, and for a plan-only run (which can never be applied); the plan's JSON behind a redirect; discard and cancel end a run."""

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

TFC_TOKEN = "tfc-team-token.atlasv1.stand-in-0001"
CONTRACT: dict[str, Any] = json.loads((EXTRACTS / "hcp-terraform-runs.json").read_text())
WORKSPACE = "ws-web0prod"


@dataclass
class Run:
    id: str
    version: str
    started: float
    plan_seconds: float
    apply_seconds: float
    status: str = "pending"
    applied_at: float | None = None
    plan_only: bool = False  # a speculative plan: it ends planned_and_finished, never applies


@dataclass
class TfcStandIn(LoopbackStandIn):
    # configuration version → how many resources its plan destroys (0: a plain revert).
    versions: dict[str, int] = field(default_factory=lambda: {"cv-current": 0, "cv-before": 0})
    applied: list[str] = field(default_factory=lambda: ["cv-current", "cv-before"])
    plan_seconds: float = 0.3
    apply_seconds: float = 0.3
    no_changes: bool = False
    runs: dict[str, Run] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    # The workspace's state outputs: name → (value, sensitive). Its current state version
    # is the newest applied run's (else an older one's); its outputs are processed after
    # that many looks at it (`resources-processed` false until then).
    outputs: dict[str, tuple[Any, bool]] = field(default_factory=dict)
    processing_looks: int = 1
    state_looks: dict[str, int] = field(default_factory=dict)
    handler_name: ClassVar[str] = "tfc"

    def handler_class(self) -> type[StandInHandler]:
        return _Handler

    def state(self, run: Run) -> str:
        now = time.monotonic()
        if run.status in ("discarded", "canceled", "applied", "planned_and_finished"):
            return run.status
        if run.applied_at is not None:
            run.status = "applied" if now - run.applied_at >= run.apply_seconds else "applying"
            return run.status
        if now - run.started < 0.1:
            return "pending"
        if now - run.started < run.plan_seconds:
            return "planning"
        run.status = "planned_and_finished" if self.no_changes or run.plan_only else "planned"
        return run.status


@contextmanager
def tfc_stand_in(**options: Any) -> Iterator[TfcStandIn]:
    tfc = TfcStandIn(**options)
    tfc.start()
    try:
        yield tfc
    finally:
        tfc.stop()


class _Handler(StandInHandler):
    tfc: TfcStandIn

    def answer(self, method: str, raw: bytes) -> None:
        if self.headers.get("authorization") != f"Bearer {TFC_TOKEN}":
            answer_json(self, 401, {"errors": [{"status": "401", "title": "unauthorized"}]})
            return
        if method == "POST" and self.headers.get("content-type") != "application/vnd.api+json":
            self.refuse(415, "a body that is not application/vnd.api+json")
            return
        split = urlsplit(self.path)
        with self.tfc.lock:
            self._route(method, split.path, parse_qs(split.query), raw)

    def _route(self, method: str, path: str, query: dict[str, list[str]], raw: bytes) -> None:
        tfc = self.tfc
        if method == "GET" and path == "/api/v2/organizations/acme/workspaces/web-prod":
            answer_json(self, 200, {"data": {"id": WORKSPACE, "type": "workspaces",
                                             "attributes": {"name": "web-prod"}}})  # fmt: skip
            return
        if method == "GET" and path == f"/api/v2/workspaces/{WORKSPACE}/runs":
            if query.get("filter[status]") != ["applied"]:
                self.refuse(400, "runs listed without filter[status]=applied")
                return
            size = int(query.get("page[size]", ["20"])[0])
            data = [{"id": f"run-old{i}", "type": "runs", "attributes": {"status": "applied"},
                     "relationships": {"configuration-version": {
                         "data": {"id": cv, "type": "configuration-versions"}}}}
                    for i, cv in enumerate(tfc.applied[:size])]  # fmt: skip
            answer_json(self, 200, {"data": data})
            return
        if method == "POST" and path == "/api/v2/runs":
            self._create(raw)
            return
        one = re.fullmatch(r"/api/v2/runs/(run-[a-z0-9]+)(/actions/(apply|discard|cancel))?", path)
        if one and one.group(1) in tfc.runs:
            run = tfc.runs[one.group(1)]
            state = tfc.state(run)
            if one.group(3):
                self._action(run, state, one.group(3), raw)
                return
            answer_json(self, 200, {"data": {
                "id": run.id, "type": "runs",
                "attributes": {"status": state, "actions": {"is-confirmable": state == "planned"}},
                "relationships": {"plan": {"data": {"id": f"plan-{run.id[4:]}", "type": "plans"}}},
            }})  # fmt: skip
            return
        if method == "GET" and path == f"/api/v2/workspaces/{WORKSPACE}/current-state-version":
            self._current_state()
            return
        if (
            method == "GET"
            and path == f"/api/v2/workspaces/{WORKSPACE}/current-state-version-outputs"
        ):
            # As HCP Terraform lists them: a sensitive output's value is not shown here.
            data = [{"id": f"wsout-{i}", "type": "state-version-outputs",
                     "attributes": {"name": name, "sensitive": sensitive, "type": "string",
                                    "value": None if sensitive else value}}
                    for i, (name, (value, sensitive)) in enumerate(tfc.outputs.items())]  # fmt: skip
            answer = {"data": data}
            jsonschema.validate(answer, CONTRACT["state_version_outputs_response"])
            answer_json(self, 200, answer)
            return
        plan = re.fullmatch(r"/api/v2/plans/plan-([a-z0-9]+)/json-output", path)
        if method == "GET" and plan:
            # As HCP Terraform does: a redirect to a temporary URL of the JSON.
            self.send_response(307)
            self.send_header("location", f"{tfc.base}/archivist/plan-{plan.group(1)}.json")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        archived = re.fullmatch(r"/archivist/plan-([a-z0-9]+)\.json", path)
        if method == "GET" and archived:
            run = tfc.runs[f"run-{archived.group(1)}"]
            destroys = tfc.versions[run.version]
            changes = [{"address": f"aws_instance.web[{i}]", "change": {"actions": ["delete"]}}
                       for i in range(destroys)]  # fmt: skip
            changes.append({"address": "aws_lb.web", "change": {"actions": ["update"]}})
            answer_json(self, 200, {"format_version": "1.2", "resource_changes": changes})
            return
        self.refuse(404, "no such HCP Terraform endpoint")

    def _current_state(self) -> None:
        tfc = self.tfc
        applied = [r for r in tfc.runs.values() if tfc.state(r) == "applied"]
        writer = applied[-1].id if applied else "run-old0"
        looks = tfc.state_looks[writer] = tfc.state_looks.get(writer, 0) + 1
        answer = {"data": {
            "id": f"sv-{writer[4:]}", "type": "state-versions",
            "attributes": {"resources-processed": looks > tfc.processing_looks or not applied},
            "relationships": {"run": {"data": {"id": writer, "type": "runs"}}},
        }}  # fmt: skip
        jsonschema.validate(answer, CONTRACT["current_state_version_response"])
        answer_json(self, 200, answer)

    def _create(self, raw: bytes) -> None:
        tfc = self.tfc
        body = self.contract_body(raw, CONTRACT["create_run_request"], 422, "run")
        if body is None:
            return
        relationships = body["data"]["relationships"]
        version = relationships["configuration-version"]["data"]["id"]
        if version not in tfc.versions or relationships["workspace"]["data"]["id"] != WORKSPACE:
            answer_json(self, 404, {"errors": [{"status": "404", "title": "not found"}]})
            return
        run = Run(id=f"run-{len(tfc.runs) + 1:04d}x", version=version, started=time.monotonic(),
                  plan_seconds=tfc.plan_seconds, apply_seconds=tfc.apply_seconds,
                  plan_only=bool(body["data"].get("attributes", {}).get("plan-only")))  # fmt: skip
        tfc.runs[run.id] = run
        tfc.created.append(body)
        answer_json(self, 201, {"data": {"id": run.id, "type": "runs",
                                         "attributes": {"status": "pending"}}})  # fmt: skip

    def _action(self, run: Run, state: str, action: str, raw: bytes) -> None:
        if self.contract_body(raw, CONTRACT["action_request"], 422, "action") is None:
            return
        self.tfc.actions.append((run.id, action))
        allowed = {"apply": state == "planned", "discard": state == "planned",
                   "cancel": state in ("pending", "planning", "applying")}  # fmt: skip
        if not allowed[action]:
            answer_json(
                self, 409, {"errors": [{"status": "409", "title": "transition not allowed"}]}
            )
            return
        if action == "apply":
            run.applied_at = time.monotonic()
            run.status = "applying"
        else:
            run.status = "discarded" if action == "discard" else "canceled"
        self.send_response(202)
        self.send_header("content-length", "0")
        self.end_headers()
