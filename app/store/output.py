"""An attempt's output as it is produced: chunks appended by the one writer of an
execution's output (the worker running its step), read after a chunk's id by anyone
following it, on any replica. An attempt keeps the tail of its output: its oldest chunks
are dropped once it is over the bound, and each chunk's offset says how much came
before it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.store.models import OutputChunk


def append_output(
    session: Session,
    *,
    execution_id: str,
    step_id: int,
    position: int,
    attempt: int,
    offset: int,
    text: str,
    at: datetime,
    keep_chars: int,
) -> None:
    session.add(OutputChunk(execution_id=execution_id, step_id=step_id, position=position,
                            attempt=attempt, offset=offset, text=text, at=at))  # fmt: skip
    cut = offset + len(text) - keep_chars
    if cut > 0:
        session.execute(
            delete(OutputChunk).where(
                OutputChunk.step_id == step_id,
                OutputChunk.attempt == attempt,
                # Whole chunks, before the last `keep_chars`: at least that much is kept.
                OutputChunk.offset + func.length(OutputChunk.text) <= cut,
            )
        )


def output_after(
    session: Session,
    execution_id: str,
    after: int,
    *,
    position: int | None = None,
    attempt: int | None = None,
    limit: int = 1000,
) -> list[OutputChunk]:
    """The execution's chunks after chunk `after`, oldest first; of one attempt, with
    `position` and `attempt`."""
    query = select(OutputChunk).where(
        OutputChunk.execution_id == execution_id, OutputChunk.id > after
    )
    if position is not None and attempt is not None:
        query = query.where(OutputChunk.position == position, OutputChunk.attempt == attempt)
    return list(session.scalars(query.order_by(OutputChunk.id).limit(limit)))
