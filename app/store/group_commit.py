"""Group commit: deliveries that arrive together are written in one transaction.

A durable commit waits for the disk (SQLite's fsync, PostgreSQL's WAL flush), and SQLite
lets one writer at a time hold the file. With one transaction per webhook, concurrent
webhooks queued behind each other's fsync: ingest topped out near 300 requests/s with the
process mostly idle. Here one thread writes: it takes every job waiting, runs them in one
transaction, commits once, and only then answers each caller. When a job fails (a
duplicate delivery racing another replica, say), the batch is rolled back and written
again with each job in its own savepoint, so that job rolls back alone. Nothing is
acknowledged before it is durable, and a failed commit fails every job in it, so each
caller answers an error and the platform sends again.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

T = TypeVar("T")

# Enough to amortise one fsync over a burst; small enough that one batch's transaction
# stays short for the workers that also write.
MAX_BATCH = 64


@dataclass
class _Job:
    work: Callable[[Session], Any]
    locks: tuple[str, ...]
    recover: Callable[[Session, Exception], Any] | None
    future: Future[Any] = field(default_factory=Future)


class GroupCommit:
    """`submit(work, locks)` runs `work(session)` inside the next shared transaction and
    answers (the future resolves) once that transaction is committed. `locks`: names the
    transaction must hold (see `lock_names`), taken for the whole batch in sorted order.
    `recover(session, exc)`, if given, runs in a fresh savepoint when `work` failed, and
    its outcome is the job's: a rare conflict is handled there rather than by a second
    savepoint around every job."""

    def __init__(
        self,
        begin: Callable[[], Any],
        take_locks: Callable[[Session, Iterable[str]], None],
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._begin = begin
        self._take_locks = take_locks
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.batches = 0
        self.jobs = 0

    def submit(
        self,
        work: Callable[[Session], T],
        locks: Iterable[str] = (),
        recover: Callable[[Session, Exception], T] | None = None,
    ) -> Future[T]:
        self._ensure_started()
        job = _Job(work, tuple(locks), recover)
        self._jobs.put(job)
        return job.future

    def close(self) -> None:
        with self._start_lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._jobs.put(None)
            thread.join()

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._write_loop, name="group-commit", daemon=True
                )
                self._thread.start()

    def _write_loop(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < self._max_batch:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stopping = True
                    break
                batch.append(job)
            self._write(batch)
            if stopping:
                return

    def _write(self, batch: list[_Job]) -> None:
        try:
            try:
                outcomes = self._transaction(batch, isolated=False)
            except Exception:
                # A job failed (a duplicate delivery racing another replica, a conflict):
                # the whole transaction rolled back. Again, each job in its own savepoint,
                # so that one rolls back alone and the others are stored.
                outcomes = self._transaction(batch, isolated=True)
        except BaseException as exc:  # the commit failed: nothing in this batch is stored
            for job in batch:
                job.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.batches += 1
        self.jobs += len(batch)
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _transaction(self, batch: list[_Job], *, isolated: bool) -> list[tuple[bool, Any]]:
        """Every job of the batch in one transaction, committed. Not `isolated`: the jobs
        run as they are, and any failure rolls back all of them (raised); a savepoint per
        job costs two statements and a flush each, for the rare batch that needs it."""
        outcomes: list[tuple[bool, Any]] = []
        with self._begin() as session:
            self._take_locks(session, (name for job in batch for name in job.locks))
            for job in batch:
                if not isolated:
                    outcomes.append((True, job.work(session)))
                    continue
                outcome = _in_savepoint(session, job.work)
                if not outcome[0] and job.recover is not None:
                    outcome = _in_savepoint(session, _recovery(job.recover, outcome[1]))
                outcomes.append(outcome)
        return outcomes


def _in_savepoint(session: Session, work: Callable[[Session], Any]) -> tuple[bool, Any]:
    try:
        with session.begin_nested():
            return True, work(session)
    except Exception as exc:
        return False, exc


def _recovery(
    recover: Callable[[Session, Exception], Any], failure: Exception
) -> Callable[[Session], Any]:
    return lambda session: recover(session, failure)
