"""delivery state and suppression list

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('suppression_list',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('address', sa.String(length=254), nullable=False),
    sa.Column('reason', sa.String(length=128), nullable=False),
    sa.Column('source', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('channel', 'address', name='uq_suppression_channel_address')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempts', sa.SmallInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claim_expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('provider', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('provider_message_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('suppressed_reason', sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f('ix_messages_provider_message_id'), ['provider_message_id'], unique=False)
        batch_op.create_index('ix_messages_status_due', ['status', 'due_at'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.create_index('ix_customers_mobile', ['mobile'], unique=False)
        batch_op.create_index('ix_customers_email', ['email'], unique=False)

    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scheduled', sa.Integer(), server_default='0', nullable=False))

    # Messages written before delivery existed are due from their creation.
    op.execute("UPDATE messages SET due_at = created_at WHERE due_at IS NULL")



def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_email')
        batch_op.drop_index('ix_customers_mobile')
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.drop_column('scheduled')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_status_due')
        batch_op.drop_index(batch_op.f('ix_messages_provider_message_id'))
        batch_op.drop_column('suppressed_reason')
        batch_op.drop_column('provider_message_id')
        batch_op.drop_column('provider')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('sent_at')
        batch_op.drop_column('claim_expires_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('attempts')
        batch_op.drop_column('due_at')

    op.drop_table('suppression_list')
