"""In-process workers: threads that claim executions and escalations from the database.

Threads (not asyncio) because each step blocks on a child process; the database is the
queue, so a worker that dies loses nothing: its lease expires and `recover_expired`
takes the work back.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import httpx
from sqlalchemy.exc import IntegrityError

from app.errors import RemediatorError
from app.executions.batch import Member, claim_partners
from app.executions.escalate import deliver_escalation
from app.executions.follow import follow_remote
from app.executions.run import execution_logged, recover_expired, run_execution
from app.executions.steps import Stop, release
from app.executions.verify import expire_deadlines, run_http_checks
from app.services import Services, reload_runbooks, runbooks_signature
from app.steps.base import LooksAfter
from app.store.queue import (
    cancel_requested,
    claim_next_execution,
    earliest_window,
    renew_leases,
)
from app.store.retention import prune

log = logging.getLogger("remediator.worker")


class WorkerPool:
    def __init__(self, services: Services, *, http: httpx.Client | None = None) -> None:
        self.services = services
        self.http = http or httpx.Client(follow_redirects=False)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.threads: list[threading.Thread] = []
        self.running: dict[str, tuple[str, Stop]] = {}  # execution id → (worker id, stop)
        self.lock = threading.Lock()
        self.shutdown = threading.Event()  # the grace period is over: stop every step
        # Held by the one idle execution worker that looks in the database each poll
        # interval; the other idle ones wait to be woken (see `_wait_for_work`).
        self.polling = threading.Lock()

    def start(self) -> None:
        settings = self.services.settings
        for index in range(settings.workers):
            self._spawn(self._execution_loop, f"executor-{index}")
        # One escalator per target, so a target that hangs or answers slowly delays only
        # its own escalations; one more for rows whose target is no longer configured.
        targets = list(self.services.notifiers)
        for target in targets:
            self._spawn(functools.partial(self._escalation_loop, target=target),
                        f"escalator-{target}")  # fmt: skip
        self._spawn(functools.partial(self._escalation_loop, besides=targets), "escalator")
        self._spawn(self._housekeeping_loop, "housekeeper")
        self._spawn(self._retention_loop, "retention")
        self._spawn(self._verification_loop, "verifier")
        self._spawn(self._follow_loop, "follower")
        carers = [e for e in self.services.executors.values() if isinstance(e, LooksAfter)]
        if carers:
            self._spawn(functools.partial(self._after_care_loop, carers), "after-care")
        if settings.runbooks_watch_s > 0:
            self._spawn(self._runbook_watch_loop, "runbook-watcher")

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=f"remediator-{name}", daemon=True)
        thread.start()
        self.threads.append(thread)

    @property
    def alive(self) -> bool:
        return bool(self.threads) and all(t.is_alive() for t in self.threads)

    def stop(self) -> None:
        """Stop claiming; let running steps finish within the grace period, then stop them:
        an idempotent step goes back to the queue for another replica, any other ends
        `interrupted` and is escalated."""
        services = self.services
        services.stopping.set()
        services.work_ready.set()
        grace = services.settings.shutdown_grace_s
        deadline = threading.Event()
        timer = threading.Timer(grace, deadline.set)
        timer.start()
        for thread in self.threads:
            while thread.is_alive() and not deadline.is_set():
                thread.join(timeout=0.2)
        timer.cancel()
        if any(t.is_alive() for t in self.threads):
            log.warning("grace period over: stopping running steps")
            self.shutdown.set()
            for thread in self.threads:
                thread.join(timeout=15)
        self.http.close()

    def _execution_loop(self) -> None:
        services = self.services
        worker_id = f"{self.name}:{threading.current_thread().name}"
        settings = services.settings
        while not services.stopping.is_set():
            try:
                claimed = self._claim(worker_id)
                if claimed is None:
                    self._wait_for_work()
                    continue
                # There may be more: the idle workers look too (one of them polls after).
                services.work_ready.set()
                execution_id, partners = claimed
                stop = self._hold(worker_id, execution_id)
                for partner in partners or ():
                    partner.stop = self._hold(worker_id, partner.execution_id)
                try:
                    with execution_logged(services, execution_id):
                        log.info("execution claimed by %s", worker_id)
                        status = run_execution(services, execution_id, stop, partners)
                        log.info("execution left %s", status)
                finally:
                    with self.lock:
                        for held in [execution_id, *(p.execution_id for p in partners or ())]:
                            self.running.pop(held, None)
                services.work_ready.set()  # an escalation or a key may be free now
            except Exception:
                log.exception("execution worker error; retrying")
                services.stopping.wait(settings.poll_interval_s)

    def _wait_for_work(self) -> None:
        """One idle worker polls the database each interval; the others wait until woken
        (work queued on this replica, a claim made, a step ended), or for ten intervals at
        most. An idle replica then asks the database once per interval, not once per
        worker: with four workers at a 0.1 s interval that was 14 % of a core, idle."""
        services = self.services
        if self.polling.acquire(blocking=False):
            try:
                services.work_ready.wait(self._idle_s())
            finally:
                self.polling.release()
        else:
            services.work_ready.wait(10 * services.settings.poll_interval_s)
        services.work_ready.clear()

    def _idle_s(self) -> float:
        """How long to wait for work: a poll interval, or less when a batch's window
        ends sooner (its members are claimable then, and nothing else says so)."""
        services, now = self.services, datetime.now(UTC)
        with services.db.read() as session:
            window = earliest_window(session=session, now=now)
        wait_s = services.settings.poll_interval_s
        if window is not None:
            wait_s = min(wait_s, (window - now).total_seconds())
        return max(0.01, wait_s)

    def _hold(self, worker_id: str, execution_id: str) -> Stop:
        """Registered as ours: the housekeeper renews its lease and delivers its cancel."""
        stop = Stop(shutdown=self.shutdown)
        with self.lock:
            self.running[execution_id] = (worker_id, stop)
        return stop

    def _claim(self, worker_id: str) -> tuple[str, list[Member] | None] | None:
        """The next execution, and those claimed to run its next step with it."""
        services = self.services
        for _ in range(5):
            try:
                with services.db.write() as session:
                    claimed = claim_next_execution(
                        session=session, worker_id=worker_id, now=datetime.now(UTC),
                        lease_s=services.settings.lease_s,
                    )  # fmt: skip
                    if claimed is None:
                        return None
                    if services.stopping.is_set():
                        release(claimed)  # shutdown began while we claimed it
                        return None
                    return claimed.id, claim_partners(session, services, claimed, worker_id)
            except IntegrityError:
                # Another replica took an execution with the same concurrency key at the
                # same moment; the database kept only one. Look again.
                continue
        return None

    def _escalation_loop(self, target: str | None = None, besides: Sequence[str] = ()) -> None:
        services = self.services
        while not services.stopping.is_set():
            try:
                if not deliver_escalation(services, self.http, target=target, besides=besides):
                    services.stopping.wait(min(services.settings.poll_interval_s, 1.0))
            except Exception:
                log.exception("escalation worker error; retrying")
                services.stopping.wait(services.settings.poll_interval_s)

    def _housekeeping_loop(self) -> None:
        """Cancels asked for on any replica reach our steps within a poll interval; leases
        are renewed, and dead workers' claims recovered, every third of a lease."""
        services = self.services
        settings = services.settings
        renew_every = max(0.2, settings.lease_s / 3)
        renewed = 0.0
        while not services.stopping.wait(min(settings.poll_interval_s, renew_every)):
            try:
                with self.lock:
                    running = dict(self.running)
                with services.db.read() as session:
                    for execution_id in cancel_requested(session=session,
                                                         execution_ids=list(running)):  # fmt: skip
                        running[execution_id][1].cancelled.set()
                if time.monotonic() - renewed < renew_every:
                    continue
                renewed = time.monotonic()
                by_worker: dict[str, list[str]] = {}
                for execution_id, (worker_id, _) in running.items():
                    by_worker.setdefault(worker_id, []).append(execution_id)
                with services.db.write() as session:
                    for worker_id, ids in by_worker.items():
                        renew_leases(
                            session=session, worker_id=worker_id, execution_ids=ids,
                            now=datetime.now(UTC), lease_s=settings.lease_s,
                        )  # fmt: skip
                recover_expired(services)
            except Exception:
                log.exception("housekeeping error; retrying")

    def _retention_loop(self) -> None:
        services = self.services
        settings = services.settings
        # The first pass soon after start (not at once: start-up has enough to do).
        wait_s = min(60.0, settings.retention_interval_s)
        while not services.stopping.wait(wait_s):
            wait_s = settings.retention_interval_s
            try:
                pruned = prune(
                    db=services.db, now=datetime.now(UTC), keep_days=settings.retention_days,
                    dedup_days=settings.dedup_retention_days,
                )  # fmt: skip
                if any(vars(pruned).values()):
                    log.info("retention pruned %s", vars(pruned))
            except Exception:
                log.exception("retention error; trying again next time")

    def _verification_loop(self) -> None:
        services = self.services
        while not services.stopping.wait(services.settings.poll_interval_s):
            try:
                expire_deadlines(services)
                run_http_checks(services, self.http)
            except Exception:
                log.exception("verification error; retrying")

    def _follow_loop(self) -> None:
        """Remote steps are looked at here, however many: no worker waits on them."""
        services = self.services
        while not services.stopping.is_set():
            try:
                if not follow_remote(services):
                    services.stopping.wait(min(services.settings.poll_interval_s, 0.5))
            except Exception:
                log.exception("follower error; retrying")
                services.stopping.wait(services.settings.poll_interval_s)

    def _after_care_loop(self, carers: Sequence[LooksAfter]) -> None:
        """Executors that look after their ended steps, each at its own pace."""
        services = self.services
        due = [time.monotonic() + min(5.0, c.look_after_interval_s) for c in carers]
        while not services.stopping.wait(max(0.05, min(due) - time.monotonic())):
            for index, carer in enumerate(carers):
                if time.monotonic() < due[index]:
                    continue
                try:
                    carer.look_after()
                except Exception:
                    log.exception("%s: looking after ended steps failed; trying again later",
                                  type(carer).__name__)  # fmt: skip
                due[index] = time.monotonic() + carer.look_after_interval_s

    def _runbook_watch_loop(self) -> None:
        """Reload when the files differ from those the runbooks in use were read from. A
        set that failed to load is not tried again until the files change again."""
        services = self.services
        refused = None
        while not services.stopping.wait(services.settings.runbooks_watch_s):
            current = runbooks_signature(services.settings)
            if current in (services.matcher.signature, refused):
                continue
            try:
                reload_runbooks(services)
            except RemediatorError:  # logged with every problem; the old set stays
                refused = current
