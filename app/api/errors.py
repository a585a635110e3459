"""The one place where errors become HTTP answers, all in one JSON shape:
`{"error": "<kind>", "detail": "<what was wrong>"}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import (
    BadRequest,
    BodyTimeout,
    Conflict,
    InvalidSignature,
    NotFound,
    PayloadTooLarge,
    RemediatorError,
    RunbookError,
    StaleTimestamp,
    Unauthenticated,
    Unauthorized,
    UnknownSource,
    UnsupportedPayload,
    VersionError,
)

STATUS: list[tuple[type[RemediatorError], int, str]] = [
    (StaleTimestamp, 401, "stale_timestamp"),
    (InvalidSignature, 401, "invalid_signature"),
    (Unauthenticated, 401, "unauthenticated"),
    (Unauthorized, 401, "unauthorized"),
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
        (404, "No such thing."),
        (422, "The body or a parameter is not what this call takes."),
        (500, "A fault of the service (logged)."),
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


def install(app: FastAPI) -> None:
    @app.exception_handler(RemediatorError)
    async def _remediator_error(_: Request, exc: RemediatorError) -> JSONResponse:
        status, name = answer_for(exc)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        return JSONResponse(error_body(name, str(exc)), status_code=status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return JSONResponse(error_body("invalid_request", "; ".join(problems)), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body("http_error", exc.detail), status_code=exc.status_code, headers=exc.headers
        )
