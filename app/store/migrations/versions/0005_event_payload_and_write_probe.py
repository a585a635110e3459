"""events: a grouped delivery's shared fields stored once; a row readiness writes to; indexes for retention; escalations' redelivered_at; incidents' occurrence

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 14:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payload", sa.JSON(), nullable=True))
    probe = op.create_table(
        "write_probe",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("written_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(probe, [{"id": 1, "written_at": None}])
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("redelivered_at", sa.DateTime(), nullable=True))
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("occurrence", sa.String(length=255), nullable=False, server_default="")
        )
        batch_op.drop_index("ix_incidents_fingerprint")
        batch_op.create_index("ix_incidents_latest", ["source", "fingerprint", "received_at"])
    # Retention prunes by age, in batches: without these each batch scans its table.
    op.create_index("ix_events_received", "events", ["received_at"])
    op.create_index("ix_executions_finished", "executions", ["finished_at"])
    op.create_index("ix_executions_incident", "executions", ["incident_key", "created_at"])


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_index("ix_incidents_latest")
        batch_op.create_index("ix_incidents_fingerprint", ["source", "fingerprint"])
        batch_op.drop_column("occurrence")
    with op.batch_alter_table("escalations", schema=None) as batch_op:
        batch_op.drop_column("redelivered_at")
    op.drop_index("ix_executions_incident", "executions")
    op.drop_index("ix_executions_finished", "executions")
    op.drop_index("ix_events_received", "events")
    op.drop_table("write_probe")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("payload")
