"""Terraform versions known good: what `revert_to: last_good` reverts to. remediator
records one when an execution that applied it succeeds; a CI job that applied a version
and saw it healthy records it here."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import Reader, VersionRecorder, acting_as
from app.api.deps import ServicesDep
from app.gitops.versions import GitVersions
from app.store.versions import good_versions, record_good_version

router = APIRouter(prefix="/api/terraform", tags=["terraform"])


class GoodVersionRecord(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"workdir": "web", "ref": "v1.4.2"}]})

    workdir: str = Field(min_length=1, description="Relative to terraform_dir.")
    ref: str = Field(
        min_length=1, max_length=255, description="Branch, tag or commit; stored as its commit."
    )
    by: str | None = Field(
        default=None, max_length=200, json_schema_extra={"deprecated": True},
        description="Refused (422) unless it is the caller's own name: who recorded it is "
        "the caller's identity.",
    )  # fmt: skip


class GoodVersionView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    workdir: str
    commit: str
    subject: str | None = None
    recorded_by: str
    recorded_at: datetime
    execution_id: str | None


@router.post("/versions", status_code=201)
def record_version(
    body: GoodVersionRecord, identity: VersionRecorder, services: ServicesDep
) -> GoodVersionView:
    acting_as(identity, body.by)
    versions = GitVersions(services.settings.terraform_dir)
    version = versions.resolve(versions.workdir(body.workdir), f"git:{body.ref}", lambda _: None)
    with services.db.write() as session:
        row = record_good_version(
            session=session, workdir=body.workdir, commit=version.commit, by=identity.label,
            now=datetime.now(UTC),
        )  # fmt: skip
        session.flush()
        return GoodVersionView.model_validate(row).model_copy(update={"subject": version.subject})


@router.get("/versions")
def list_versions(
    _: Reader,
    services: ServicesDep,
    workdir: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[GoodVersionView]:
    """Newest first; the first is what `last_good` reverts to."""
    with services.db.read() as session:
        return [
            GoodVersionView.model_validate(row)
            for row in good_versions(session=session, workdir=workdir, limit=limit)
        ]
