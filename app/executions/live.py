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
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from app.redaction import redact
from app.services import Services
from app.store.models import Execution
from app.store.output import append_output
from app.store.views import runbook_secrets

log = logging.getLogger("remediator.executions")

FLUSH_S = 0.25
KEEP_CHARS = 1024 * 1024


class LiveOutput:
    def __init__(
        self, services: Services, execution_id: str, step_id: int, position: int, attempt: int
    ) -> None:
        self.services, self.execution_id, self.step_id = services, execution_id, step_id
        self.position, self.attempt = position, attempt
        with services.db.read() as session:
            execution = session.get_one(Execution, execution_id)
            found = {*runbook_secrets(execution), *services.secrets}
        self.secrets = sorted(found, key=len, reverse=True)
        self.pending, self.offset = "", 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.flusher = threading.Thread(target=self._flush_often, daemon=True,
                                        name=f"live-{execution_id[:8]}")  # fmt: skip

    def __call__(self, text: str) -> None:
        with self.lock:
            self.pending += text

    def _flush_often(self) -> None:
        while not self.done.wait(FLUSH_S):
            self.flush()

    def flush(self, *, final: bool = False) -> None:
        """Write what may be written now (all of it, when `final`) as one chunk."""
        with self.lock:
            cut = len(self.pending) if final else self._cut(self.pending)
            if cut <= 0:
                return
            text, self.pending = self.pending[:cut], self.pending[cut:]
            offset, self.offset = self.offset, self.offset + cut
        try:
            with self.services.db.write() as session:
                append_output(
                    session, execution_id=self.execution_id, step_id=self.step_id,
                    position=self.position, attempt=self.attempt, offset=offset,
                    text=redact(text, self.secrets), at=datetime.now(UTC), keep_chars=KEEP_CHARS,
                )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - live output must never fail the step
            log.warning("live output of step %d not stored (%s); its tail is kept at its end",
                        self.position + 1, type(exc).__name__)  # fmt: skip

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

    def start(self) -> LiveOutput:
        self.flusher.start()
        return self

    def close(self) -> None:
        self.done.set()
        if self.flusher.is_alive():
            self.flusher.join()
        self.flush(final=True)


@contextmanager
def live_output(
    services: Services, execution_id: str, step_id: int, position: int, attempt: int
) -> Iterator[LiveOutput]:
    """Output of one attempt, stored as it is produced while the block runs, and all of
    it once the block ends."""
    live = LiveOutput(services, execution_id, step_id, position, attempt).start()
    try:
        yield live
    finally:
        live.close()
