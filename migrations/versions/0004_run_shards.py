"""run shards: a run split into customer-id ranges executed by workers; claim order index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_shards',
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('shard_no', sa.Integer(), nullable=False),
    sa.Column('lower', sa.String(length=32), nullable=True),
    sa.Column('upper', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False),
    sa.Column('worker', sa.String(length=128), nullable=True),
    sa.Column('stats', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('run_id', 'shard_no')
    )
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_ids', sa.JSON(), nullable=True))
    with op.batch_alter_table('deposits', schema=None) as batch_op:
        batch_op.create_index('ix_deposits_customer_deposit', ['customer_id', 'deposit_id'], unique=False)
        batch_op.drop_index('ix_deposits_customer_id')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        # delivery claims take the oldest due first and, among equals, queue (id) order
        batch_op.drop_index('ix_messages_status_due')
        batch_op.create_index('ix_messages_status_due', ['status', 'due_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status_due')
        batch_op.create_index('ix_messages_status_due', ['status', 'due_at'], unique=False)
    with op.batch_alter_table('deposits', schema=None) as batch_op:
        batch_op.create_index('ix_deposits_customer_id', ['customer_id'], unique=False)
        batch_op.drop_index('ix_deposits_customer_deposit')
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('rule_ids')
    op.drop_table('run_shards')
