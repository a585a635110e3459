"""Following executions live: one poller per followed execution, shared by everyone
following it on this replica (fifty people on one busy run cost one read per interval),
reading the store, so it works whichever replica runs the step.

A follower gets the execution's state first, then each change of it and each output
chunk in order, then `end` once the execution is over and its last chunk was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from app.errors import NotFound
from app.executions.steps import STORE_AWAY
from app.store.db import Database
from app.store.models import FINAL, Execution
from app.store.output import output_after

POLL_S = 0.25
# How long a follower's poller waits before asking a store that was away again.
AWAY_S = 2.0
log = logging.getLogger("remediator.api")


@dataclass(frozen=True)
class LiveEvent:
    """One server-sent event: `state`, `output` (its `id` the chunk's) or `end`."""

    kind: str
    data: dict[str, Any]
    id: int | None = None


def _state(execution: Execution) -> dict[str, Any]:
    return {
        "status": execution.status,
        "steps": [
            {"step": s.position + 1, "status": s.status, "attempts": s.attempts}
            for s in execution.steps
        ],  # fmt: skip
    }


def _chunk(chunk: Any) -> LiveEvent:
    data = {"seq": chunk.id, "step": chunk.position + 1, "attempt": chunk.attempt,
            "offset": chunk.offset, "text": chunk.text, "at": chunk.at.isoformat()}  # fmt: skip
    return LiveEvent("output", data, chunk.id)


@dataclass
class _Look:
    state: dict[str, Any]
    chunks: list[LiveEvent]
    over: bool


def look(db: Database, execution_id: str, after: int) -> _Look:
    """The execution's state and its chunks after `after`, in one read."""
    with db.read() as session:
        execution = session.get(Execution, execution_id)
        if execution is None:
            raise NotFound(f"no execution {execution_id}")
        chunks = [_chunk(c) for c in output_after(session, execution_id, after)]
        return _Look(_state(execution), chunks, execution.status in FINAL)


@dataclass
class _Followed:
    followers: set[asyncio.Queue[LiveEvent | None]] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class Followers:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.followed: dict[str, _Followed] = {}

    async def follow(self, execution_id: str, after: int) -> AsyncIterator[LiveEvent]:
        """The execution's events from chunk `after` on, until it is over."""
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        followed = self.followed.setdefault(execution_id, _Followed())
        followed.followers.add(queue)  # before the backlog: nothing falls between
        try:
            first = await asyncio.to_thread(look, self.db, execution_id, after)
            yield LiveEvent("state", first.state)
            sent = after
            for chunk in first.chunks:
                sent = chunk.id or sent
                yield chunk
            if followed.task is None:
                followed.task = asyncio.create_task(self._poll(execution_id, sent))
            while (event := await queue.get()) is not None:
                if event.kind == "output" and (event.id or 0) <= sent:
                    continue  # already in the backlog
                sent = event.id or sent
                yield event
                if event.kind == "end":
                    return
        finally:
            followed.followers.discard(queue)
            if not followed.followers and self.followed.get(execution_id) is followed:
                del self.followed[execution_id]
                if followed.task is not None:
                    followed.task.cancel()

    async def _poll(self, execution_id: str, after: int) -> None:
        followed = self.followed[execution_id]
        state: dict[str, Any] | None = None
        try:
            while followed.followers:
                try:
                    seen = await asyncio.to_thread(look, self.db, execution_id, after)
                except STORE_AWAY as exc:
                    # The store is away: followers keep their stream (and its heartbeats)
                    # and get what they missed once it is back.
                    log.warning("following %s: the store is unavailable (%s)", execution_id,
                                type(exc).__name__)  # fmt: skip
                    await asyncio.sleep(AWAY_S)
                    continue
                events = list(seen.chunks)
                if seen.state != state:
                    state = seen.state
                    events.append(LiveEvent("state", seen.state))
                if seen.over and not seen.chunks:
                    events.append(LiveEvent("end", {"status": seen.state["status"]}))
                for event in events:
                    after = event.id or after
                    for queue in list(followed.followers):
                        queue.put_nowait(event)
                if seen.over and not seen.chunks:
                    return
                await asyncio.sleep(POLL_S)
        except NotFound:  # purged while followed
            for queue in list(followed.followers):
                queue.put_nowait(None)
        finally:
            with contextlib.suppress(KeyError):
                if self.followed[execution_id] is followed:
                    followed.task = None
