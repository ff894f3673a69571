"""The store the pipeline consumes: its RunStore interface (pipeline/ports.py) over SQLAlchemy.

Each method opens its own connection or transaction on the engine and calls one named query
module (candidates, outbox, suppression, runs); the pipeline sees plain values, never a
connection, a row label or a driver exception.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable, Iterator, Sequence

import functools
from typing import Callable, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, SQLAlchemyError

from ..errors import AlreadyRecorded, StoreError
from ..effect.report import EffectCounts
from ..rulebook.model import Goal
from ..selection.plan import CandidatePlan
from ..vocabulary import RunKind, ShardStatus
from . import candidates, outbox, runs, suppression
from . import retries
from .candidates import Candidate
from .outbox import Written


T = TypeVar("T")


def store_error(exc: SQLAlchemyError) -> StoreError:
    """A driver's error as the engine's own (transient when the connection or a lock failed)."""
    reason = getattr(exc, "orig", None) or exc
    transient = isinstance(exc, OperationalError) or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    return StoreError(str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__,
                      transient=transient)


def _translated(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except AlreadyRecorded:
            raise
        except SQLAlchemyError as exc:
            raise store_error(exc) from exc
    return wrapper


class SqlStore:
    """The campaign database, as the pipeline needs it; every method raises StoreError, never
    SQLAlchemy's errors."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def close(self) -> None:
        self.engine.dispose()

    # ------------------------------------------------------------------ candidates and facts

    def select_candidates(self, plan: CandidatePlan, batch_size: int) -> Iterator[list[Candidate]]:
        try:
            yield from candidates.select_candidates(self.engine, plan, batch_size)
        except SQLAlchemyError as exc:
            raise store_error(exc) from exc

    @_translated
    def load_holds(self, customer_ids: Sequence[str]) -> dict[str, list[str]]:
        with self.engine.connect() as conn:
            return candidates.load_holds(conn, customer_ids)

    @_translated
    def load_product(self, code: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return candidates.load_product(conn, code)

    @_translated
    def known_products(self) -> dict[str, str]:
        """Product code -> type, every product: the catalogue that rule files and events name (the
        products table is the bank's catalogue, hundreds of rows: read whole, by primary key)."""
        from sqlalchemy import select

        from .models import Product

        with self.engine.connect() as conn:
            return dict(conn.execute(select(Product.product_code, Product.type)).tuples().all())

    @_translated
    def customer_exists(self, customer_id: str) -> bool:
        """Whether a customer id is known (one primary-key lookup)."""
        from sqlalchemy import select

        from .models import Customer

        with self.engine.connect() as conn:
            return conn.execute(select(Customer.customer_id).where(Customer.customer_id == customer_id)
                                .limit(1)).first() is not None

    # ------------------------------------------------------------------ outbox and contact state

    @_translated
    def existing_messages(self, dedupe_keys: Sequence[str]) -> dict[str, Written]:
        with self.engine.connect() as conn:
            return outbox.existing_dedupe_keys(conn, dedupe_keys)

    @_translated
    def outbox_entries(self, dedupe_keys: Sequence[str]) -> dict[str, outbox.OutboxEntry]:
        with self.engine.connect() as conn:
            return outbox.outbox_entries(conn, dedupe_keys)

    @_translated
    def insert_messages(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        with self.engine.begin() as conn:
            return outbox.insert_messages(conn, rows)

    @_translated
    def blocked_addresses(self, pairs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        with self.engine.connect() as conn:
            return suppression.blocked(conn, pairs)

    @_translated
    def planned_marketing(self, customer_ids: Sequence[str],
                          since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]:
        with self.engine.connect() as conn:
            return outbox.planned_marketing(conn, customer_ids, since)

    # ------------------------------------------------------------------ runs and shards

    @_translated
    def record_run(self, *, kind: RunKind, run_date: dt.date, now: dt.datetime, rule_ids: list[str],
                   event_key: str | None = None, event_payload: dict[str, Any] | None = None) -> int:
        """A new run, `running`; AlreadyRecorded when its event key has a run already."""
        try:
            with self.engine.begin() as conn:
                return runs.insert_run(conn, kind=kind.value, run_date=run_date, dry_run=False, now=now,
                                      rule_ids=rule_ids, event_key=event_key, event_payload=event_payload)
        except IntegrityError:
            if event_key is None:
                raise
            raise AlreadyRecorded("run for event", event_key) from None

    @_translated
    def run_record(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return runs.run_record(conn, run_id)

    @_translated
    def find_event_run(self, event_key: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return runs.find_event_run(conn, event_key)

    @_translated
    def plan_shards(self, run_id: int, shard_size: int) -> list[tuple[str | None, str | None]]:
        """Record the run's shards (customer-id ranges) and return their bounds."""
        with self.engine.begin() as conn:
            bounds = runs.shard_bounds(conn, shard_size)
            runs.add_shards(conn, run_id, bounds)
        return bounds

    @_translated
    def claim_shard(self, run_id: int, shard_no: int, *, worker: str,
                    now: dt.datetime) -> dict[str, Any] | None:
        with self.engine.begin() as conn:
            return runs.claim_shard(conn, run_id, shard_no, worker=worker, now=now)

    @_translated
    def finish_shard(self, run_id: int, shard_no: int, *, status: ShardStatus,
                     stats: list[dict[str, Any]], error: str | None, now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            runs.finish_shard(conn, run_id, shard_no, status=status, stats=stats, error=error, now=now)

    def close_if_done(self, run_id: int, *, now: dt.datetime,
                      summarize: runs.Summarize) -> dict[str, Any] | None:
        with self.engine.begin() as conn:
            return runs.close_if_done(conn, run_id, now=now, summarize=summarize)

    @_translated
    def unfinished_shards(self, run_id: int) -> list[int]:
        with self.engine.connect() as conn:
            return runs.unfinished_shards(conn, run_id)

    @_translated
    def run_report(self, run_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return runs.get_run(conn, run_id)

    # ------------------------------------------------------------------ retries of failed messages

    @_translated
    def messages_by_id(self, message_ids: Sequence[int]) -> list[retries.StoredMessage]:
        with self.engine.connect() as conn:
            return retries.messages_by_id(conn, message_ids)

    @_translated
    def messages_to_retry(self, *, status: str, run_id: int | None, rule_id: str | None,
                          after_id: int | None, limit: int) -> list[retries.StoredMessage]:
        with self.engine.connect() as conn:
            return retries.messages_to_retry(conn, status=status, run_id=run_id, rule_id=rule_id,
                                             after_id=after_id, limit=limit)

    @_translated
    def apply_retries(self, outcomes: Sequence[dict[str, Any]]) -> set[int]:
        """Write retry outcomes onto their rows (each only if still failed at the count read)."""
        return retries.apply_retries(self.engine, outcomes)

    # ------------------------------------------------------------------ measuring effect

    @_translated
    def effect_counts(self, *, rule_id: str, goal: Goal, holdout_group: str, since: dt.datetime | None,
                      until: dt.datetime | None, run_id: int | None, now: dt.datetime) -> EffectCounts:
        from . import effect

        with self.engine.connect() as conn:
            return effect.effect_counts(conn, rule_id=rule_id, goal=goal, holdout_group=holdout_group,
                                        since=since, until=until, run_id=run_id, now=now)


__all__ = ["SqlStore", "Candidate", "Written"]
