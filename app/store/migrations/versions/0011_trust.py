"""trust: an execution's mode and targets, the runbooks' breakers, the pause switch

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 21:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mode", sa.String(length=16), nullable=False, server_default="auto")
        )
        batch_op.add_column(sa.Column("mode_reason", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("targets", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("target_count", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.create_index(
            "ix_executions_budget", ["created_at", "mode", "target_count"], unique=False
        )
    op.create_table(
        "breakers",
        sa.Column("runbook", sa.String(length=100), nullable=False),
        sa.Column("opened_at", app.store.models.UTCDateTime(), nullable=True),
        sa.Column("failures", sa.JSON(), nullable=True),
        sa.Column("reset_at", app.store.models.UTCDateTime(), nullable=True),
        sa.Column("reset_by", sa.String(length=200), nullable=True),
        sa.Column("reset_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("runbook"),
    )
    op.create_table(
        "automation_pause",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("paused", sa.Boolean(), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("since", app.store.models.UTCDateTime(), nullable=True),
        sa.Column("until", app.store.models.UTCDateTime(), nullable=True),
        sa.Column("runbooks", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("automation_pause")
    op.drop_table("breakers")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_budget")
        for column in ("target_count", "targets", "mode_reason", "mode"):
            batch_op.drop_column(column)
