"""lunar birthdays: customers.birthday_calendar (solar|lunar) and the indexed lunar_birth_mmdd key;
run_rule_stats.skipped (why a workdays_only rule did not run on its date)

Existing customers keep birthday_calendar solar; their lunar_birth_mmdd is filled from birth_date
here (fill_lunar_birth_mmdd), in keyset batches of customer ids, so a lunar-birthday rule selects
them through ix_customers_lunar_birth_mmdd from the first run after the upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from alembic import op
import sqlalchemy as sa

from campaign_engine.facts.derived import lunar_birth_mmdd


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

BATCH = 50_000  # customers per UPDATE


def upgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('birthday_calendar', sa.String(length=8), nullable=False,
                                      server_default='solar'))
        batch_op.add_column(sa.Column('lunar_birth_mmdd', sa.SmallInteger(), nullable=True))
        batch_op.create_index('ix_customers_lunar_birth_mmdd', ['lunar_birth_mmdd', 'birthday_calendar'],
                              unique=False)
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('skipped', sa.Text(), nullable=True))
    fill_lunar_birth_mmdd(op.get_bind())


def fill_lunar_birth_mmdd(conn: sa.Connection, batch: int = BATCH) -> int:
    """Fill customers.lunar_birth_mmdd from birth_date where it is missing; returns the rows updated.

    A base has far fewer distinct birth dates (tens of thousands) than customers: each date is
    converted once (facts.derived.lunar_birth_mmdd) into a temporary table, and each batch of
    customer ids is one UPDATE joining it, on SQLite and PostgreSQL alike. Running it again
    updates nothing.
    """
    customers = sa.table('customers', sa.column('customer_id', sa.String), sa.column('birth_date', sa.Date),
                         sa.column('lunar_birth_mmdd', sa.SmallInteger))
    births = conn.execute(sa.select(customers.c.birth_date).distinct()
                          .where(customers.c.birth_date.is_not(None), customers.c.lunar_birth_mmdd.is_(None))
                          ).scalars().all()
    if not births:
        return 0
    mapping = sa.Table('tmp_lunar_birth_mmdd', sa.MetaData(),
                       sa.Column('birth_date', sa.Date, primary_key=True),
                       sa.Column('lunar_birth_mmdd', sa.SmallInteger), prefixes=['TEMPORARY'])
    mapping.create(conn)
    rows = [{'birth_date': b, 'lunar_birth_mmdd': lunar_birth_mmdd(b)} for b in births]
    for start in range(0, len(rows), 10_000):
        conn.execute(mapping.insert(), rows[start:start + 10_000])
    lunar = (sa.select(mapping.c.lunar_birth_mmdd).where(mapping.c.birth_date == customers.c.birth_date)
             .scalar_subquery())
    updated = 0
    after = None
    while True:
        ids = sa.select(customers.c.customer_id).order_by(customers.c.customer_id)
        if after is not None:
            ids = ids.where(customers.c.customer_id > after)
        upper = conn.execute(ids.offset(batch - 1).limit(1)).scalar()
        where = [customers.c.birth_date.is_not(None), customers.c.lunar_birth_mmdd.is_(None)]
        if after is not None:
            where.append(customers.c.customer_id > after)
        if upper is not None:
            where.append(customers.c.customer_id <= upper)
        updated += conn.execute(customers.update().where(*where).values(lunar_birth_mmdd=lunar)).rowcount
        if upper is None:
            break
        after = upper
    mapping.drop(conn)
    return updated


def downgrade() -> None:
    with op.batch_alter_table('run_rule_stats', schema=None) as batch_op:
        batch_op.drop_column('skipped')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_lunar_birth_mmdd')
        batch_op.drop_column('lunar_birth_mmdd')
        batch_op.drop_column('birthday_calendar')
