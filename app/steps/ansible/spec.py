"""`ansible:` in a runbook, as written and as rendered for one incident."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from app.fields.duration import Duration
from app.steps.base import StepSpec


class AnsibleStep(StepSpec):
    """`ansible:` in a runbook. A payload may fill `extra_vars` (as data, tagged
    `!unsafe`) and `limit` (inventory names only, each checked against the inventory)."""

    playbook: str = Field(min_length=1, description="Relative to the playbooks directory.")
    inventory: str | None = Field(default=None, description="Relative to the playbooks dir.")
    limit: str | None = Field(
        default=None,
        description="Template. Incident values may fill it only with inventory names, each "
        "of which must exist in the inventory; pattern syntax only as runbook text.",
    )
    extra_vars: dict[str, Any] = Field(default_factory=dict)
    timeout: Duration = 300.0
    forks: int | None = Field(
        default=None, ge=1, le=500,
        description="Hosts worked on at once; Ansible's own default (5) when unset, 50 when "
        "the runbook batches.",
    )  # fmt: skip
    check_mode: bool = Field(
        default=True,
        description="In a shadow run, run the playbook in check mode (--check --diff) against "
        "the real hosts; false for a playbook that is not check-safe: then it is only "
        "rendered.",
    )


class RenderedAnsibleStep(AnsibleStep):
    """An Ansible step rendered for one incident, as stored and run: `limit_names` are
    the names incident values put into `limit`, which the executor checks against the
    inventory before anything runs."""

    limit_names: list[str] = Field(default_factory=list)
