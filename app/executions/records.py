"""The store-backed `Records` the step kinds and the git write-back are handed: the one
place their needs meet the database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.gitops.records import EndedStep
from app.gitops.versions import GoodVersion
from app.incident import Incident
from app.store.db import Database
from app.store.records import ended_steps, execution_origin, set_step_detail
from app.store.versions import good_versions, pushed_here, record_pushed_branch


@dataclass(frozen=True)
class StoreRecords:
    """Shared by every replica: the ledger of proposal branches included."""

    db: Database

    def last_good(self, target: str) -> GoodVersion | None:
        with self.db.read() as session:
            newest = good_versions(session=session, workdir=target, limit=1)
        if not newest:
            return None
        return GoodVersion(newest[0].commit, newest[0].recorded_by, newest[0].recorded_at)

    def origin(self, execution_id: str) -> tuple[str, Incident] | None:
        with self.db.read() as session:
            return execution_origin(session=session, execution_id=execution_id)

    def ours(self, remote: str, branch: str, commit: str) -> bool:
        with self.db.read() as session:
            return pushed_here(session=session, remote=remote, branch=branch, commit=commit)

    def record(self, remote: str, branch: str, commit: str, execution_id: str) -> None:
        with self.db.write() as session:
            record_pushed_branch(session=session, remote=remote, branch=branch, commit=commit,
                                 execution_id=execution_id, now=datetime.now(UTC))  # fmt: skip

    def ended_steps(self, kind: str, since: datetime) -> list[EndedStep]:
        with self.db.read() as session:
            return [EndedStep(step.id, step.execution_id, step.detail)
                    for step in ended_steps(session=session, kind=kind, since=since)]  # fmt: skip

    def set_step_detail(self, step_id: int, detail: dict[str, Any]) -> None:
        with self.db.write() as session:
            set_step_detail(session=session, step_id=step_id, detail=detail)
