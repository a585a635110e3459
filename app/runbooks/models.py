"""The runbook format. Unknown keys are errors: a typo must not silently disable a guard."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import Any, Literal

import re2
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializeAsAny,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, InitErrorDetails

from app.config.sections import Address
from app.config.trust import Breaker, Budget, Mode
from app.fields.duration import Duration
from app.fields.sinks import url_template_problem
from app.identity import IDENTITY_NAME, ROLES, Identity, roles_granting
from app.incident import Severity
from app.steps.base import MaxErrors, StepKind
from app.steps.registry import step_kinds

# RE2 runs in time linear in the text: a runbook pattern such as `^(\w+\s?)*$` cannot
# stall the service on a crafted title, as Python's backtracking `re` does. It has no
# backreferences or lookaround, which are refused when the runbook loads.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the loader reports the problem, with file:line

OPERATORS = ("equals", "in", "contains", "matches", "exists")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Condition(Strict):
    """One test on a field of the incident (`labels.x`, `title`, `raw.<payload path>`)."""

    field: str = Field(min_length=1)
    equals: Any = None
    in_: list[Any] | None = Field(default=None, alias="in")
    contains: Any = None
    matches: str | None = None
    exists: bool | None = None

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        given = [op for op in OPERATORS if op in self.operators_set()]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(OPERATORS)} (got {len(given)})")
        return self

    @field_validator("matches")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re2.compile(value, _RE2_OPTIONS)
            except re2.error as exc:
                why = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
                raise ValueError(
                    f"not a valid regular expression for RE2 ({why}); runbook patterns run "
                    "in linear time, so backreferences and lookaround are not available"
                ) from exc
        return value

    def operators_set(self) -> set[str]:
        aliased = {"in_": "in"}
        return {aliased.get(name, name) for name in self.model_fields_set if name != "field"}

    # Cached: matching asks for these on every incident, for every candidate runbook.
    @cached_property
    def operator(self) -> str:
        return next(iter(self.operators_set()))

    @cached_property
    def pattern(self) -> Any:
        """The compiled `matches` expression (an RE2 pattern: `.search(text)`)."""
        return re2.compile(self.matches or "", _RE2_OPTIONS)


OnPhase = Literal["opened", "updated"]


def _opened_only() -> list[OnPhase]:
    return ["opened"]


class Match(Strict):
    source: list[str] | None = None
    status: Literal["firing", "resolved"] | None = "firing"
    on: list[OnPhase] = Field(
        default_factory=_opened_only,
        min_length=1,
        description="Which events of a firing incident's occurrence run this runbook: "
        "`opened` (a new alert, trigger or reopen) by default; `updated` (acknowledged, "
        "escalated, priority changed, a repeat) only when listed. Resolved incidents are "
        "matched by `status`.",
    )
    severity: list[Severity] | None = None
    service: list[str] | None = None
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)
    none: list[Condition] = Field(default_factory=list)

    @field_validator("source", "severity", "service", "on", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


# A step's `id`: how `when`s and later templates name it (`steps.<id>.outputs`).
STEP_ID = r"^[a-z][a-z0-9_]{0,63}$"
# The keys a step may have besides its one kind key.
_STEP_KEYS = ("idempotent", "id", "when", "continue_on_failure")


class Step(BaseModel):
    """One step: exactly one kind key (`ansible`, `terraform`) with that kind's spec, and
    what the runbook says of it (`id`, `when`, `idempotent`, `continue_on_failure`)."""

    model_config = ConfigDict(frozen=True)

    kind: str
    spec: SerializeAsAny[BaseModel]
    id: str | None = Field(
        default=None,
        pattern=STEP_ID,
        description="A name for the step, unique in the runbook: later `when`s and templates "
        "read what it found as `steps.<id>.outputs` and how it ended as `steps.<id>.status`.",
    )
    when: str | None = Field(
        default=None,
        min_length=1,
        description="Run the step only when this is true: a bare expression as in Ansible's "
        "`when:` (no `{{ }}`), over `incident`, `runbook` and earlier steps' "
        "`steps.<id>.status` and `steps.<id>.outputs`, which must yield true or false. "
        "False: the step is `skipped`, with the values the expression saw.",
    )
    idempotent: bool = Field(
        default=False,
        description="Safe to repeat: re-run automatically when the worker running it died "
        "or the service was stopped mid-step, instead of ending `interrupted`.",
    )
    continue_on_failure: bool = Field(
        default=False,
        description="A failure of this step is recorded and the runbook goes on (a later "
        "`when` may read `steps.<id>.status`), instead of ending the execution.",
    )

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, value: Any) -> Any:
        if not isinstance(value, dict) or "spec" in value:
            return value
        kinds = step_kinds()
        given = [key for key in value if key in kinds]
        unknown = [key for key in value if key not in kinds and key not in _STEP_KEYS]
        if unknown:
            raise ValueError(f"unknown key(s) {unknown}: a step is one of {', '.join(kinds)}")
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(kinds)} (got {len(given)})")
        [kind] = given
        try:
            spec = kinds[kind].spec_model.model_validate(value[kind])
        except ValidationError as exc:
            # Its errors at their place in the file (`steps[0].ansible.timeot`), so the
            # loader can name the line.
            raise ValidationError.from_exception_data(exc.title, [
                InitErrorDetails(type=e["type"], loc=(kind, *e["loc"]), input=e["input"],
                                 ctx=e.get("ctx", {}))
                for e in exc.errors()
            ]) from None  # fmt: skip
        own = {key: value[key] for key in _STEP_KEYS if key in value}
        return {"kind": kind, "spec": spec} | own

    @field_validator("when")
    @classmethod
    def _bare(cls, value: str | None) -> str | None:
        if value is not None and ("{{" in value or "{%" in value):
            raise ValueError("when is a bare expression, as in Ansible: write it without {{ }}")
        return value

    @model_serializer(mode="wrap")
    def _as_written(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        dumped = handler(self)
        written = {self.kind: dumped["spec"], "idempotent": self.idempotent}
        for key in ("id", "when"):
            if dumped.get(key) is not None:
                written[key] = dumped[key]
        if self.continue_on_failure:
            written["continue_on_failure"] = True
        return written

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        # As written: one optional key per kind (exactly one given) and the step's own keys.
        fields: dict[str, Any] = {
            name: (kind.spec_model | None, None) for name, kind in step_kinds().items()
        }
        own: dict[str, Any] = {
            key: (cls.model_fields[key].annotation, cls.model_fields[key]) for key in _STEP_KEYS
        }
        written = create_model(
            "Step", __config__=ConfigDict(extra="forbid"), __doc__=cls.__doc__, **own, **fields
        )
        return handler(written.__pydantic_core_schema__)

    @property
    def kind_of(self) -> StepKind[Any]:
        return step_kinds()[self.kind]

    @property
    def variables(self) -> Mapping[str, Any]:
        """The values the step passes on (Ansible's extra_vars, Terraform's var, ...)."""
        return self.kind_of.variables(self.spec)


class Diagnose(Strict):
    """Read-only steps run first, when the incident opens, whose findings are posted to
    the incident once (and carried in every later escalation and success notice)."""

    steps: list[Step] = Field(
        min_length=1,
        description="Steps that look and change nothing (the runbook's author sees to that: "
        "they run in shadow and approve modes too, before any approval). A failed one is "
        "recorded and the runbook goes on; later steps read them as `steps.<id>`.",
    )
    post_to: list[str] = Field(
        default_factory=list,
        description="Targets the findings are posted to, once: a note on the incident it "
        "came from (PagerDuty, Opsgenie), a timeline event (Rootly), a chat message (Slack, "
        "Teams), a `remediation.diagnosed` call (webhook). Delivered like escalations.",
    )
    headline: str | None = Field(
        default=None,
        description="Template for the findings' first line; it sees `incident`, `runbook` "
        "and the diagnose steps as `steps.<id>` (default: the runbook's name and what each "
        "step found).",
    )


class Retry(Strict):
    attempts: int = Field(default=1, ge=1, le=20, description="Tries per step, the first included.")
    backoff: Duration = 10.0
    max_backoff: Duration = 300.0

    def delay(self, failed: int) -> float:
        """The wait after the `failed`-th failed attempt: `backoff`, doubled each time, at
        most `max_backoff`."""
        return float(min(self.max_backoff, self.backoff * 2 ** (failed - 1)))


class Batch(Strict):
    """Run many incidents' step as one: queued executions of the runbook whose step is
    the same but for its `limit` are claimed together and run as one play over all their
    hosts (a step kind that cannot batch runs each alone)."""

    window: Duration = Field(
        default=2.0, description="How long the first of a batch waits for others to join."
    )
    max: int = Field(default=200, ge=2, le=1000, description="Executions in one batch.")
    max_errors: int | str | None = Field(
        default=None,
        description="End the batched play early once this many hosts failed (`5`, or `10%` "
        "of its hosts), like AWS Systems Manager's MaxErrors; members not yet reached end "
        "`refused` naming it.",
    )

    @field_validator("max_errors")
    @classmethod
    def _count_or_percent(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.fullmatch(r"\d{1,3}(\.\d+)?%", value):
            raise ValueError("max_errors is a number of hosts or a percentage like 10%")
        if isinstance(value, int) and value < 1:
            raise ValueError("max_errors must be at least 1")
        return value

    def errors_allowed(self) -> MaxErrors | None:
        if self.max_errors is None:
            return None
        if isinstance(self.max_errors, int):
            return MaxErrors(count=self.max_errors)
        return MaxErrors(percent=float(self.max_errors.rstrip("%")))


class MaxRuns(Strict):
    count: int = Field(ge=1)
    per: Duration


class HttpCheck(Strict):
    url: str = Field(
        pattern=r"^https?://",
        description="Template, rendered per incident: incident values may fill path segments "
        "and query values (percent-encoded), never the scheme, host or port.",
    )
    expect_status: int = Field(default=200, ge=100, le=599)

    within: Duration = 300.0
    interval: Duration = 10.0
    timeout: Duration = 5.0

    @field_validator("url")
    @classmethod
    def _host_is_runbook_text(cls, value: str) -> str:
        problem = url_template_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Verify(Strict):
    """How to tell that the remediation worked; exactly one of the two."""

    resolved_within: Duration | None = Field(
        default=None, description="Succeeded only when the incident resolves within this."
    )
    http: HttpCheck | None = None

    @model_validator(mode="after")
    def _one_check(self) -> Verify:
        if (self.resolved_within is None) == (self.http is None):
            raise ValueError("give exactly one of resolved_within, http")
        return self


# A role entry, or an identity's name.
_APPROVER = re.compile(rf"^role:[a-z]+$|{IDENTITY_NAME}")


def _or_boolean(schema: dict[str, Any]) -> None:
    """The short form `approval: true` in the published schema too."""
    whole = dict(schema)
    schema.clear()
    schema["anyOf"] = [{"type": "boolean"}, whole]


class Approval(Strict):
    """Four eyes: who must say yes before a run. `approval: true` is the short form:
    required, anyone whose role may operate (responder, admin), never whoever asked."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, json_schema_extra=_or_boolean
    )

    required: bool = True
    approvers: list[str] = Field(
        default_factory=list,
        description="Identity names and `role:<role>` entries; empty: any responder or admin.",
    )
    allow_self_approval: bool = Field(
        default=False, description="May whoever started (asked for) a run also approve it."
    )

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"required": value} if isinstance(value, bool) else value

    @field_validator("approvers")
    @classmethod
    def _approvers_known(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not _APPROVER.fullmatch(entry):
                raise ValueError(f"approver {entry!r} is neither a name nor role:<role>")
            if entry.startswith("role:") and entry[5:] not in ROLES:
                raise ValueError(f"approver {entry!r}: roles are {', '.join(ROLES)}")
        return value

    def permits(self, identity: Identity) -> bool:
        """Whether the runbook names `identity` (by name or role) as one who may approve."""
        if not self.approvers:
            return identity.may("operate")
        return identity.name in self.approvers or any(
            f"role:{role}" in self.approvers for role in identity.roles
        )

    def who(self) -> str:
        """Who may approve, in words, for the approval notice and a refusal."""
        if not self.approvers:
            return f"anyone with role {' or '.join(roles_granting('operate'))}"
        names = [e for e in self.approvers if not e.startswith("role:")]
        roles = [e[5:] for e in self.approvers if e.startswith("role:")]
        return " or ".join(names + ([f"anyone with role {' or '.join(roles)}"] if roles else []))


class Runbook(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    description: str = ""
    mode: Mode | None = Field(
        default=None,
        description="auto: runs as it matches; approve: waits for a human's yes (four eyes, "
        "`approval` says who); shadow: every step dry-runs (Ansible check mode, a Terraform "
        "plan) and nothing changes. Default auto, or approve with `approval: true`. A pause, "
        "a freeze or an open breaker can make it stricter, never looser.",
    )
    match: Match = Field(default_factory=Match)
    diagnose: Diagnose | None = Field(
        default=None,
        description="Look first: read-only steps whose findings are posted to the incident "
        "before anything acts (a runbook may be diagnose-only, with no `steps`).",
    )
    steps: list[Step] = Field(default_factory=list, validate_default=True)
    on_failure: list[Step] = Field(
        default_factory=list,
        description="Steps run after a step fails (or times out, or is refused by its own "
        "guard): a rollback, a cleanup, a diagnostic for the escalation. They see "
        "`steps.<id>` of the run so far, each runs whatever the one before it did, and the "
        "execution stays failed, its escalation carrying their results.",
    )
    retry: Retry = Field(default_factory=Retry)
    concurrency: str | None = Field(
        default=None, description="Template; one run at a time per rendered key."
    )
    cooldown: Duration | None = Field(
        default=None, description="A second run for the same key within this is refused."
    )
    max_runs: MaxRuns | None = Field(
        default=None, description="At most `count` runs of this runbook (all keys) per `per`."
    )
    batch: Batch | None = Field(
        default=None,
        description="Run the step of many incidents as one (Ansible: one play over the union "
        "of their `limit` hosts); each execution keeps its own result, retries, verify and "
        "escalation.",
    )
    verify: Verify | None = None
    approval: Approval = Field(
        default_factory=lambda: Approval(required=False),
        description="Wait for a human to approve each run: `true`, or who may (four eyes).",
    )
    approval_timeout: Duration = Field(
        default=3600.0, description="Unapproved this long: timed_out and escalated."
    )
    breaker: Breaker | None = Field(
        default=None,
        description="Stop itself after repeated failures (default: the config's `breaker`, "
        "3 within 1h, then approve); `{enabled: false}` for none.",
    )
    budget: Budget | None = Field(
        default=None,
        description="At most `targets` targets (hosts, workdirs, workspaces) per `per` for "
        "this runbook; past it a run is refused before anything runs.",
    )
    escalate: list[str] = Field(default_factory=list)
    recipients: list[Address] = Field(
        default_factory=list,
        description="Addresses (name@domain) told beside a target's own, by targets that "
        "write to people (email): the team that owns this runbook, say.",
    )
    notify_on_shadow: list[str] = Field(
        default_factory=list,
        description="Targets told what a shadow run would have done (a chat channel, say).",
    )
    notify_on_success: list[str] = Field(
        default_factory=list,
        description="Targets told once the remediation succeeded (after `verify` passed): a "
        "note on the incident it came from (PagerDuty, Rootly, Opsgenie), a message to chat "
        "(Slack, Teams) or a `remediation.succeeded` call (webhook). Delivered like "
        "escalations: durable, retried, once.",
    )
    resolve_on_success: bool = Field(
        default=False,
        description="Also resolve the incident through its platform's API (PagerDuty, "
        "Rootly: the incident it came from; Opsgenie: the alert it came from, or the one "
        "remediator opened; PagerDuty: a page remediator raised), for the targets in "
        "`notify_on_success`, unless the platform resolved it first.",
    )
    secret_vars: list[str] = Field(
        default_factory=list,
        description="extra_vars (or terraform var) whose rendered values are secret: shown "
        "as *** in the API, in output tails and in escalations (values of 4 characters or "
        "more).",
    )

    @property
    def own_mode(self) -> Mode:
        """The runbook's own mode: `mode`, else approve when `approval` is required."""
        if self.mode is not None:
            return self.mode
        return "approve" if self.approval.required else "auto"

    @model_validator(mode="after")
    def _resolve_needs_a_target(self) -> Runbook:
        if self.resolve_on_success and not self.notify_on_success:
            raise ValueError("resolve_on_success needs the platform's target in notify_on_success")
        return self

    def all_steps(self) -> Iterator[tuple[str, Step]]:
        """Every step with where it is written (`steps[0]`, `on_failure[1]`), in the
        order they may run."""
        if self.diagnose is not None:
            for index, step in enumerate(self.diagnose.steps):
                yield f"diagnose.steps[{index}]", step
        for key in ("steps", "on_failure"):
            for index, step in enumerate(getattr(self, key)):
                yield f"{key}[{index}]", step

    @field_validator("steps")
    @classmethod
    def _something_to_run(cls, value: list[Step], info: ValidationInfo) -> list[Step]:
        # `diagnose` is declared before `steps`, so it is known here (when it was valid).
        if not value and info.data.get("diagnose") is None:
            raise ValueError("give steps, or diagnose (a runbook that only looks), or both")
        return value

    @model_validator(mode="after")
    def _failures_need_steps(self) -> Runbook:
        if self.on_failure and not self.steps:
            raise ValueError("on_failure runs when one of the steps fails: give steps")
        return self

    @model_validator(mode="after")
    def _ids_unique(self) -> Runbook:
        seen: dict[str, str] = {}
        for where, step in self.all_steps():
            if step.id is not None and step.id in seen:
                raise ValueError(f"{where}: step id {step.id!r} is already {seen[step.id]}'s")
            if step.id is not None:
                seen[step.id] = where
        return self

    @model_validator(mode="after")
    def _secret_vars_exist(self) -> Runbook:
        known = {name for _, step in self.all_steps() for name in step.variables}
        unknown = [name for name in self.secret_vars if name not in known]
        if unknown:
            raise ValueError(f"secret_vars {unknown} are not extra_vars or var of any step")
        return self


class RunbookFile(BaseModel):
    """Where a runbook came from, for error messages and the API."""

    model_config = ConfigDict(frozen=True)

    runbook: Runbook
    file: str
    line: int
