"""measuring effect: conversions, held_out messages (held_out_by) and the runs' held_out counts

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


# the effect report's columns on ix_messages_rule_created (as campaign_engine.store.models has them)
EFFECT_COLUMNS = ["id", "customer_id", "status", "held_out_by", "due_at", "sent_at"]

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'conversions',
        sa.Column('conversion_id', sa.String(length=160), nullable=False),
        sa.Column('customer_id', sa.String(length=32), nullable=False),
        sa.Column('type', sa.String(length=24), nullable=False),
        sa.Column('product_code', sa.String(length=32), nullable=True),
        sa.Column('amount', sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['customer_id'], ['customers.customer_id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('conversion_id'),
    )
    op.create_index('ix_conversions_customer_occurred', 'conversions', ['customer_id', 'occurred_at'])
    # Nullable without a default, and a constant default: neither rewrites a large outbox
    # (PostgreSQL 11+ keeps the default in the catalogue; SQLite adds the columns in place).
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_out_by', sa.String(length=16), nullable=True))
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_out', sa.Integer(), server_default='0', nullable=False))
    if op.get_bind().dialect.name == 'postgresql':
        # ix_messages_rule_created carries the effect report's columns, so the report reads the index
        # alone. Built beside the old one without blocking writes, then swapped in under its name.
        with op.get_context().autocommit_block():
            op.execute('CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_messages_rule_effect ON messages '
                       f'(rule_id, created_at) INCLUDE ({", ".join(EFFECT_COLUMNS)})')
            op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_messages_rule_created')
        op.execute('ALTER INDEX ix_messages_rule_effect RENAME TO ix_messages_rule_created')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        with op.get_context().autocommit_block():
            op.execute('CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_messages_rule_narrow ON messages '
                       '(rule_id, created_at)')
            op.execute('DROP INDEX CONCURRENTLY IF EXISTS ix_messages_rule_created')
        op.execute('ALTER INDEX ix_messages_rule_narrow RENAME TO ix_messages_rule_created')
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.drop_column('held_out')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('held_out_by')
    op.drop_index('ix_conversions_customer_occurred', table_name='conversions')
    op.drop_table('conversions')
