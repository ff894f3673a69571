"""What the pipeline needs from the outside, stated by the pipeline: the store and the executor.

The store implements RunStore (campaign_engine.store.sql_store.SqlStore); the executors are
pipeline.executor.InProcessExecutor and distributed.executor.CeleryExecutor. Structural
protocols: an implementation imports nothing from here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from ..effect.report import EffectCounts
from ..rulebook.model import Goal
from ..selection.plan import CandidatePlan
from ..vocabulary import RunKind, ShardStatus

if TYPE_CHECKING:
    from .services import Services


class CandidateRow(Protocol):
    """One candidate: the customer's columns (with sms_/email_consent, _source, _at), and for
    deposit rules the deposit's columns and its product's (None when unknown)."""

    @property
    def customer(self) -> Mapping[str, Any]: ...

    @property
    def deposit(self) -> Mapping[str, Any] | None: ...

    @property
    def product(self) -> Mapping[str, Any] | None: ...


class WrittenMessage(Protocol):
    """An idempotency key already in the outbox: the run that wrote it and what it decided."""

    @property
    def run_id(self) -> int: ...

    @property
    def outcome(self) -> str: ...  # queued | scheduled | held_out | failed


class OutboxEntry(Protocol):
    """The message an idempotency key already has, and where it stands now (what a preview shows)."""

    @property
    def id(self) -> int: ...

    @property
    def run_id(self) -> int: ...

    @property
    def status(self) -> str: ...  # a MessageStatus value

    @property
    def channel(self) -> str: ...

    @property
    def due_at(self) -> dt.datetime | None: ...


class StoredMessage(Protocol):
    """An outbox row as a retry sees it: where it came from, where it stands, its history so far."""

    @property
    def id(self) -> int: ...

    @property
    def dedupe_key(self) -> str: ...

    @property
    def run_id(self) -> int: ...

    @property
    def rule_id(self) -> str: ...

    @property
    def customer_id(self) -> str: ...

    @property
    def subject_type(self) -> str: ...  # customer | deposit

    @property
    def subject_id(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def status(self) -> str: ...

    @property
    def error(self) -> str | None: ...

    @property
    def attempts(self) -> int: ...

    @property
    def retries(self) -> int: ...  # the version a retry's write checks

    @property
    def history(self) -> list[dict[str, Any]]: ...


class RunStore(Protocol):
    """The named queries a run needs; each opens its own connection or transaction."""

    engine: Any  # for entry points' own queries (API views, scheduler); the pipeline never uses it

    def close(self) -> None: ...

    # candidates and facts
    def select_candidates(self, plan: CandidatePlan, batch_size: int) -> Iterator[Sequence[CandidateRow]]: ...
    def load_holds(self, customer_ids: Sequence[str]) -> dict[str, list[str]]: ...
    def load_product(self, code: str) -> dict[str, Any] | None: ...

    # what the bank's data holds, for references a rule file or an event names (validate, references)
    def known_products(self) -> Mapping[str, str]: ...  # product code -> product type
    def customer_exists(self, customer_id: str) -> bool: ...

    # outbox and contact state
    def existing_messages(self, dedupe_keys: Sequence[str]) -> Mapping[str, WrittenMessage]: ...
    def outbox_entries(self, dedupe_keys: Sequence[str]) -> Mapping[str, OutboxEntry]: ...
    def insert_messages(self, rows: Sequence[dict[str, Any]]) -> set[str]: ...
    def blocked_addresses(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def planned_marketing(self, customer_ids: Sequence[str],
                          since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]: ...
    # `every: Nd`: subjects of these customers the rule has a counting message for, created since `since`
    def recent_subjects(self, *, rule_id: str, subject_type: str, customer_ids: Sequence[str],
                        since: dt.datetime) -> set[str]: ...

    # runs and shards
    def record_run(self, *, kind: RunKind, run_date: dt.date, now: dt.datetime, rule_ids: list[str],
                   event_key: str | None = None, event_payload: dict[str, Any] | None = None,
                   rule_versions: dict[str, Any] | None = None) -> int: ...
    def run_record(self, run_id: int) -> dict[str, Any] | None: ...
    def find_event_run(self, event_key: str) -> dict[str, Any] | None: ...
    def plan_shards(self, run_id: int, shard_size: int) -> list[tuple[str | None, str | None]]: ...
    def claim_shard(self, run_id: int, shard_no: int, *, worker: str,
                    now: dt.datetime) -> dict[str, Any] | None: ...
    def finish_shard(self, run_id: int, shard_no: int, *, status: ShardStatus,
                     stats: list[dict[str, Any]], error: str | None, now: dt.datetime) -> None: ...
    def close_if_done(self, run_id: int, *, now: dt.datetime,
                      summarize: Callable[[list[Any], list[str]], Any]) -> dict[str, Any] | None: ...
    def unfinished_shards(self, run_id: int) -> list[int]: ...
    def run_report(self, run_id: int) -> dict[str, Any] | None: ...

    # retries of failed messages (pipeline.retry)
    def messages_by_id(self, message_ids: Sequence[int]) -> Sequence[StoredMessage]: ...
    def messages_to_retry(self, *, status: str, run_id: int | None, rule_id: str | None,
                          after_id: int | None, limit: int) -> Sequence[StoredMessage]: ...
    def apply_retries(self, outcomes: Sequence[dict[str, Any]]) -> set[int]: ...

    # published rules (pipeline.publishing): versions, the live set and its generation, drafts
    def rule_generation(self) -> int: ...
    def live_versions(self) -> tuple[int, list[dict[str, Any]]]: ...
    def live_state(self, rule_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]: ...
    def rule_versions(self, version_ids: Sequence[int]) -> list[dict[str, Any]]: ...
    def rule_versions_by_number(self, pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]: ...
    def rule_history(self, rule_id: str) -> list[dict[str, Any]]: ...
    def disabled_rules(self, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]: ...
    def draft(self, draft_id: int, *, texts: bool = True) -> dict[str, Any] | None: ...
    def drafts(self, *, status: str | None = None, file: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[dict[str, Any]]: ...
    def record_draft(self, values: dict[str, Any], *, audit_entries: Sequence[dict[str, Any]],
                     now: dt.datetime) -> tuple[int, list[int]]: ...
    def apply_draft(self, draft_id: int, *, from_status: str, versions: Sequence[dict[str, Any]],
                    enable: Sequence[tuple[str, int]], author: str, approver: str | None, note: str,
                    now: dt.datetime, audit_entries: Sequence[dict[str, Any]]) -> dict[str, Any]: ...
    def reject_draft(self, draft_id: int, *, by: str, reason: str, now: dt.datetime,
                     audit_entries: Sequence[dict[str, Any]]) -> None: ...
    def disable_rule(self, rule_id: str, *, by: str, reason: str, now: dt.datetime,
                     audit_entries: Sequence[dict[str, Any]]) -> dict[str, Any]: ...
    def record_audit(self, audit_entries: Sequence[dict[str, Any]], now: dt.datetime) -> None: ...

    # measuring effect (pipeline.effect): one aggregate over a rule's contacts and conversions
    def effect_counts(self, *, rule_id: str, goal: Goal, holdout_group: str, since: dt.datetime | None,
                      until: dt.datetime | None, run_id: int | None, now: dt.datetime) -> EffectCounts: ...


class Executor(Protocol):
    """Where a recorded run's shards execute: chosen once, where an entry point builds its
    Services (bootstrap.choose_executor); every entry point starts runs through lifecycle."""

    name: str

    def submit(self, services: "Services", run_id: int, shards: Sequence[int], *, now: dt.datetime) -> None:
        """Execute these shards of a recorded run (here, in the background, or on workers)."""

    def sweep_delivery(self, services: "Services") -> int:
        """Hand due messages to delivery workers where this executor has them; how many tasks."""

    def close(self) -> None: ...
