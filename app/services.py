"""What the service is made of, built once at start: the configuration, the store, the
runbooks (swapped whole on reload), the executors each step kind builds, the notifiers,
and the events that wake the workers."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.config.settings import Settings
from app.errors import ConfigError, RemediatorError
from app.escalation.base import Notifier
from app.escalation.registry import build_notifiers
from app.executions.records import StoreRecords
from app.metrics import Metrics
from app.runbooks.loader import load_runbooks, runbook_files
from app.runbooks.matcher import Matcher
from app.runbooks.trust import TrustPolicy
from app.sources.registry import check_sources
from app.steps.base import Executor
from app.steps.registry import build_executors
from app.store.db import Database

log = logging.getLogger("remediator")
# Two reloads at once (SIGHUP and the API) must not finish out of order.
_reloading = threading.Lock()


def load_matcher(settings: Settings) -> Matcher:
    """The runbooks under `runbooks_dir`, checked against this configuration."""
    if not settings.runbooks_dir.is_dir():
        raise ConfigError(f"runbooks_dir {settings.runbooks_dir} is not a directory")
    known = set(settings.escalation.configured())
    # Taken before reading: a file written while it loads shows as a change next time.
    signature = runbooks_signature(settings)
    runbooks = load_runbooks(
        [settings.runbooks_dir],
        playbooks_dir=settings.playbooks_dir,
        terraform_dir=settings.terraform_dir,
        known_targets=known,
    )
    return Matcher(runbooks, signature=signature)


def reload_runbooks(services: Services) -> Matcher:
    """Load the runbooks again and swap the whole set in one assignment, so a webhook is
    matched against the old set or the new one, never half of each. A set that does not
    load raises RunbookError with every problem, and the old set stays in use."""
    with _reloading:
        try:
            matcher = load_matcher(services.settings)
        except RemediatorError as exc:
            services.metrics.reloads.labels("refused").inc()
            log.error("runbook reload refused, keeping %d runbook(s):\n%s",
                      len(services.matcher.runbooks), exc)  # fmt: skip
            raise
        services.matcher = matcher
    services.metrics.reloads.labels("ok").inc()
    log.info("runbooks reloaded: %d runbook(s)", len(matcher.runbooks))
    return matcher


def runbooks_signature(settings: Settings) -> tuple[tuple[str, int, int], ...]:
    """What changes when a runbook file is added, removed or written."""
    signature = []
    for path in runbook_files([settings.runbooks_dir]):
        with contextlib.suppress(OSError):  # removed between listing and stat
            stat = path.stat()
            signature.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(signature)


def build_services(settings: Settings) -> Services:
    for warning in [*check_sources(settings), *settings.deprecations]:
        log.warning(warning)
    unknown = set(settings.default_escalate) - set(settings.escalation.configured())
    if unknown:
        raise ConfigError(f"default_escalate names unconfigured target(s): {sorted(unknown)}")
    matcher = load_matcher(settings)
    db = Database(settings.database_url)
    db.upgrade()
    services = Services(
        settings=settings,
        db=db,
        matcher=matcher,
        executors=build_executors(settings, StoreRecords(db)),
        notifiers=build_notifiers(settings),
    )
    services.metrics.watch_database(db)
    services.metrics.runbooks.set_function(lambda: len(services.matcher.runbooks))
    return services


@dataclass
class Services:
    """What the flows need, built once at start-up. `matcher` is swapped whole on reload."""

    settings: Settings
    db: Database
    matcher: Matcher
    executors: Mapping[str, Executor]
    notifiers: Mapping[str, Notifier]
    stopping: threading.Event = field(default_factory=threading.Event)
    work_ready: threading.Event = field(default_factory=threading.Event)
    metrics: Metrics = field(default_factory=Metrics)
    # The configuration's secrets, masked wherever a step's output or an execution is
    # shown; computed once, not at every view and every recorded attempt.
    secrets: list[str] = field(init=False)
    # What the config says of trust (breaker default, pause mode, freezes, blast radius).
    trust: TrustPolicy = field(init=False)
    # The configured targets that keep something following the incident (a ticket): read
    # for every resolved incident, so computed once.
    follows_incident: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.secrets = self.settings.secret_values()
        self.trust = TrustPolicy.of(self.settings)
        self.follows_incident = frozenset(
            name for name, notifier in self.notifiers.items() if notifier.follows_incident
        )

    def escalate_to(self, runbook_targets: list[str]) -> list[str]:
        return list(runbook_targets or self.settings.default_escalate)
