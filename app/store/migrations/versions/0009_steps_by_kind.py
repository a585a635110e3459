"""steps by kind: the steps of one kind that ended since a time, in one index walk

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:10:00
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.create_index("ix_steps_kind_finished", ["kind", "finished_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("steps", schema=None) as batch_op:
        batch_op.drop_index("ix_steps_kind_finished")
