"""Database tables. Times are stored as naive UTC and read back as aware UTC."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator
from typing_extensions import override


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    @override
    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Event(Base):
    """One accepted webhook call."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "delivery_id", name="uq_events_delivery"),
        Index("ix_events_received", "received_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    source: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(255))
    event_type: Mapped[str] = mapped_column(String(128))
    received_at: Mapped[datetime]
    incident_count: Mapped[int] = mapped_column(Integer, default=0)
    # What the delivery's incidents share (a group's fields), stored once here.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)


class WriteProbe(Base):
    """One row that `/readyz` writes, to know the store still takes writes."""

    __tablename__ = "write_probe"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    written_at: Mapped[datetime | None]


class IncidentRow(Base):
    __tablename__ = "incidents"
    # The latest incident of a fingerprint is asked for on every delivery (its occurrence
    # and whether it is still firing): one index walk, however long the history.
    __table_args__ = (Index("ix_incidents_latest", "source", "fingerprint", "received_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    fingerprint: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    occurrence: Mapped[str] = mapped_column(String(255), default="")
    received_at: Mapped[datetime]
    # The incident less what the columns above hold (see `document`): a group of
    # thousands of small alerts stores thousands of rows, so each row stays lean.
    data: Mapped[dict[str, Any]]
    # Its delivery id is the event's: read from there, not stored again per alert.
    event: Mapped[Event] = relationship(lazy="joined")

    @property
    def document(self) -> dict[str, Any]:
        """The whole normalised incident, as it arrived."""
        whole: dict[str, Any] = {
            "source": self.source,
            "delivery_id": self.event.delivery_id,
            "fingerprint": self.fingerprint,
            "status": self.status,
            "occurrence": self.occurrence or self.fingerprint,
            "received_at": self.received_at.isoformat().replace("+00:00", "Z"),
            "service": None,
            "labels": {},
            "annotations": {},
            "url": None,
        }
        return whole | self.data


# The one list of an execution's statuses. Here, with the column, because the store's own
# partial indexes are built from them and the store imports nothing above it; what each
# status means and when it is entered is app/executions/lifecycle.py.
ExecutionStatus = Literal[
    "queued", "waiting_approval", "running", "verifying",
    "succeeded", "failed", "timed_out", "refused", "interrupted", "cancelled", "rejected",
    "shadowed", "diagnosed",
]  # fmt: skip
# How an execution runs: for real, after a human's yes, or as a dry run that changes
# nothing (each step says what it would have done). The strictest of the runbook's own,
# a pause, a freeze and an open breaker (app/executions/modes.py).
Mode = Literal["auto", "approve", "shadow"]
# Statuses in which an execution still holds its concurrency key / is open for its incident.
HOLDS_KEY: tuple[ExecutionStatus, ...] = ("running", "verifying")
OPEN: tuple[ExecutionStatus, ...] = ("queued", "waiting_approval", "running", "verifying")
FINAL: tuple[ExecutionStatus, ...] = (
    "succeeded", "failed", "timed_out", "refused", "interrupted", "cancelled", "rejected",
    "shadowed", "diagnosed",
)  # fmt: skip


STATS_INDEX = "ix_executions_stats"


def _status_in(statuses: tuple[str, ...]) -> Any:
    return text("status IN (" + ", ".join(f"'{s}'" for s in statuses) + ")")


class Execution(Base):
    """One runbook run for one incident."""

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_status_created", "status", "created_at"),
        Index("ix_executions_finished", "finished_at"),
        Index("ix_executions_guard", "runbook", "guard_key", "created_at"),
        Index("ix_executions_incident", "incident_key", "created_at"),
        # What the budgets spent in their window: runs (not shadows) since a time.
        Index("ix_executions_budget", "created_at", "mode", "target_count"),
        # Covers every column GET /api/stats and the time-to-remediate histogram read: a
        # window of 100,000 executions is read from this index, never from the table.
        Index(
            STATS_INDEX,
            "status",
            "runbook",
            "created_at",
            "escalated",
            "remediation_s",
            "approval_wait_s",
        ),  # fmt: skip  # fmt: skip
        # The database itself refuses a second running execution for one concurrency key
        # and a second open execution of a runbook for one incident, whatever races
        # between replicas the code above it might have missed.
        Index(
            "uq_executions_key_held",
            "concurrency_key",
            unique=True,
            sqlite_where=_status_in(HOLDS_KEY),
            postgresql_where=_status_in(HOLDS_KEY),
        ),
        Index(
            "uq_executions_open_per_incident",
            "runbook",
            "incident_key",
            unique=True,
            sqlite_where=_status_in(OPEN),
            postgresql_where=_status_in(OPEN),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    runbook: Mapped[str] = mapped_column(String(100), index=True)
    runbook_spec: Mapped[dict[str, Any]]
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    trigger: Mapped[str] = mapped_column(String(16), default="webhook")
    status: Mapped[ExecutionStatus] = mapped_column(String(20))
    concurrency_key: Mapped[str | None] = mapped_column(String(255), index=True)
    # What cooldown counts runs by: the concurrency key, else the incident's fingerprint.
    guard_key: Mapped[str] = mapped_column(String(255))
    # `source:fingerprint`: later webhooks of the same incident attach to an open execution,
    # and its resolution ends verification.
    incident_key: Mapped[str] = mapped_column(String(300), default="")
    # Which guard refused it: cooldown | rate_limit | budget | breaker (| max_destroy for
    # terraform).
    guard: Mapped[str | None] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    # Why this mode: the runbook's own, or which pause, freeze or breaker made it so.
    mode_reason: Mapped[str | None] = mapped_column(String(500))
    # What its steps act on (hosts, workdirs, workspaces, repositories), as the budgets
    # count them: a run spends len(targets) of each budget it falls under.
    targets: Mapped[list[Any] | None]
    target_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    escalate_to: Mapped[list[Any]]
    verify: Mapped[dict[str, Any] | None]
    # Approval deadline while waiting_approval; verification deadline while verifying;
    # a remote step's timeout while running unclaimed (followed on its engine).
    deadline_at: Mapped[datetime | None]
    # When it is next looked at: its HTTP check while verifying, its engine while running
    # unclaimed; while queued, the earliest it may be claimed (a batch's window).
    next_check_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    # When the platform says the incident began, if it said (else: created_at, its
    # arrival): time to remediate counts from here.
    incident_started_at: Mapped[datetime | None]
    # Kept as it happens, for the stats: a failure was escalated (a page, a failure
    # notice; not an approval or success notice), seconds from the incident's start to
    # success, seconds from arrival to approval.
    escalated: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    remediation_s: Mapped[float | None] = mapped_column(Float)
    approval_wait_s: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # How often a dead worker's claim on it was taken back (a cap stops a crash loop).
    recoveries: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A step failed and its runbook's `on_failure` steps are running: the status it ends
    # with once they have (the error is already written).
    failed_as: Mapped[ExecutionStatus | None] = mapped_column(String(20))
    # What templates saw when the incident arrived, for the steps decided (`when`) or
    # rendered (they read earlier steps' outputs) just before they run; else none.
    context: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]

    incident: Mapped[IncidentRow] = relationship(lazy="joined")
    steps: Mapped[list[StepRow]] = relationship(
        order_by="StepRow.position", cascade="all, delete-orphan", lazy="selectin"
    )
    escalations: Mapped[list[EscalationRow]] = relationship(
        order_by="EscalationRow.created_at", cascade="all, delete-orphan", lazy="selectin"
    )
    actions: Mapped[list[ActionRow]] = relationship(
        order_by="ActionRow.at", cascade="all, delete-orphan", lazy="selectin"
    )
    # Loaded only when read: a storm's execution gathers thousands, and loading them with
    # every execution made each alert of the storm slower than the last.
    attachments: Mapped[list[Attachment]] = relationship(
        order_by="Attachment.attached_at", cascade="all, delete-orphan", lazy="select"
    )


class StepRow(Base):
    __tablename__ = "steps"
    __table_args__ = (
        UniqueConstraint("execution_id", "position", name="uq_steps_position"),
        # A kind that looks after its ended steps (terraform: a revert proposed in git)
        # reads the recent ones of its kind, not the whole table.
        Index("ix_steps_kind_finished", "kind", "finished_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    position: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    idempotent: Mapped[bool] = mapped_column(Boolean, default=False)
    # The runbook's name for it (`id`): how later steps read it as `steps.<ref>`.
    ref: Mapped[str | None] = mapped_column(String(64))
    # Run only when this expression is true, decided just before it would run.
    when: Mapped[str | None] = mapped_column(Text)
    continue_on_failure: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    # `steps`, or `on_failure`: run only once a step failed.
    phase: Mapped[str] = mapped_column(String(16), default="steps", server_default="steps")
    # `spec` is as written, rendered just before the step runs (it reads earlier steps).
    deferred: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    rc: Mapped[int | None]
    output_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    # The last attempt's findings (terraform: version and plan summary).
    detail: Mapped[dict[str, Any] | None]
    # What the step found, by name (a play's set_stats, terraform's outputs): data.
    outputs: Mapped[dict[str, Any] | None]
    # A step launched on an engine and not yet ended there: what following it needs
    # (`handle`, `url`, `attempt`, `launched_at`). Written with the launch, so whoever
    # follows it after a restart re-attaches instead of launching again.
    remote: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    attempt_rows: Mapped[list[AttemptRow]] = relationship(
        order_by="AttemptRow.number", cascade="all, delete-orphan", lazy="selectin"
    )


class AttemptRow(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"), index=True)
    number: Mapped[int]
    status: Mapped[str] = mapped_column(String(20))
    rc: Mapped[int | None]
    output_tail: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime]


class OutputChunk(Base):
    """A piece of a running attempt's output, stored as it is produced (masked), so that
    anyone, on any replica, can follow it. Its `id` orders an execution's chunks."""

    __tablename__ = "output_chunks"
    __table_args__ = (Index("ix_output_chunks_execution", "execution_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"))
    step_id: Mapped[int] = mapped_column(ForeignKey("steps.id"))
    position: Mapped[int]  # the step's
    attempt: Mapped[int]  # the step's attempt number
    # Where the text starts in the attempt's whole output (characters): the oldest chunks
    # of a long output are dropped, and this says how much came before.
    offset: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class EscalationRow(Base):
    """A notification owed to a target; retried until delivered or given up."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    target: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    # A human asked for it to be sent again: its give-up window starts anew from here.
    redelivered_at: Mapped[datetime | None]
    # Parts of a multi-call delivery already done (a timeline note, then a page), so a
    # retry after a partial failure or a crash does not repeat them.
    progress: Mapped[list[Any]] = mapped_column(default=list, server_default=text("'[]'"))


class ActionRow(Base):
    """What a human did to an execution: approve, reject or cancel, who and why."""

    __tablename__ = "actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    # As shown: `alice`, `alice (via slack)`.
    by: Mapped[str] = mapped_column(String(200))
    # The verified identity's name, which four-eyes approval compares (None: recorded
    # before identities were verified).
    identity: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    """A later incident (same fingerprint) folded into an open execution instead of
    starting another one: an alert storm makes one remediation."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    execution_id: Mapped[str] = mapped_column(ForeignKey("executions.id"), index=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"))
    attached_at: Mapped[datetime] = mapped_column(default=utcnow)

    incident: Mapped[IncidentRow] = relationship(lazy="joined")


class GoodVersionRow(Base):
    """A commit of a terraform workdir recorded as applied and healthy: by remediator
    when an execution that applied it succeeds, or by CI through the API. `last_good`
    reverts to the newest one."""

    __tablename__ = "terraform_versions"
    __table_args__ = (Index("ix_terraform_versions_workdir", "workdir", "recorded_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workdir: Mapped[str] = mapped_column(String(255))
    commit: Mapped[str] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(200))
    execution_id: Mapped[str | None] = mapped_column(String(36))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditRow(Base):
    """A call that changed state, or one refused (401/403): who, what, with what outcome.
    Written before the caller hears the answer."""

    __tablename__ = "audit"
    __table_args__ = (Index("ix_audit_identity", "identity", "id"), Index("ix_audit_at", "at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    identity: Mapped[str | None] = mapped_column(String(200))  # None: not authenticated
    roles: Mapped[str] = mapped_column(String(100))
    via: Mapped[str | None] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    route: Mapped[str] = mapped_column(String(200))
    target: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int] = mapped_column(Integer)
    client: Mapped[str | None] = mapped_column(String(100))


class ProposalBranchRow(Base):
    """A commit remediator pushed to a proposal branch. A later revert adds to a branch
    only while the remote's tip is one of these: a branch someone else made or pushed to
    is never adopted."""

    __tablename__ = "proposal_branches"
    __table_args__ = (Index("ix_proposal_branches_branch", "remote", "branch", "commit"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    remote: Mapped[str] = mapped_column(String(500))  # its URL, without credentials
    branch: Mapped[str] = mapped_column(String(255))
    commit: Mapped[str] = mapped_column(String(64))
    execution_id: Mapped[str] = mapped_column(String(36))
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)


class BreakerRow(Base):
    """A runbook's circuit breaker, shared by every replica: open from `opened_at` until a
    human resets it (then `reset_*` say who and why, and failures before it no longer
    count)."""

    __tablename__ = "breakers"

    runbook: Mapped[str] = mapped_column(String(100), primary_key=True)
    opened_at: Mapped[datetime | None]
    # The failed executions that tripped it, for people and the escalation.
    failures: Mapped[list[Any] | None]
    reset_at: Mapped[datetime | None]
    reset_by: Mapped[str | None] = mapped_column(String(200))
    reset_reason: Mapped[str | None] = mapped_column(Text)


class PauseRow(Base):
    """The one pause switch (a single row, id 1): while `paused` (and before `until`), new
    executions of the runbooks it names (globs; None: all) run in the config's pause_mode."""

    __tablename__ = "automation_pause"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    by: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str | None] = mapped_column(Text)
    since: Mapped[datetime | None]
    until: Mapped[datetime | None]
    runbooks: Mapped[list[Any] | None]
