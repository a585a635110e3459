"""proposal branches: the commits remediator pushed, so only its own branches are reused

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 21:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.store.models

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposal_branches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("remote", sa.String(length=500), nullable=False),
        sa.Column("branch", sa.String(length=255), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=False),
        sa.Column("pushed_at", app.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_proposal_branches_branch", "proposal_branches", ["remote", "branch", "commit"]
    )


def downgrade() -> None:
    op.drop_index("ix_proposal_branches_branch", table_name="proposal_branches")
    op.drop_table("proposal_branches")
