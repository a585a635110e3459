"""A running attempt's output, stored as it is produced, for whoever follows it (the page,
`remediator logs --follow`, the API's event stream), on any replica.

The step hands its output over as it comes (`StepInput.live`); a flusher writes what came
every FLUSH_S as one chunk. Each chunk is masked before it is written, like the tail kept
at the end: an end that could be the start of a secret is held back until the next flush
(or the end), so a secret split across two writes is masked whole. An attempt keeps the
last KEEP_CHARS of its output; the oldest chunks go, and each chunk's offset says how much
came before.
Live output is for people watching: a chunk the store could not take is logged and
left out, and the attempt's tail is recorded when it ends as always.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.redaction import redact
from app.services import Services
from app.store.models import Execution
from app.store.output import append_output
from app.store.views import masked_values

log = logging.getLogger("remediator.executions")

FLUSH_S = 0.25
KEEP_CHARS = 1024 * 1024


@dataclass(frozen=True)
class Attempt:
    """Whose output it is: one attempt of one step of one execution."""

    execution_id: str
    step_id: int
    position: int
    number: int


class LiveOutput:
    """One attempt's output as it comes: what may be written now is taken (masked) by
    whoever flushes it."""

    def __init__(self, attempt: Attempt, secrets: Iterable[str], offset: int = 0) -> None:
        self.attempt = attempt
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        # Where what comes next starts in the attempt's whole output.
        self.pending, self.offset = "", offset
        self.lock = threading.Lock()

    def __call__(self, text: str) -> None:
        with self.lock:
            self.pending += text

    def take(self, session: Session, *, final: bool = False) -> None:
        """Write what may be written now (all of it, when `final`) as one chunk, in
        `session`."""
        with self.lock:
            cut = len(self.pending) if final else self._cut(self.pending)
            if cut <= 0:
                return
            text, self.pending = self.pending[:cut], self.pending[cut:]
            offset, self.offset = self.offset, self.offset + cut
        attempt = self.attempt
        append_output(
            session, execution_id=attempt.execution_id, step_id=attempt.step_id,
            position=attempt.position, attempt=attempt.number, offset=offset,
            text=redact(text, self.secrets), at=datetime.now(UTC), keep_chars=KEEP_CHARS,
        )  # fmt: skip

    def flush(self, services: Services, *, final: bool = False) -> None:
        """`take` in a transaction of its own."""
        _flush(services, [self], final=final)

    def _cut(self, text: str) -> int:
        """How much of `text` may be written now: all of it but an end that could be the
        start of a secret (the rest of it not come yet), and never part of a secret (one
        that spans the cut waits whole)."""
        cut = len(text)
        for secret in self.secrets:
            for size in range(min(len(secret) - 1, len(text)), 0, -1):
                if text.endswith(secret[:size]):
                    cut = min(cut, len(text) - size)
                    break
        moved = True
        while moved:  # a cut moved back may now split another secret
            moved = False
            for secret in self.secrets:
                start = text.find(secret, max(0, cut - len(secret) + 1))
                if 0 <= start < cut < start + len(secret):
                    cut, moved = start, True
        return cut


def _flush(services: Services, outputs: Sequence[LiveOutput], *, final: bool) -> None:
    try:
        with services.db.write() as session:
            for output in outputs:
                output.take(session, final=final)
    except Exception as exc:  # noqa: BLE001 - live output must never fail the step
        log.warning("live output not stored (%s); each step's tail is kept at its end",
                    type(exc).__name__)  # fmt: skip


@contextmanager
def live_outputs(services: Services, attempts: Sequence[Attempt]) -> Iterator[list[LiveOutput]]:
    """Where each attempt's output goes while the block runs: stored every FLUSH_S by one
    thread (a batch of hundreds writes one transaction per flush, not hundreds), and all
    of it once the block ends."""
    with services.db.read() as session:
        outputs = []
        for attempt in attempts:
            execution = session.get_one(Execution, attempt.execution_id)
            outputs.append(LiveOutput(attempt, masked_values(execution, services.secrets)))
    done = threading.Event()

    def flush_often() -> None:
        while not done.wait(FLUSH_S):
            _flush(services, outputs, final=False)

    flusher = threading.Thread(target=flush_often, daemon=True, name="live-output")
    flusher.start()
    try:
        yield outputs
    finally:
        done.set()
        flusher.join()
        _flush(services, outputs, final=True)


@contextmanager
def live_output(services: Services, attempt: Attempt) -> Iterator[LiveOutput]:
    """Output of one attempt, stored as it is produced while the block runs, and all of
    it once the block ends."""
    with live_outputs(services, [attempt]) as [output]:
        yield output
