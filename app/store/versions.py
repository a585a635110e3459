"""Terraform versions recorded as applied and healthy, which `revert_to: last_good` uses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.store.models import Execution, GoodVersionRow, ProposalBranchRow


def record_good_version(
    *,
    session: Session,
    workdir: str,
    commit: str,
    by: str,
    now: datetime,
    execution_id: str | None = None,
) -> GoodVersionRow:
    row = GoodVersionRow(
        workdir=workdir, commit=commit, recorded_by=by, execution_id=execution_id, recorded_at=now
    )
    session.add(row)
    return row


def good_versions(*, session: Session, workdir: str, limit: int) -> list[GoodVersionRow]:
    query = (
        select(GoodVersionRow)
        .where(GoodVersionRow.workdir == workdir)
        .order_by(GoodVersionRow.recorded_at.desc(), GoodVersionRow.id.desc())
        .limit(limit)
    )
    return list(session.scalars(query))


def record_applied_versions(*, session: Session, execution: Execution, now: datetime) -> None:
    """The execution succeeded, verification included: each version its steps applied
    (or found already in place) is now known good. A step says so by its findings naming
    a `workdir` and a `version` with its `commit`, whatever its kind."""
    for step in execution.steps:
        detail = step.detail or {}
        if step.status == "succeeded" and "workdir" in detail and "version" in detail:
            record_good_version(
                session=session,
                workdir=str(detail["workdir"]),
                commit=str(detail["version"]["commit"]),
                by=f"remediator (execution {execution.id})",
                now=now,
                execution_id=execution.id,
            )


def record_pushed_branch(
    *, session: Session, remote: str, branch: str, commit: str, execution_id: str, now: datetime
) -> None:
    session.add(
        ProposalBranchRow(
            remote=remote, branch=branch, commit=commit, execution_id=execution_id, pushed_at=now
        )
    )


def pushed_here(*, session: Session, remote: str, branch: str, commit: str) -> bool:
    """Whether remediator pushed `commit` to `branch` on `remote`."""
    query = select(ProposalBranchRow.id).where(
        ProposalBranchRow.remote == remote,
        ProposalBranchRow.branch == branch,
        ProposalBranchRow.commit == commit,
    )
    return session.execute(query.limit(1)).first() is not None
