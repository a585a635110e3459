"""`terraform:` in a runbook."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator

from app.fields.duration import Duration
from app.gitops.propose import Propose
from app.steps.base import StepSpec

# Any revision git names (a branch, tag, commit, `HEAD~1`, `v2.4.1^`, `main@{1}`): the
# executor resolves it with `rev-parse --verify --end-of-options <rev>^{commit}`, so it
# can only ever be read as a revision. No whitespace, NUL, or leading `-`.
REVERT_TO = r"^(previous|last_good|git:[^\s\x00-][^\s\x00]*)$"


class TerraformStep(StepSpec):
    """`terraform:` in a runbook. A payload may fill `var` values (as data, in a var
    file); the workdir and the version to revert to are runbook text."""

    workdir: str = Field(min_length=1, description="Relative to the terraform directory.")
    revert_to: str = Field(
        pattern=REVERT_TO,
        description="previous (before the last commit that touched workdir) | last_good "
        "(last recorded applied and healthy) | git:<revision> (a branch, tag, commit, "
        "HEAD~1, v2.4.1^, main@{1}).",
    )
    max_destroy: int = Field(
        default=0, ge=0, description="Refuse a plan that destroys or replaces more than this."
    )
    var: dict[str, Any] = Field(
        default_factory=dict, description="Terraform variables; values are templates."
    )
    timeout: Duration = 600.0
    lock_timeout: Duration = Field(
        default=60.0, description="How long to wait for a state lock someone else holds."
    )
    propose: Propose | None = Field(
        default=None,
        description="After the revert applies, propose it in git: a branch with one commit "
        "restoring the workdir's files to the applied version, on top of `base`, pushed to "
        "`remote` (runbook text only).",
    )

    @field_validator("var")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [name for name in value if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name)]
        if bad:
            raise ValueError(f"not Terraform variable names: {bad}")
        return value
