"""Dependencies shared by the routes."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.errors import Unauthorized
from app.flows import Services

bearer = HTTPBearer(auto_error=False, description="A token from `api_tokens`.")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def require_token(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    tokens = services.settings.api_tokens
    if not tokens:
        raise Unauthorized("no api_tokens are configured, so /api is closed")
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("missing `Authorization: Bearer <token>`")
    given = credentials.credentials.encode()
    if not any(hmac.compare_digest(given, t.get_secret_value().encode()) for t in tokens):
        raise Unauthorized("the API token is not valid")
