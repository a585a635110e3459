"""GET /metrics: Prometheus text format (see app.metrics for what is measured)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import ServicesDep, bearer, require_token

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response, responses={401: {"description": "No token."}})
def metrics(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Response:
    """Prometheus metrics; needs an API token unless `metrics_require_token: false`."""
    if services.settings.metrics_require_token:
        require_token(services, credentials)
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
