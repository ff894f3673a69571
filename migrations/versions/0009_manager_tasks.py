"""relationship-manager tasks: managers, tasks, the capacity reservations, keys bound to a manager,
and the runs' task counts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'managers',
        sa.Column('manager_id', sa.String(length=32), nullable=False),
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('branch', sa.String(length=64), nullable=True),
        sa.Column('mobile', sa.String(length=20), nullable=True),
        sa.Column('email', sa.String(length=254), nullable=True),
        sa.Column('daily_call_capacity', sa.SmallInteger(), nullable=False),
        sa.Column('daily_visit_capacity', sa.SmallInteger(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint('manager_id'),
    )
    op.create_index('ix_managers_branch', 'managers', ['branch'])
    op.create_table(
        'tasks',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('dedupe_key', sa.String(length=255), nullable=False),
        sa.Column('run_id', BigId, nullable=False),
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('rule_version', sa.Integer(), nullable=True),
        sa.Column('category', sa.String(length=16), nullable=False),
        sa.Column('priority', sa.Integer(), nullable=False),
        sa.Column('customer_id', sa.String(length=32), nullable=False),
        sa.Column('subject_type', sa.String(length=16), nullable=False),
        sa.Column('subject_id', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=8), nullable=False),
        sa.Column('manager_id', sa.String(length=32), nullable=True),
        sa.Column('branch', sa.String(length=64), nullable=True),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('completed_by', sa.String(length=64), nullable=True),
        sa.Column('outcome', sa.String(length=16), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('next_contact_on', sa.Date(), nullable=True),
        sa.Column('talking_points', sa.Text(), nullable=True),
        sa.Column('alerts', sa.SmallInteger(), nullable=False),
        sa.Column('last_alert_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('overdue_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('consent_source', sa.String(length=128), nullable=True),
        sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['campaign_runs.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('dedupe_key'),
    )
    op.create_index('ix_tasks_run_id', 'tasks', ['run_id'])
    op.create_index('ix_tasks_manager_status_due', 'tasks', ['manager_id', 'status', 'due_at'])
    op.create_index('ix_tasks_branch_status_due', 'tasks', ['branch', 'status', 'due_at'])
    op.create_index('ix_tasks_customer_type_status', 'tasks', ['customer_id', 'type', 'status'])
    op.create_index('ix_tasks_rule_created', 'tasks', ['rule_id', 'created_at'])
    op.create_index('ix_tasks_status_due', 'tasks', ['status', 'due_at'])
    op.create_table(
        'manager_load',
        sa.Column('owner', sa.String(length=100), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('type', sa.String(length=8), nullable=False),
        sa.Column('planned', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('owner', 'day', 'type'),
    )
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('manager_id', sa.String(length=32), nullable=True))
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tasks', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('merged', sa.Integer(), server_default='0', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.drop_column('merged')
        batch_op.drop_column('tasks')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('manager_id')
    op.drop_table('manager_load')
    for name in ('ix_tasks_status_due', 'ix_tasks_rule_created', 'ix_tasks_customer_type_status',
                 'ix_tasks_branch_status_due', 'ix_tasks_manager_status_due', 'ix_tasks_run_id'):
        op.drop_index(name, table_name='tasks')
    op.drop_table('tasks')
    op.drop_index('ix_managers_branch', table_name='managers')
    op.drop_table('managers')
