"""POST /webhooks/{source}: answered 202 only once the event is durable."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import get_services
from app.api.errors import answer_for
from app.errors import BodyTimeout, PayloadTooLarge, RemediatorError
from app.flows import arrive, delivered, now_s, submit_delivery
from app.logs import log_context
from app.metrics import source_label
from app.services import Services

router = APIRouter(tags=["webhooks"])

# Bodies up to this size are verified, parsed and matched on the event loop: well under a
# millisecond, cheaper than the hop to a thread. Larger ones go to a thread so that one big
# body cannot hold up every other caller while it is parsed.
INLINE_BODY_BYTES = 64 * 1024


async def read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused as soon as it is larger than `limit` (before reading it all), or
    when it has not all arrived within `timeout_s`."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body of {declared} bytes is over the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"body is over the limit of {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTimeout(
            f"the body did not arrive within {timeout_s:g}s ({size} bytes received)"
        ) from None
    return b"".join(chunks)


@router.post(
    "/webhooks/{source}",
    status_code=202,
    responses={
        200: {"description": "A delivery already seen: nothing new is started."},
        202: {
            "description": "Stored durably; the executions it caused are listed. A call of "
            "the platform that is not about an incident is stored too and says why in `ignored`."
        },
        401: {"description": "Missing or wrong signature or token, or a stale timestamp."},
        404: {"description": "Unknown or unconfigured source."},
        408: {"description": "The body did not arrive within body_timeout_s."},
        413: {"description": "Body larger than max_body_bytes."},
        422: {"description": "Not the platform's payload shape."},
    },
)
async def receive(source: str, request: Request) -> JSONResponse:
    # Not a dependency: FastAPI's dependency solving cost ~10 % of a webhook's CPU time.
    services = get_services(request)
    label = source_label(source)
    try:
        answer = await _receive(source, request, services)
    except RemediatorError as exc:
        status, kind = answer_for(exc)
        services.metrics.webhooks.labels(label, str(status)).inc()
        if status == 401:
            services.metrics.auth_failures.labels(label, kind).inc()
        raise
    except Exception:
        services.metrics.webhooks.labels(label, "500").inc()
        raise
    services.metrics.webhooks.labels(label, str(answer.status_code)).inc()
    return answer


async def _receive(source: str, request: Request, services: Services) -> JSONResponse:
    received = now_s()
    settings = services.settings
    body = await read_body(request, settings.max_body_bytes, settings.body_timeout_s)
    headers = {k.lower(): v for k, v in request.headers.items()}
    with log_context(source=source):
        if len(body) <= INLINE_BODY_BYTES:
            arrival = arrive(services, source, headers, body, received)
        else:
            arrival = await run_in_threadpool(arrive, services, source, headers, body, received)
        # Awaited, not waited for in a thread: a caller waiting for the commit holds no thread.
        stored = await asyncio.wrap_future(submit_delivery(services, arrival))
        accepted = delivered(services, arrival, stored)
    content: dict[str, Any] = {
        "event_id": accepted.event_id,
        "executions": accepted.executions,
        "attached": accepted.attached,
    }
    if accepted.duplicate:
        return JSONResponse({**content, "duplicate": True}, status_code=200)
    content |= {"duplicate": False, "incidents": accepted.incidents}
    if accepted.ignored is not None:
        content["ignored"] = accepted.ignored
    return JSONResponse(content, status_code=202)
