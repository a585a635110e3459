"""POST /webhooks/{source}: answered 202 only once the event is durable.

The hottest path of the service, so it is a plain ASGI handler in front of the
framework: FastAPI's request handling (dependency solving, the response through every
middleware) was over half of a webhook's CPU time at saturation. Its answers are the
same as every route's (`errors.error_response`, `errors.fault_response`), and
`document` puts it in the OpenAPI description like any route.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.bodies import read_body
from app.api.errors import ErrorBody, answer_for, error_body, error_response, fault_response
from app.errors import RemediatorError
from app.ingest import Accepted, arrive, calls_out, delivered, now_s, submit_delivery
from app.logs import log_context
from app.metrics import source_label
from app.services import Services

log = logging.getLogger("remediator.api")

PREFIX = "/webhooks/"
PATH = PREFIX + "{source}"
# Bodies up to this size are verified, parsed and matched on the event loop: well under a
# millisecond, cheaper than the hop to a thread. Larger ones go to a thread so that one big
# body cannot hold up every other caller while it is parsed.
INLINE_BODY_BYTES = 64 * 1024


class WebhookAnswer(BaseModel):
    """What a stored delivery caused."""

    event_id: str = Field(description="The stored event: one per delivery.")
    executions: list[str] = Field(description="Executions this delivery started.")
    attached: list[str] = Field(description="Open executions its incidents were folded into.")
    duplicate: bool = Field(description="The delivery was seen before: nothing new started.")
    incidents: int | None = Field(None, description="Incidents in the delivery (not on 200).")
    ignored: str | None = Field(
        None, description="Why a call of the platform carried no incident (stored, nothing run)."
    )

    @classmethod
    def of(cls, accepted: Accepted) -> WebhookAnswer:
        answer = cls(event_id=accepted.event_id, executions=accepted.executions,
                     attached=accepted.attached, duplicate=accepted.duplicate)  # fmt: skip
        if not accepted.duplicate:
            answer.incidents, answer.ignored = accepted.incidents, accepted.ignored
        return answer


class WebhookIntake:
    """Serves POST /webhooks/{source}; every other request goes on to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        # `some-source` and `some_source` name one source: URLs often favour the dash.
        source = path[len(PREFIX) :].replace("-", "_")
        if scope["type"] != "http" or not path.startswith(PREFIX) or not source or "/" in source:
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            body = error_body("method_not_allowed", f"{PATH} takes POST only")
            await JSONResponse(body, 405, {"Allow": "POST"})(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        try:
            answer = await _answered(services, source, scope, receive)
        except ClientDisconnect:
            return  # nobody is left to answer
        await answer(scope, receive, send)


async def _answered(services: Services, source: str, scope: Scope, receive: Receive) -> Response:
    label = source_label(source)
    try:
        accepted = await _receive(services, source, scope, receive)
    except RemediatorError as exc:
        status, kind = answer_for(exc)
        services.metrics.webhooks.labels(label, str(status)).inc()
        if status == 401:
            services.metrics.auth_failures.labels(label, kind).inc()
        with log_context(source=source):
            log.warning("webhook refused (%d %s): %s", status, kind, exc)
        return error_response(exc)
    except ClientDisconnect:
        raise
    except Exception as exc:
        log.exception("fault answering POST %s%s", PREFIX, source)
        fault = fault_response(exc)
        services.metrics.webhooks.labels(label, str(fault.status_code)).inc()
        return fault
    status = 200 if accepted.duplicate else 202
    services.metrics.webhooks.labels(label, str(status)).inc()
    content = WebhookAnswer.of(accepted).model_dump_json(exclude_none=True).encode()
    return Response(content, status, media_type="application/json")


async def _receive(services: Services, source: str, scope: Scope, receive: Receive) -> Accepted:
    received = now_s()
    settings = services.settings
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    body = await read_body(receive, headers, settings.max_body_bytes, settings.body_timeout_s)
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    with log_context(source=source):
        if len(body) <= INLINE_BODY_BYTES and not calls_out(source):
            arrival = arrive(services, source, headers, body, received, query)
        else:
            arrival = await run_in_threadpool(
                arrive, services, source, headers, body, received, query
            )
        # Awaited, not waited for in a thread: a caller waiting for the commit holds no thread.
        stored = await asyncio.wrap_future(submit_delivery(services, arrival))
        return delivered(services, arrival, stored)


def _error(description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/ErrorBody"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _operation() -> dict[str, Any]:
    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/WebhookAnswer"}}}
    return {
        "tags": ["webhooks"],
        "summary": "An incident platform's webhook: verified, stored, matched to runbooks.",
        "operationId": "receive_webhook",
        "parameters": [
            {
                "name": "source",
                "in": "path",
                "required": True,
                "schema": {"type": "string"},
                "description": "A configured source (`sources:` in the configuration).",
            },
        ],  # fmt: skip
        "requestBody": {
            "required": True,
            "description": "The platform's own payload, signed as the source's `verify` says.",
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {
            "200": {
                "description": "A delivery already seen: nothing new is started.",
                "content": answer,
            },
            "202": {
                "description": "Stored durably; the executions it caused are listed. A "
                "call of the platform that is not about an incident is stored too and "
                "says why in `ignored`.",
                "content": answer,
            },
            "401": _error("Missing or wrong signature or token, or a stale timestamp."),
            "404": _error("Unknown or unconfigured source."),
            "405": _error("Not a POST."),
            "408": _error("The body did not arrive within body_timeout_s."),
            "413": _error("Body larger than max_body_bytes."),
            "422": _error("Not the platform's payload shape."),
            "500": _error("A fault of the service (logged)."),
            "503": _error("The store cannot take a write now (storage_unavailable): retry."),
        },  # fmt: skip
    }


def document(app: FastAPI) -> None:
    """The webhook in the app's OpenAPI description, beside the framework's routes."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            schema["paths"] = {PATH: {"post": _operation()}, **schema.get("paths", {})}
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schemas["WebhookAnswer"] = WebhookAnswer.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
