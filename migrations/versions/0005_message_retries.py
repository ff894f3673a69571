"""message retries: each message's retry history and a retry count (the retry's version check)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Constant defaults: PostgreSQL (11+) keeps them in the catalogue and SQLite adds the columns
    # in place, so neither rewrites a large outbox.
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('history', sa.JSON(), server_default='[]', nullable=True))
        batch_op.add_column(sa.Column('retries', sa.SmallInteger(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('retries')
        batch_op.drop_column('history')
