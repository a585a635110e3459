"""output chunks: a running attempt's output, stored as it is produced

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "output_chunks",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("executions.id"), nullable=False),
        sa.Column("step_id", sa.Integer(), sa.ForeignKey("steps.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("at", app.store.models.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_output_chunks_execution", "output_chunks", ["execution_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_output_chunks_execution", table_name="output_chunks")
    op.drop_table("output_chunks")
