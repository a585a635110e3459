"""A running step's output, as it is produced: one attempt's chunks after a point (for
polling), and an execution's state changes and output as server-sent events. Both read
the store, so they work from any replica, whichever one runs the step. The token goes in
the `Authorization` header, never in the URL (where logs and proxies keep it)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from app.api.auth import Reader
from app.api.deps import ServicesDep
from app.api.live import Followers, LiveEvent
from app.errors import NotFound
from app.store.models import Execution
from app.store.output import output_after

router = APIRouter(prefix="/api", tags=["executions"])

# How often an idle stream says it is still there (proxies close silent connections).
HEARTBEAT_S = 15.0


class OutputChunkView(BaseModel):
    seq: int
    offset: int
    text: str
    at: datetime


class AttemptOutput(BaseModel):
    execution_id: str
    attempt: int
    step: int
    step_attempt: int
    chunks: list[OutputChunkView]
    # Whether more may come: the attempt is still running.
    running: bool
    # Ask again with `after=` this.
    after: int


def _attempts(execution: Execution) -> list[tuple[int, int, bool]]:
    """(step position, its attempt number, running) of each attempt the execution made,
    in order: the numbering of `/attempts/{n}`."""
    found: set[tuple[int, int, bool]] = set()
    for step in execution.steps:
        found |= {(step.position, a.number, False) for a in step.attempt_rows}
        if step.status == "running":
            number = step.attempts if step.remote is not None else step.attempts + 1
            found.add((step.position, number, True))
    return sorted(found)


@router.get("/executions/{execution_id}/attempts/{number}/output")
def attempt_output(
    execution_id: str,
    number: int,
    _: Reader,
    services: ServicesDep,
    after: Annotated[int, Query(ge=0, description="The last `seq` already read.")] = 0,
) -> AttemptOutput:
    """The output of the execution's `number`th attempt (counted over its steps, in
    order) after chunk `after`, as stored while it ran: masked, the oldest dropped past
    1 MiB (each chunk's `offset` says how much came before it)."""
    with services.db.read() as session:
        execution = session.get(Execution, execution_id)
        if execution is None:
            raise NotFound(f"no execution {execution_id}")
        attempts = _attempts(execution)
        if not 1 <= number <= len(attempts):
            raise NotFound(f"execution {execution_id} has {len(attempts)} attempt(s), not {number}")
        position, step_attempt, running = attempts[number - 1]
        chunks = output_after(session, execution_id, after, position=position,
                              attempt=step_attempt)  # fmt: skip
    return AttemptOutput(
        execution_id=execution_id, attempt=number, step=position + 1, step_attempt=step_attempt,
        chunks=[OutputChunkView(seq=c.id, offset=c.offset, text=c.text, at=c.at) for c in chunks],
        running=running, after=chunks[-1].id if chunks else after,
    )  # fmt: skip


@router.get(
    "/executions/{execution_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def execution_events(
    execution_id: str,
    _: Reader,
    request: Request,
    after: Annotated[int, Query(ge=0, description="Output after this chunk `seq`.")] = 0,
    last_event_id: Annotated[int | None, Header(ge=0)] = None,
) -> StreamingResponse:
    """Server-sent events: `state` (the execution's status and its steps'), `output` (a
    chunk of a running step's output; its event id is its `seq`, so a reconnecting
    client's `Last-Event-ID` resumes after it) and `end` once the execution is over."""
    followers: Followers = request.app.state.followers
    events = followers.follow(execution_id, last_event_id or after)
    first = await anext(events)  # a missing execution is a 404, not an empty stream

    async def stream() -> AsyncIterator[str]:
        yield _sse(first)
        async for event in _with_heartbeats(events):
            yield ": still here\n\n" if event is None else _sse(event)

    # Not stored by a browser, not buffered by a proxy (nginx reads this one).
    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


async def _with_heartbeats(events: AsyncIterator[LiveEvent]) -> AsyncIterator[LiveEvent | None]:
    pending = asyncio.ensure_future(anext(events))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_S)
            if not done:
                yield None
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            yield event
            pending = asyncio.ensure_future(anext(events))
    finally:
        pending.cancel()
        await events.aclose()  # type: ignore[attr-defined]


def _sse(event: LiveEvent) -> str:
    said = f"event: {event.kind}\n"
    if event.id is not None:
        said += f"id: {event.id}\n"
    return said + f"data: {json.dumps(event.data, ensure_ascii=False)}\n\n"
