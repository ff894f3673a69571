"""published rule versions: drafts, versions, the live set and its generation; runs and messages
record the rule versions they ran; audit log indexes for the auditors' filters

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        'rule_drafts',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('file', sa.String(length=255), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('templates', sa.JSON(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('changes', sa.JSON(), nullable=False),
        sa.Column('problems', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('decided_by', sa.String(length=64), nullable=True),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rule_drafts_status_id', 'rule_drafts', ['status', 'id'])
    op.create_index('ix_rule_drafts_file', 'rule_drafts', ['file'])
    op.create_table(
        'rule_versions',
        sa.Column('id', BigId, autoincrement=True, nullable=False),
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('content_hash', sa.String(length=64), nullable=False),
        sa.Column('file', sa.String(length=255), nullable=False),
        sa.Column('source', sa.Text(), nullable=False),
        sa.Column('templates', sa.JSON(), nullable=False),
        sa.Column('draft_id', BigId, nullable=True),
        sa.Column('author', sa.String(length=64), nullable=False),
        sa.Column('approver', sa.String(length=64), nullable=True),
        sa.Column('note', sa.Text(), nullable=False),
        sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['draft_id'], ['rule_drafts.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('rule_id', 'version', name='uq_rule_versions_rule_version'),
    )
    op.create_table(
        'live_rules',
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('version_id', BigId, nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('changed_by', sa.String(length=64), nullable=False),
        sa.Column('reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['version_id'], ['rule_versions.id']),
        sa.PrimaryKeyConstraint('rule_id'),
    )
    op.create_table(
        'rule_generation',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('generation', sa.BigInteger(), nullable=False),
        sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_versions', sa.JSON(), nullable=True))
    # nullable, no default: adding it rewrites no outbox row (messages written before publishing
    # existed have no version)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rule_version', sa.Integer(), nullable=True))
    op.create_index('ix_audit_log_action_id', 'audit_log', ['action', 'id'])
    op.create_index('ix_audit_log_actor_id', 'audit_log', ['actor', 'id'])


def downgrade() -> None:
    op.drop_index('ix_audit_log_actor_id', table_name='audit_log')
    op.drop_index('ix_audit_log_action_id', table_name='audit_log')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_column('rule_version')
    with op.batch_alter_table('campaign_runs', schema=None) as batch_op:
        batch_op.drop_column('rule_versions')
    op.drop_table('rule_generation')
    op.drop_table('live_rules')
    op.drop_table('rule_versions')
    op.drop_index('ix_rule_drafts_file', table_name='rule_drafts')
    op.drop_index('ix_rule_drafts_status_id', table_name='rule_drafts')
    op.drop_table('rule_drafts')
