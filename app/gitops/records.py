"""What the git write-back and the kinds that use it keep in the service's store, handed
to them as this protocol (the store-backed one is `app.executions.records`), so nothing
here or in the step kinds imports the store."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from app.gitops.propose import Ledger
from app.gitops.versions import GoodVersion
from app.incident import Incident


@dataclass(frozen=True)
class EndedStep:
    """A step that succeeded, with what it recorded (`detail`)."""

    id: int
    execution_id: str
    detail: dict[str, Any] | None


class Records(Ledger, Protocol):
    def last_good(self, target: str) -> GoodVersion | None:
        """The newest version recorded as applied and healthy for `target` (a terraform
        workdir, an HCP Terraform workspace)."""

    def origin(self, execution_id: str) -> tuple[str, Incident] | None:
        """The runbook an execution runs and the incident that started it (None: unknown)."""

    def ended_steps(self, kind: str, since: datetime) -> list[EndedStep]:
        """The succeeded steps of `kind` that ended since `since`, newest first."""

    def set_step_detail(self, step_id: int, detail: dict[str, Any]) -> None:
        """Replace a step's findings (what it learnt since it ended)."""
