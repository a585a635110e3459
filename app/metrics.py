"""Prometheus metrics for `/metrics`.

Two kinds:
- counted in this process as things happen: webhook answers, signature failures,
  incidents, step attempt durations, runbook reloads. Per replica, reset at restart,
  as Prometheus counters expect.
- read from the database at scrape time: executions by runbook and status, the queue's
  depth and the age of its oldest execution, escalations by target and status. Work
  moves between replicas, so only the database knows these; every replica reports the
  same values (aggregate them with `max`, not `sum`).

Label values are bounded: a source is one of the registry's names (anything else is
`unknown`), so a caller cannot grow the series by inventing paths.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.sources.registry import SOURCES
from app.store.db import Database
from app.store.models import EscalationRow, Execution
from app.store.stats import REMEDIATION_BUCKETS, remediation_histograms
from app.store.trust import breakers, read_pause

log = logging.getLogger("remediator.metrics")

STEP_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


def source_label(source: str) -> str:
    return source if source in SOURCES or source == "manual" else "unknown"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.webhooks = Counter(
            "remediator_webhooks", "Webhook calls, by source and HTTP status answered.",
            ["source", "code"], registry=self.registry,
        )  # fmt: skip
        self.auth_failures = Counter(
            "remediator_webhook_auth_failures",
            "Webhook calls refused as unauthenticated, by source and reason "
            "(invalid_signature, stale_timestamp, unauthenticated).",
            ["source", "reason"], registry=self.registry,
        )  # fmt: skip
        self.incidents = Counter(
            "remediator_incidents", "Incidents received, by source and status.",
            ["source", "status"], registry=self.registry,
        )  # fmt: skip
        self.step_seconds = Histogram(
            "remediator_step_duration_seconds",
            "Duration of each step attempt, by kind and outcome.",
            ["kind", "status"], buckets=STEP_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.reloads = Counter(
            "remediator_runbook_reloads", "Runbook reloads, by outcome (ok, refused).",
            ["outcome"], registry=self.registry,
        )  # fmt: skip
        self.runbooks = Gauge(
            "remediator_runbooks_loaded", "Runbooks in use.", registry=self.registry
        )

    def watch_database(self, db: Database) -> None:
        self.registry.register(DatabaseCollector(db))


class DatabaseCollector(Collector):
    """What the shared database says at scrape time; a scrape during an outage reports
    `remediator_database_up 0` instead of failing."""

    def __init__(self, db: Database, now: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.db = db
        self.now = now

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("remediator_database_up", "1 when the database answered.")
        try:
            families = self._read()
        except SQLAlchemyError as exc:
            log.warning("metrics: the database did not answer: %s", exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        executions = GaugeMetricFamily(
            "remediator_executions",
            "Executions in the database, by runbook and status (final statuses only grow).",
            labels=["runbook", "status"],
        )
        escalations = GaugeMetricFamily(
            "remediator_escalations", "Escalations, by target and status.",
            labels=["target", "status"],
        )  # fmt: skip
        depth = GaugeMetricFamily("remediator_queue_depth", "Executions queued to run.")
        oldest = GaugeMetricFamily(
            "remediator_queue_oldest_age_seconds",
            "Age of the oldest queued execution (0 when none is queued).",
        )
        # From the database, not counted in each process: every replica reports the same
        # totals, and a restart does not reset them.
        remediated = HistogramMetricFamily(
            "remediator_time_to_remediate_seconds",
            "Succeeded executions, by runbook: seconds from the incident's start (the "
            "platform's, else its arrival) to the end of verification.",
            labels=["runbook"],
        )
        breaker_open = GaugeMetricFamily(
            "remediator_breaker_open",
            "1 while the runbook's circuit breaker is open (its runs are held back).",
            labels=["runbook"],
        )
        paused = GaugeMetricFamily(
            "remediator_automation_paused", "1 while automation is paused (some or all)."
        )
        with self.db.read() as session:
            for name, row in breakers(session).items():
                breaker_open.add_metric([name], 1 if row.opened_at is not None else 0)
            paused.add_metric([], 1 if read_pause(session, self.now()) is not None else 0)
            for runbook, cumulative, count, total in remediation_histograms(session):
                bounds = [
                    (f"{bound}", n)
                    for bound, n in zip(REMEDIATION_BUCKETS, cumulative, strict=True)
                ]
                remediated.add_metric([runbook], [*bounds, ("+Inf", count)], total)
            by_status = session.execute(
                select(Execution.runbook, Execution.status, func.count()).group_by(
                    Execution.runbook, Execution.status
                )
            ).all()
            by_target = session.execute(
                select(EscalationRow.target, EscalationRow.status, func.count()).group_by(
                    EscalationRow.target, EscalationRow.status
                )
            ).all()
            queued, first = session.execute(
                select(func.count(), func.min(Execution.created_at)).where(
                    Execution.status == "queued"
                )
            ).one()
        for runbook, status, count in by_status:
            executions.add_metric([runbook, status], count)
        for target, delivery, count in by_target:
            escalations.add_metric([target, delivery], count)
        depth.add_metric([], queued)
        age = 0.0
        if first is not None:
            first = first if first.tzinfo else first.replace(tzinfo=UTC)
            age = max(0.0, (self.now() - first).total_seconds())
        oldest.add_metric([], age)
        return [executions, escalations, depth, oldest, remediated, breaker_open, paused]
