"""terraform: step findings and recorded good versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 08:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("steps", "attempts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("detail", sa.JSON(), nullable=True))
    op.create_table(
        "terraform_versions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("workdir", sa.String(length=255), nullable=False),
        sa.Column("commit", sa.String(length=64), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("execution_id", sa.String(length=36), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_terraform_versions_workdir", "terraform_versions", ["workdir", "recorded_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_terraform_versions_workdir", table_name="terraform_versions")
    op.drop_table("terraform_versions")
    for table in ("steps", "attempts"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("detail")
