"""Who the caller is (the page shows it and hides what the roles cannot do), and the
audit log of who did what."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.auth import Admin, Caller
from app.api.deps import MAX_ROW_ID, QueryTime, ServicesDep
from app.api.pagination import link_next
from app.identity import PERMISSIONS, Permission, Role, Via
from app.store.audit import AuditOutcome, audit_page

router = APIRouter(prefix="/api", tags=["identity"])


class WhoAmI(BaseModel):
    name: str
    roles: list[Role]
    via: Via
    permissions: list[Permission] = Field(description="What the roles allow.")


@router.get("/whoami")
def whoami(identity: Caller) -> WhoAmI:
    """The identity this call's credential proves, with what its roles allow."""
    return WhoAmI(
        name=identity.name,
        roles=sorted(identity.roles),
        via=identity.via,
        permissions=[p for p in PERMISSIONS if identity.may(p)],
    )


class AuditView(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    identity: str | None = Field(description="None: the caller was not authenticated.")
    roles: str
    via: str | None
    method: str
    route: str
    target: str | None = Field(description="The route's path parameters (an execution id).")
    outcome: AuditOutcome
    status: int
    client: str | None


@router.get("/audit")
def list_audit(
    _: Admin,
    services: ServicesDep,
    request: Request,
    response: Response,
    identity: str | None = None,
    since: QueryTime | None = None,
    outcome: AuditOutcome | None = None,
    cursor: Annotated[
        int | None,
        Query(ge=1, le=MAX_ROW_ID, description="From the previous page's `Link: rel=next`."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditView]:
    """Newest first: every state-changing call and every refused one (401/403)."""
    with services.db.read() as session:
        rows = audit_page(
            session, identity=identity, since=since, outcome=outcome, before_id=cursor,
            limit=limit,
        )  # fmt: skip
        page = [AuditView.model_validate(row) for row in rows]
    if len(page) == limit:
        link_next(request, response, str(page[-1].id))
    return page
