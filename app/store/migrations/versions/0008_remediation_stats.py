"""remediation stats: when the incident began, what each execution cost, one covering index

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = ("status", "runbook", "created_at", "escalated", "remediation_s", "approval_wait_s")


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("incident_started_at", app.store.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("escalated", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("remediation_s", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("approval_wait_s", sa.Float(), nullable=True))
        batch_op.create_index("ix_executions_stats", list(COLUMNS), unique=False)
    # What the executions already stored say, so the stats cover them too.
    sqlite = op.get_bind().dialect.name == "sqlite"

    def seconds(later: str, earlier: str) -> str:
        if sqlite:
            return f"(julianday({later}) - julianday({earlier})) * 86400.0"
        return f"extract(epoch from {later} - {earlier})"

    op.execute(
        "UPDATE executions SET escalated = EXISTS (SELECT 1 FROM escalations WHERE "
        "escalations.execution_id = executions.id AND escalations.reason NOT IN "
        "('waiting_approval', 'remediated'))"
    )
    op.execute(
        f"UPDATE executions SET remediation_s = {seconds('finished_at', 'created_at')} "
        "WHERE status = 'succeeded' AND finished_at IS NOT NULL"
    )
    approvals = (
        "SELECT {} FROM actions WHERE actions.execution_id = executions.id "
        "AND actions.action = 'approve'"
    )
    first = f"({approvals.format('min(actions.at)')})"
    op.execute(
        f"UPDATE executions SET approval_wait_s = {seconds(first, 'created_at')} "
        f"WHERE EXISTS ({approvals.format('1')})"
    )

def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_stats")
        for name in ("approval_wait_s", "remediation_s", "escalated", "incident_started_at"):
            batch_op.drop_column(name)
