"""Candidate queries: a CandidatePlan -> one SQL query per shard, streamed in batches."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any, Iterator, Mapping, NamedTuple, Sequence

from sqlalchemy import (Connection, ColumnElement, Engine, Select, and_, exists, false, not_, or_, select,
                        union_all)
from sqlalchemy.orm import InstrumentedAttribute, aliased

from ..facts.namespaces import CUSTOMER_COLUMNS, DEPOSIT_COLUMNS, PRODUCT_COLUMNS
from ..rulebook.model import All, AnyOf, Node, Predicate
from ..selection.plan import CandidatePlan
from ..vocabulary import PHONE_CONSENT, Channel, SubjectType
from .bulk import one_of
from .models import Consent, Customer, Deposit, Holding, Product

SmsConsent = aliased(Consent, name="sms_consent")
EmailConsent = aliased(Consent, name="email_consent")
PhoneConsent = aliased(Consent, name="phone_consent")  # joined only for rules that plan manager tasks


def _columns_for(field: str) -> Any:
    namespace, _, name = field.partition(".")
    if namespace == "customer":
        return getattr(Customer, name)
    if name.startswith("product."):
        return getattr(Product, name.split(".", 1)[1])
    return getattr(Deposit, name)


def _sql_value(column: Any, value: Any) -> Any:
    """Plan operands are engine values (ISO dates, floats): bind them as the column's type."""
    if isinstance(value, str) and column.type.python_type is dt.date:
        return dt.date.fromisoformat(value)
    return value


def _holds(product: Any) -> ColumnElement[bool]:
    """customer holds a product code or type, through holdings or deposits (both indexed)."""
    codes = select(Product.product_code).where(or_(Product.product_code == product,
                                                   Product.type == product))
    return or_(
        exists().where(Holding.customer_id == Customer.customer_id, Holding.product_code.in_(codes)),
        exists().where(Deposit.customer_id == Customer.customer_id, Deposit.product_code.in_(codes)),
    )


def _condition(node: Node) -> ColumnElement[bool]:
    if isinstance(node, All):
        return and_(*(_condition(n) for n in node.items))
    if isinstance(node, AnyOf):
        return or_(*(_condition(n) for n in node.items))
    assert isinstance(node, Predicate)
    if node.field == "customer.holds":
        if node.op == "contains":
            return _holds(node.operand)
        held = or_(exists().where(Holding.customer_id == Customer.customer_id),
                   exists().where(Deposit.customer_id == Customer.customer_id))
        return held if node.operand else not_(held)
    column = _columns_for(node.field)
    value = node.operand
    match node.op:
        case "exists":
            return column.is_not(None) if value else column.is_(None)
        case "eq":
            return column == _sql_value(column, value)
        case "ne":
            return column != _sql_value(column, value)
        case "gt":
            return column > _sql_value(column, value)
        case "gte":
            return column >= _sql_value(column, value)
        case "lt":
            return column < _sql_value(column, value)
        case "lte":
            return column <= _sql_value(column, value)
        case "between":
            return column.between(_sql_value(column, value[0]), _sql_value(column, value[1]))
        case "in":
            return column.in_([_sql_value(column, v) for v in value])
        case "not_in":
            return and_(column.is_not(None), column.not_in([_sql_value(column, v) for v in value]))
    raise ValueError(f"cannot push {node.op} into SQL")


def _filters(plan: CandidatePlan) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if plan.never:
        where.append(false())
    # The subject's own customer_id column, so a deposit shard reads ix_deposits_customer_deposit.
    owner = Deposit.customer_id if plan.subject is SubjectType.DEPOSIT else Customer.customer_id
    if plan.customer_id is not None:
        where.append(owner == plan.customer_id)
    if plan.customer_from is not None:
        where.append(owner >= plan.customer_from)
    if plan.customer_to is not None:
        where.append(owner < plan.customer_to)
    if plan.birth_mmdd is not None:
        where.append(Customer.birth_mmdd.in_(sorted(plan.birth_mmdd)))
    if plan.lunar_birth_mmdd is not None:
        where.append(Customer.lunar_birth_mmdd.in_(sorted(plan.lunar_birth_mmdd)))
    if plan.birth_date_from is not None:
        where.append(Customer.birth_date >= plan.birth_date_from)
    if plan.birth_date_to is not None:
        where.append(Customer.birth_date <= plan.birth_date_to)
    if plan.maturity_from is not None:
        where.append(Deposit.maturity_date >= plan.maturity_from)
    if plan.maturity_to is not None:
        where.append(Deposit.maturity_date <= plan.maturity_to)
    where += [_condition(node) for node in plan.where]
    return where


def _consent_join(consent: Any, channel: str, plan: CandidatePlan) -> ColumnElement[bool]:
    """The join to one channel's consent, bounded like the shard: PostgreSQL does not carry a
    range on customers.customer_id over to the joined table, and without the bound each shard
    would read the consents index from its start."""
    on = [consent.customer_id == Customer.customer_id, consent.channel == channel]
    if plan.customer_from is not None:
        on.append(consent.customer_id >= plan.customer_from)
    if plan.customer_to is not None:
        on.append(consent.customer_id < plan.customer_to)
    if plan.customer_id is not None:
        on.append(consent.customer_id == plan.customer_id)
    return and_(*on)


def _base_query(plan: CandidatePlan) -> tuple[Select[Any], tuple[InstrumentedAttribute[str], ...]]:
    consent_cols = [
        SmsConsent.granted.label("sms_consent"), SmsConsent.source.label("sms_consent_source"),
        SmsConsent.recorded_at.label("sms_consent_at"),
        EmailConsent.granted.label("email_consent"), EmailConsent.source.label("email_consent_source"),
        EmailConsent.recorded_at.label("email_consent_at"),
    ]
    if plan.phone_consent:
        consent_cols += [PhoneConsent.granted.label("phone_consent"), PhoneConsent.source.label("phone_consent_source"),
                         PhoneConsent.recorded_at.label("phone_consent_at")]
    customer_cols = [getattr(Customer, c) for c in CUSTOMER_COLUMNS]
    key: tuple[InstrumentedAttribute[str], ...]  # the subject's key, the batches' order
    if plan.subject is SubjectType.DEPOSIT:
        cols = ([getattr(Deposit, c).label(f"deposit__{c}") for c in DEPOSIT_COLUMNS]
                + [getattr(Product, c).label(f"product__{c}") for c in PRODUCT_COLUMNS])
        query = (select(*customer_cols, *cols, *consent_cols)
                 .select_from(Deposit)
                 .join(Customer, Customer.customer_id == Deposit.customer_id)
                 .outerjoin(Product, Product.product_code == Deposit.product_code))
        key = (Deposit.customer_id, Deposit.deposit_id)
    else:
        query = select(*customer_cols, *consent_cols).select_from(Customer)
        key = (Customer.customer_id,)
    query = (query
             .outerjoin(SmsConsent, _consent_join(SmsConsent, Channel.SMS.value, plan))
             .outerjoin(EmailConsent, _consent_join(EmailConsent, Channel.EMAIL.value, plan)))
    if plan.phone_consent:
        query = query.outerjoin(PhoneConsent, _consent_join(PhoneConsent, PHONE_CONSENT, plan))
    return query.where(*_filters(plan)), key


class Candidate(NamedTuple):
    """One candidate row, decoded: the customer's columns (with its consent columns), and for
    deposit rules the deposit and its product (None when the deposit names no known product)."""

    customer: Mapping[str, Any]
    deposit: Mapping[str, Any] | None = None
    product: Mapping[str, Any] | None = None


_DEPOSIT_LABELS = tuple(f"deposit__{c}" for c in DEPOSIT_COLUMNS)
_PRODUCT_LABELS = tuple(f"product__{c}" for c in PRODUCT_COLUMNS)


def _decode(rows: Sequence[Any], subject: SubjectType, keys: Sequence[str]) -> list[Candidate]:
    """Rows -> Candidates as plain dicts (a dict's lookups cost a fraction of a RowMapping's, and
    facts, consents and the policy read each row a dozen times): the `deposit__`/`product__`
    labels of the joined query become plain column names again (callers never see a label)."""
    if subject is not SubjectType.DEPOSIT:
        return [Candidate(dict(zip(keys, row))) for row in rows]
    out = []
    for row in rows:
        data = dict(zip(keys, row))
        deposit = dict(zip(DEPOSIT_COLUMNS, (data[k] for k in _DEPOSIT_LABELS)))
        product = dict(zip(PRODUCT_COLUMNS, (data[k] for k in _PRODUCT_LABELS)))
        out.append(Candidate(data, deposit, product if product["product_code"] else None))
    return out


def select_candidates(db: Engine, plan: CandidatePlan,
                      batch_size: int) -> Iterator[list[Candidate]]:
    """Candidates for a plan, in batches ordered by subject key.

    One query streamed through a server-side cursor (PostgreSQL) or SQLite's lazy cursor, so
    memory holds one batch and the database scans once: LIMIT pages re-ran the scan (and the
    sort) for every page, which grew with the square of a full-scan rule's candidates. The
    reading connection is its own; the batch's writes go through others (PostgreSQL's MVCC
    and SQLite's WAL keep the reader's snapshot and let them commit).

    Deposits come in (customer_id, deposit_id) order, so a customer's deposits are decided in
    one order whether the run is one shard or many.

    Relies on: ix_customers_birth_mmdd (birthdays), ix_customers_lunar_birth_mmdd (lunar
    birthdays: lunar_birth_mmdd, then birthday_calendar, so a rule for the lunar customers reads
    only theirs), ix_deposits_maturity_date (maturities, business days included),
    the primary keys and ix_deposits_customer_deposit (order and shard ranges),
    ix_holdings_product_code / ix_deposits_product_code (holders of a product). Writes nothing.
    """
    query, key = _base_query(plan)
    with db.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(
            query.order_by(*key))
        keys = tuple(result.keys())
        try:
            for rows in result.partitions():
                yield _decode(rows, plan.subject, keys)
        finally:
            result.close()


def load_holds(conn: Connection, customer_ids: Sequence[str]) -> dict[str, list[str]]:
    """Product codes and types each customer holds, via holdings and deposits (one query)."""
    held = union_all(
        select(Holding.customer_id, Holding.product_code).where(one_of(conn, Holding.customer_id, customer_ids)),
        select(Deposit.customer_id, Deposit.product_code).where(one_of(conn, Deposit.customer_id, customer_ids),
                                                                Deposit.product_code.is_not(None)),
    ).subquery()
    rows = conn.execute(select(held.c.customer_id, held.c.product_code, Product.type)
                        .outerjoin(Product, Product.product_code == held.c.product_code))
    holds: dict[str, set[str]] = defaultdict(set)
    for customer_id, code, kind in rows:
        holds[customer_id].add(code)
        if kind:
            holds[customer_id].add(kind)
    return {cid: sorted(values) for cid, values in holds.items()}


def load_product(conn: Connection, code: str) -> dict[str, Any] | None:
    row = conn.execute(select(*(getattr(Product, c) for c in PRODUCT_COLUMNS))
                       .where(Product.product_code == code)).mappings().first()
    return dict(row) if row else None
