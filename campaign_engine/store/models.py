"""Tables, as SQLAlchemy 2.x typed models. The schema itself is owned by migrations/."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import (JSON, BigInteger, Boolean, Column, Date, DateTime, Float, ForeignKey, Index,
                        Integer, LargeBinary, Numeric, SmallInteger, String, Table, Text, TypeDecorator,
                        Unicode, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Autoincrementing 64-bit keys on PostgreSQL; SQLite only autoincrements INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Money = Numeric(18, 2)
Rate = Numeric(9, 4)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timestamps are aware and UTC in Python on every database.

    SQLite keeps no offset: values are stored as UTC and read back with tzinfo=UTC.
    A naive datetime is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass an aware (UTC) datetime")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


def table_of(model: type[Base]) -> Table:
    """A model's Table: SQLAlchemy types `__table__` as a FromClause, but every model here is
    mapped to a Table (none to a join or a select)."""
    return cast(Table, model.__table__)


class Customer(Base):
    __tablename__ = "customers"
    # Lunar-birthday windows select through this index; with birthday_calendar in it, a rule for
    # the customers who celebrate theirs (birthday_calendar = 'lunar') fetches only their rows.
    __table_args__ = (Index("ix_customers_lunar_birth_mmdd", "lunar_birth_mmdd", "birthday_calendar"),)

    customer_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    gender: Mapped[str | None] = mapped_column(String(1))
    birth_date: Mapped[dt.date | None] = mapped_column(Date)
    # month * 100 + day of birth_date: birthday windows select through this index.
    birth_mmdd: Mapped[int | None] = mapped_column(SmallInteger, index=True)
    birthday_calendar: Mapped[str] = mapped_column(String(8), default="solar", server_default="solar")
    # the lunar (month, day) of the birth date as month*100+day (facts.derived.lunar_birth_mmdd)
    lunar_birth_mmdd: Mapped[int | None] = mapped_column(SmallInteger)
    # Indexed: an SMS reply or an unsubscribe finds its customers by address.
    mobile: Mapped[str | None] = mapped_column(String(20), index=True)
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    city: Mapped[str | None] = mapped_column(String(32))
    branch: Mapped[str | None] = mapped_column(String(64))
    tier: Mapped[str] = mapped_column(String(16), index=True)
    risk_level: Mapped[str | None] = mapped_column(String(2))
    aum: Mapped[Decimal] = mapped_column(Money, default=Decimal(0))
    rate_sensitive: Mapped[bool] = mapped_column(Boolean, default=False)
    do_not_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str] = mapped_column(String(8), default="zh")
    manager_id: Mapped[str | None] = mapped_column(String(32), index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Consent(Base):
    """Current marketing consent per customer and channel, with where it came from."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("customer_id", "channel", name="uq_consents_customer_channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(8))
    granted: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Product(Base):
    __tablename__ = "products"

    product_code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    type: Mapped[str] = mapped_column(String(32), index=True)
    risk_level: Mapped[str] = mapped_column(String(2))
    rate: Mapped[Decimal | None] = mapped_column(Rate)
    min_amount: Mapped[Decimal | None] = mapped_column(Money)
    launch_date: Mapped[dt.date | None] = mapped_column(Date)


class Deposit(Base):
    __tablename__ = "deposits"

    # A shard of a run reads the deposits of a customer-id range in (customer_id, deposit_id)
    # order through this index; it also finds a customer's deposits.
    __table_args__ = (Index("ix_deposits_customer_deposit", "customer_id", "deposit_id"),)

    deposit_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id", ondelete="CASCADE"))
    product_code: Mapped[str | None] = mapped_column(ForeignKey("products.product_code"), index=True)
    account_no: Mapped[str] = mapped_column(String(40))
    amount: Mapped[Decimal] = mapped_column(Money)
    rate: Mapped[Decimal | None] = mapped_column(Rate)
    open_date: Mapped[dt.date | None] = mapped_column(Date)
    # Maturity windows select through this index.
    maturity_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=False)


class Holding(Base):
    __tablename__ = "holdings"

    customer_id: Mapped[str] = mapped_column(
        ForeignKey("customers.customer_id", ondelete="CASCADE"), primary_key=True)
    # Indexed so "who holds X" (rate changes) reads only the holders.
    product_code: Mapped[str] = mapped_column(
        ForeignKey("products.product_code"), primary_key=True, index=True)
    amount: Mapped[Decimal] = mapped_column(Money)


class CampaignRun(Base):
    __tablename__ = "campaign_runs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))
    run_date: Mapped[dt.date] = mapped_column(Date, index=True)
    # "<event type>:<event id>": a replayed event finds its first run through this key.
    event_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    event_payload: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The rules the run executes, in order: a worker on another machine loads them by id.
    rule_ids: Mapped[list[str] | None] = mapped_column(JSON)
    # The published version each rule runs in, fixed when the run starts: {rule id: {"id": version
    # row id, "version": n, "hash": content hash}}; every shard executes exactly these.
    rule_versions: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    dry_run: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class RunShard(Base):
    """One customer-id range of a run, executed by one worker (possibly more than once).

    [lower, upper): None means unbounded. A shard's stats hold its per-rule counts; the
    run's own counts are their sum, written when the last shard finishes.
    """

    __tablename__ = "run_shards"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_runs.id", ondelete="CASCADE"), primary_key=True)
    shard_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    lower: Mapped[str | None] = mapped_column(String(32))
    upper: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    worker: Mapped[str | None] = mapped_column(String(128))
    stats: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class RunRuleStats(Base):
    """Per-rule counts of one run."""

    __tablename__ = "run_rule_stats"

    run_id: Mapped[int] = mapped_column(
        ForeignKey("campaign_runs.id", ondelete="CASCADE"), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    candidates: Mapped[int] = mapped_column(Integer, default=0)
    matched: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    scheduled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    held_out: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    seconds: Mapped[float] = mapped_column(Numeric(10, 3), default=0)
    skipped: Mapped[str | None] = mapped_column(Text)  # why it did not run on the date (workdays_only)
    tasks: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # manager tasks planned
    merged: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # alerts merged into open tasks


# The columns of a rule's contacts the effect report reads (store.effect), beside rule_id and created_at.
EFFECT_COLUMNS = ["id", "customer_id", "status", "held_out_by", "due_at", "sent_at"]


class Message(Base):
    """The outbox and the contact history: one row per message the engine decided to send."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_customer_created", "customer_id", "created_at"),
        # A rule's messages by time; on PostgreSQL it also carries what the effect report reads
        # (store.effect), so that report scans the index alone, never the outbox's wide rows.
        Index("ix_messages_rule_created", "rule_id", "created_at", postgresql_include=EFFECT_COLUMNS),
        Index("ix_messages_status_created", "status", "created_at"),
        # The delivery worker claims due messages through this index.
        Index("ix_messages_status_due", "status", "due_at", "id"),  # claims: oldest due, then queue order
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Idempotency: one message per rule and occurrence (see pipeline.dedupe_key).
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(8))
    recipient: Mapped[str | None] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    sms_segments: Mapped[int | None] = mapped_column(SmallInteger)
    error: Mapped[str | None] = mapped_column(Text)
    # Which consent allowed a marketing message (kept as proof of consent).
    consent_source: Mapped[str | None] = mapped_column(String(128))
    consent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # Delivery: when the message may next be attempted (creation, a quiet-hours window start,
    # or a retry's backoff), who holds it while sending, and what the provider answered.
    due_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(128), index=True)
    suppressed_reason: Mapped[str | None] = mapped_column(String(32))
    # Operator retries (pipeline.retry): one entry per retry, with what the message was before it
    # (status, error, attempts, channel) and who retried it when; `retries` counts them and is the
    # version a retry's write checks, so two retries of one message never both apply.
    history: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, server_default="[]")
    retries: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")
    # status held_out (issue #11): `rule` (the rule's own holdout) or `control_group` (the global one)
    held_out_by: Mapped[str | None] = mapped_column(String(16))
    # the published version number of its rule that wrote it (rule_versions.version)
    rule_version: Mapped[int | None] = mapped_column(Integer)


class Conversion(Base):
    """Something a customer did that a rule's goal may count: from the API, a CSV import, or the
    deposit and holdings imports (store.conversions). Recorded once per conversion_id."""

    __tablename__ = "conversions"
    __table_args__ = (
        # The effect report joins a rule's contacts to their customers' conversions in a time window.
        Index("ix_conversions_customer_occurred", "customer_id", "occurred_at"),
    )

    conversion_id: Mapped[str] = mapped_column(String(160), primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.customer_id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(24))
    product_code: Mapped[str | None] = mapped_column(String(32))
    amount: Mapped[Decimal | None] = mapped_column(Money)
    occurred_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class AuditEntry(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_id", "action", "id"), Index("ix_audit_log_actor_id", "actor", "id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; the key itself is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # role manager: the relationship manager this key acts as (sees only their customers' tasks)
    manager_id: Mapped[str | None] = mapped_column(String(32))


class ScheduleFire(Base):
    """One scheduled rule fired for one date: the unique key lets exactly one process run it."""

    __tablename__ = "schedule_fires"
    __table_args__ = (UniqueConstraint("rule_id", "run_date", name="uq_schedule_fires_rule_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    run_date: Mapped[dt.date] = mapped_column(Date)
    owner: Mapped[str] = mapped_column(String(128))
    fired_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    run_id: Mapped[int | None] = mapped_column(ForeignKey("campaign_runs.id"))


# APScheduler's persistent job store, created here (not by APScheduler) so migrations own the schema.
apscheduler_jobs = Table(
    "apscheduler_jobs", Base.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)


class SuppressedAddress(Base):
    """Numbers and addresses never to contact, whatever consent says."""

    __tablename__ = "suppression_list"
    __table_args__ = (UniqueConstraint("channel", "address", name="uq_suppression_channel_address"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    reason: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class RuleDraft(Base):
    """A submitted change: a rule file's text and its templates' texts, or a request to enable a
    disabled rule; live only once approved by someone other than its author (or with approval off)."""

    __tablename__ = "rule_drafts"
    __table_args__ = (Index("ix_rule_drafts_status_id", "status", "id"), Index("ix_rule_drafts_file", "file"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # publish | enable
    file: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)
    templates: Mapped[dict[str, str]] = mapped_column(JSON)  # "<template>/<part>" -> text
    # what an approver approves: sha256 of the file name, its text and every template text
    content_hash: Mapped[str] = mapped_column(String(64))
    # per rule it defines: {"rule", "content_hash", "base_version" (live version number when
    # submitted, or null), "change": new | changed | unchanged}
    changes: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    problems: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | live | invalid | rejected | superseded
    note: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    reason: Mapped[str | None] = mapped_column(Text)


class RuleVersion(Base):
    """One published version of one rule: immutable; `live_rules` says which one runs."""

    __tablename__ = "rule_versions"
    __table_args__ = (UniqueConstraint("rule_id", "version", name="uq_rule_versions_rule_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(64))
    file: Mapped[str] = mapped_column(String(255))
    source: Mapped[str] = mapped_column(Text)  # the rule file's text as published
    templates: Mapped[dict[str, str]] = mapped_column(JSON)  # this rule's template texts
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("rule_drafts.id"))
    author: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(Text)
    published_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class LiveRule(Base):
    """The version of each rule that every process executes, and the emergency stop."""

    __tablename__ = "live_rules"

    rule_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version_id: Mapped[int] = mapped_column(ForeignKey("rule_versions.id"))
    enabled: Mapped[bool] = mapped_column(Boolean)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    changed_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)  # why it was disabled


class RuleGeneration(Base):
    """One row: a number every publish, disable and enable increments in the same transaction;
    each process compares it with the one its rule set was built from."""

    __tablename__ = "rule_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class DatabaseSetting(Base):
    """A property of the database itself, whatever a process's settings say: `approval` = `required`
    once a process configured `approval: required` published to it (store.database_settings)."""

    __tablename__ = "database_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    set_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    set_by: Mapped[str] = mapped_column(String(64))


class Manager(Base):
    """A relationship manager (客户经理): the customers whose manager_id it is, and a day's capacity."""

    __tablename__ = "managers"

    manager_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    branch: Mapped[str | None] = mapped_column(String(64), index=True)
    mobile: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(254))
    daily_call_capacity: Mapped[int] = mapped_column(SmallInteger)
    daily_visit_capacity: Mapped[int] = mapped_column(SmallInteger)
    active: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(128))


class Task(Base):
    """A call (电联) or visit (面谈) a rule planned for a customer's manager, or the branch queue."""

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_manager_status_due", "manager_id", "status", "due_at"),
        Index("ix_tasks_branch_status_due", "branch", "status", "due_at"),
        Index("ix_tasks_customer_type_status", "customer_id", "type", "status"),
        Index("ix_tasks_rule_created", "rule_id", "created_at"),
        Index("ix_tasks_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)  # one task per occurrence, as messages
    run_id: Mapped[int] = mapped_column(ForeignKey("campaign_runs.id"), index=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    customer_id: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(8))  # call | visit
    manager_id: Mapped[str | None] = mapped_column(String(32))  # null: the branch queue
    branch: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    completed_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    next_contact_on: Mapped[dt.date | None] = mapped_column(Date)
    talking_points: Mapped[str | None] = mapped_column(Text)  # the rendered task.txt.j2
    alerts: Mapped[int] = mapped_column(SmallInteger, default=1)  # matches merged into it (1: itself)
    last_alert_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    overdue_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())  # flagged by the overdue sweep
    consent_source: Mapped[str | None] = mapped_column(String(128))
    consent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class ManagerLoad(Base):
    """Tasks planned per owner (a manager, or `branch:<name>` for a queue), local day and type: the
    capacity reservation, taken by one conditional UPDATE so shards and workers never overbook."""

    __tablename__ = "manager_load"

    owner: Mapped[str] = mapped_column(String(100), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    type: Mapped[str] = mapped_column(String(8), primary_key=True)
    planned: Mapped[int] = mapped_column(Integer)


class User(Base):
    """A console user: a name, a password hash (werkzeug's scrypt), a role and, for role manager,
    the relationship manager they are. `demo`: created by `demo-data` (the local demo database only)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    manager_id: Mapped[str | None] = mapped_column(String(32))
    disabled: Mapped[bool] = mapped_column(Boolean)
    demo: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class ConsoleSession(Base):
    """A signed-in console session: the cookie carries a random token, the database its SHA-256.
    A new token at every login (no session fixation); logout or disabling the user revokes it."""

    __tablename__ = "console_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    last_seen_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())


class LoginAttempt(Base):
    """A failed console login, by user name and client address: what the login rate limit counts."""

    __tablename__ = "login_attempts"
    __table_args__ = (Index("ix_login_attempts_username_at", "username", "at"),
                      Index("ix_login_attempts_address_at", "address", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
