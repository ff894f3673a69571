"""What the pipeline needs from the outside, stated by the pipeline: the store and the executor.

The store implements RunStore (campaign_engine.store.sql_store.SqlStore); the executors are
pipeline.executor.InProcessExecutor and distributed.executor.CeleryExecutor. Structural
protocols: an implementation imports nothing from here.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

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
    def outcome(self) -> str: ...  # queued | scheduled | failed


class RunStore(Protocol):
    """The named queries a run needs; each opens its own connection or transaction."""

    engine: Any  # for entry points' own queries (API views, scheduler); the pipeline never uses it

    def close(self) -> None: ...

    # candidates and facts
    def select_candidates(self, plan: CandidatePlan, batch_size: int) -> Iterator[Sequence[CandidateRow]]: ...
    def load_holds(self, customer_ids: Sequence[str]) -> dict[str, list[str]]: ...
    def load_product(self, code: str) -> dict[str, Any] | None: ...

    # outbox and contact state
    def existing_messages(self, dedupe_keys: Sequence[str]) -> Mapping[str, WrittenMessage]: ...
    def insert_messages(self, rows: Sequence[dict[str, Any]]) -> set[str]: ...
    def blocked_addresses(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]: ...
    def planned_marketing(self, customer_ids: Sequence[str],
                          since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]: ...

    # runs and shards
    def record_run(self, *, kind: RunKind, run_date: dt.date, now: dt.datetime, rule_ids: list[str],
                   event_key: str | None = None, event_payload: dict[str, Any] | None = None) -> int: ...
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


class Executor(Protocol):
    """Where a recorded run's shards execute: chosen once, where an entry point builds its
    Services (bootstrap.choose_executor); every entry point starts runs through lifecycle."""

    name: str

    def submit(self, services: "Services", run_id: int, shards: Sequence[int], *, now: dt.datetime) -> None:
        """Execute these shards of a recorded run (here, in the background, or on workers)."""

    def sweep_delivery(self, services: "Services") -> int:
        """Hand due messages to delivery workers where this executor has them; how many tasks."""

    def close(self) -> None: ...
