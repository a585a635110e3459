"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 22:23:03.855543
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import app.store.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('delivery_id', sa.String(length=255), nullable=False),
    sa.Column('event_type', sa.String(length=128), nullable=False),
    sa.Column('received_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('incident_count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source', 'delivery_id', name='uq_events_delivery')
    )
    op.create_table('incidents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('fingerprint', sa.String(length=255), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('received_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['events.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_event_id'), ['event_id'], unique=False)
        batch_op.create_index('ix_incidents_fingerprint', ['source', 'fingerprint'], unique=False)

    op.create_table('executions',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('runbook', sa.String(length=100), nullable=False),
    sa.Column('runbook_spec', sa.JSON(), nullable=False),
    sa.Column('incident_id', sa.String(length=36), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('concurrency_key', sa.String(length=255), nullable=True),
    sa.Column('guard_key', sa.String(length=255), nullable=False),
    sa.Column('escalate_to', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('started_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=100), nullable=True),
    sa.Column('lease_expires_at', app.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_executions_concurrency_key'), ['concurrency_key'], unique=False)
        batch_op.create_index('ix_executions_guard', ['runbook', 'guard_key', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_executions_runbook'), ['runbook'], unique=False)
        batch_op.create_index('ix_executions_status_created', ['status', 'created_at'], unique=False)

    op.create_table('escalations',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('target', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_attempt_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('created_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', app.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.create_index('ix_escalations_due', ['status', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_escalations_execution_id'), ['execution_id'], unique=False)

    op.create_table('steps',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('execution_id', sa.String(length=36), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('rc', sa.Integer(), nullable=True),
    sa.Column('output_tail', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', app.store.models.UTCDateTime(), nullable=True),
    sa.Column('finished_at', app.store.models.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['execution_id'], ['executions.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('execution_id', 'position', name='uq_steps_position')
    )
    with op.batch_alter_table('steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_steps_execution_id'), ['execution_id'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('step_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('rc', sa.Integer(), nullable=True),
    sa.Column('output_tail', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', app.store.models.UTCDateTime(), nullable=False),
    sa.Column('finished_at', app.store.models.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['step_id'], ['steps.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_step_id'), ['step_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attempts_step_id'))

    op.drop_table('attempts')
    with op.batch_alter_table('steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_steps_execution_id'))

    op.drop_table('steps')
    with op.batch_alter_table('escalations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_escalations_execution_id'))
        batch_op.drop_index('ix_escalations_due')

    op.drop_table('escalations')
    with op.batch_alter_table('executions', schema=None) as batch_op:
        batch_op.drop_index('ix_executions_status_created')
        batch_op.drop_index(batch_op.f('ix_executions_runbook'))
        batch_op.drop_index(batch_op.f('ix_executions_incident_id'))
        batch_op.drop_index('ix_executions_guard')
        batch_op.drop_index(batch_op.f('ix_executions_concurrency_key'))

    op.drop_table('executions')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index('ix_incidents_fingerprint')
        batch_op.drop_index(batch_op.f('ix_incidents_event_id'))

    op.drop_table('incidents')
    op.drop_table('events')
