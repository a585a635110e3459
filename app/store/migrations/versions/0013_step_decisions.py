"""step decisions: a step's id, when, continue_on_failure and phase (on_failure); steps
rendered just before they run; the context they are rendered from

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("ref", sa.String(64), nullable=True))
        batch.add_column(sa.Column("when", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("continue_on_failure", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(
            sa.Column("phase", sa.String(16), nullable=False, server_default="steps")
        )
        batch.add_column(
            sa.Column("deferred", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("failed_as", sa.String(20), nullable=True))
        batch.add_column(sa.Column("context", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("context")
        batch.drop_column("failed_as")
    with op.batch_alter_table("steps") as batch:
        for column in ("deferred", "phase", "continue_on_failure", "when", "ref"):
            batch.drop_column(column)
