"""The runbook format. Unknown keys are errors: a typo must not silently disable a guard."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.incident import Severity
from app.runbooks.duration import Duration

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
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    def operators_set(self) -> set[str]:
        aliased = {"in_": "in"}
        return {aliased.get(name, name) for name in self.model_fields_set if name != "field"}

    @property
    def operator(self) -> str:
        return next(iter(self.operators_set()))


class Match(Strict):
    source: list[str] | None = None
    status: Literal["firing", "resolved"] | None = "firing"
    severity: list[Severity] | None = None
    service: list[str] | None = None
    all: list[Condition] = Field(default_factory=list)
    any: list[Condition] = Field(default_factory=list)
    none: list[Condition] = Field(default_factory=list)

    @field_validator("source", "severity", "service", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class AnsibleStep(Strict):
    playbook: str = Field(min_length=1, description="Relative to the playbooks directory.")
    inventory: str | None = Field(default=None, description="Relative to the playbooks dir.")
    limit: str | None = None
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration = 300.0


class Step(Strict):
    """One step: exactly one kind key (`ansible`)."""

    ansible: AnsibleStep
    idempotent: bool = Field(
        default=False,
        description="Safe to repeat: re-run automatically when the worker running it died "
        "or the service was stopped mid-step, instead of ending `interrupted`.",
    )

    @property
    def kind(self) -> str:
        return "ansible"


class Retry(Strict):
    attempts: int = Field(default=1, ge=1, le=20, description="Tries per step, the first included.")
    backoff: Duration = 10.0
    max_backoff: Duration = 300.0


class MaxRuns(Strict):
    count: int = Field(ge=1)
    per: Duration


class HttpCheck(Strict):
    url: str = Field(pattern=r"^https?://", description="Template, rendered per incident.")
    expect_status: int = Field(default=200, ge=100, le=599)
    within: Duration = 300.0
    interval: Duration = 10.0
    timeout: Duration = 5.0


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


class Runbook(Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,99}$")
    description: str = ""
    match: Match = Field(default_factory=Match)
    steps: list[Step] = Field(min_length=1)
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
    verify: Verify | None = None
    approval: bool = Field(default=False, description="Wait for a human to approve each run.")
    approval_timeout: Duration = Field(
        default=3600.0, description="Unapproved this long: timed_out and escalated."
    )
    escalate: list[str] = Field(default_factory=list)
    secret_vars: list[str] = Field(
        default_factory=list,
        description="extra_vars whose rendered values are secret: shown as *** in the API, "
        "in output tails and in escalations (values of 4 characters or more).",
    )

    @model_validator(mode="after")
    def _secret_vars_exist(self) -> Runbook:
        known = {name for step in self.steps for name in step.ansible.extra_vars}
        unknown = [name for name in self.secret_vars if name not in known]
        if unknown:
            raise ValueError(f"secret_vars {unknown} are not extra_vars of any step")
        return self


class RunbookFile(BaseModel):
    """Where a runbook came from, for error messages and the API."""

    model_config = ConfigDict(frozen=True)

    runbook: Runbook
    file: str
    line: int
