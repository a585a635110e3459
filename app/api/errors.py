"""The one place where errors become HTTP answers, all in one JSON shape:
`{"error": "<kind>", "detail": "<what was wrong>"}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import (
    BadRequest,
    BodyTimeout,
    Conflict,
    Forbidden,
    IdentityMismatch,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    ProofUnavailable,
    RemediatorError,
    RunbookError,
    StaleTimestamp,
    Unauthenticated,
    Unauthorized,
    UnknownSource,
    UnsupportedPayload,
    VersionError,
)

log = logging.getLogger("remediator.api")

STATUS: list[tuple[type[RemediatorError], int, str]] = [
    (StaleTimestamp, 401, "stale_timestamp"),
    (InvalidSignature, 401, "invalid_signature"),
    (Unauthenticated, 401, "unauthenticated"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (IdentityMismatch, 422, "identity_mismatch"),
    (ProofUnavailable, 503, "proof_unavailable"),
    (PayloadTooLarge, 413, "payload_too_large"),
    (BodyTimeout, 408, "body_timeout"),
    (UnsupportedPayload, 422, "unsupported_payload"),
    (VersionError, 422, "unknown_version"),
    (RunbookError, 422, "invalid_runbooks"),
    (UnknownSource, 404, "unknown_source"),
    (BadRequest, 400, "bad_request"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
]


class ErrorBody(BaseModel):
    """Every error this service answers, whatever the route."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "invalid_signature",
                                         "detail": "no signature matches the body"}]}
    )  # fmt: skip

    error: str = Field(description="What kind of error: a stable word to branch on.")
    detail: str = Field(description="What was wrong, for a human.")


ERROR_ANSWERS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in [
        (400, "A parameter this API cannot use."),
        (401, "Missing or wrong token, signature or timestamp."),
        (403, "The caller's role does not allow this call (forbidden, naming the role)."),
        (404, "No such thing."),
        (422, "The body or a parameter is not what this call takes."),
        (500, "A fault of the service (logged)."),
        (503, "The store cannot take a write now (storage_unavailable): retry."),
    ]
}


def error_body(kind: str, detail: object) -> dict[str, object]:
    return {"error": kind, "detail": detail}


def answer_for(exc: RemediatorError) -> tuple[int, str]:
    """The HTTP status and error kind this error is answered with."""
    for kind, status, name in STATUS:
        if isinstance(exc, kind):
            return status, name
    return 500, "internal"


def error_response(exc: RemediatorError) -> JSONResponse:
    """The answer to a refused call."""
    status, name = answer_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(name, str(exc)), status_code=status, headers=headers)


def fault_response(exc: Exception) -> JSONResponse:
    """The answer to a fault of the service: 503 with Retry-After when the store cannot
    take the write (a full or read-only disk, a database gone), so senders retry."""
    if isinstance(exc, SQLAlchemyError | OSError):
        body = error_body("storage_unavailable", "the store cannot take this write now")
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse(error_body("internal", "a fault of the service (logged)"), status_code=500)


class FaultsAsJson:
    """A fault of the service (a bug, a store that refuses writes) answered as the one
    error shape, `{"error", "detail"}`, on a connection that stays open: uvicorn would
    send plain text, and Starlette's last handler closes the connection after it. A
    store that cannot take the write (a full or read-only disk, a database gone) is 503
    `storage_unavailable` with Retry-After, so senders retry and nothing is lost."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:
                raise
            log.exception("fault answering %s %s", scope.get("method"), scope.get("path"))
            await fault_response(exc)(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_middleware(FaultsAsJson)

    @app.exception_handler(RemediatorError)
    async def _remediator_error(_: Request, exc: RemediatorError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("http_error", exc.detail), status_code=exc.status_code, headers=exc.headers
        )
