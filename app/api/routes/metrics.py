"""GET /metrics: Prometheus text format (see app.metrics for what is measured)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.auth import bearer, require_read
from app.api.deps import ServicesDep

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={401: {"description": "No token."}, 403: {"description": "No role reads."}},
)
def metrics(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Prometheus metrics; needs a token with a role that reads (viewer is enough) unless
    `metrics_require_token: false`."""
    if services.settings.metrics_require_token:
        require_read(request, credentials)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
