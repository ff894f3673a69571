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

from ..errors import AlreadyRecorded, Conflict, StaleDraft, StoreError
from ..effect.report import EffectCounts
from ..rulebook.model import Goal
from ..selection.plan import CandidatePlan
from ..vocabulary import RunKind, ShardStatus
from . import audit, candidates, outbox, rule_versions, runs, suppression
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
        except (AlreadyRecorded, Conflict):
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

    @_translated
    def recent_subjects(self, *, rule_id: str, subject_type: str, customer_ids: Sequence[str],
                        since: dt.datetime) -> set[str]:
        with self.engine.connect() as conn:
            return outbox.recent_subjects(conn, rule_id=rule_id, subject_type=subject_type,
                                          customer_ids=customer_ids, since=since)

    # ------------------------------------------------------------------ runs and shards

    @_translated
    def record_run(self, *, kind: RunKind, run_date: dt.date, now: dt.datetime, rule_ids: list[str],
                   event_key: str | None = None, event_payload: dict[str, Any] | None = None,
                   rule_versions: dict[str, Any] | None = None) -> int:
        """A new run, `running`; AlreadyRecorded when its event key has a run already."""
        try:
            with self.engine.begin() as conn:
                return runs.insert_run(conn, kind=kind.value, run_date=run_date, dry_run=False, now=now,
                                      rule_ids=rule_ids, event_key=event_key, event_payload=event_payload,
                                      rule_versions=rule_versions)
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
                      until: dt.datetime | None, run_id: int | None, now: dt.datetime,
                      with_tasks: bool = False) -> EffectCounts:
        from . import effect

        with self.engine.connect() as conn:
            return effect.effect_counts(conn, rule_id=rule_id, goal=goal, holdout_group=holdout_group,
                                        since=since, until=until, run_id=run_id, now=now, with_tasks=with_tasks)


    # ------------------------------------------------------------------ manager tasks (as a run plans them)

    @_translated
    def task_managers(self, manager_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        from . import tasks

        with self.engine.connect() as conn:
            return tasks.managers_of(conn, manager_ids)

    @_translated
    def task_load(self, owners: Iterable[str], days: Iterable[dt.date], type_: str) -> dict[tuple[str, dt.date], int]:
        from . import tasks

        with self.engine.connect() as conn:
            return tasks.load_of(conn, owners, days, type_)

    @_translated
    def reserve_task_slot(self, owner: str, day: dt.date, type_: str, capacity: int | None) -> bool:
        from . import tasks

        with self.engine.begin() as conn:
            return tasks.reserve(conn, owner, day, type_, capacity)

    @_translated
    def release_task_slot(self, owner: str, day: dt.date, type_: str) -> None:
        from . import tasks

        with self.engine.begin() as conn:
            tasks.release(conn, owner, day, type_)

    @_translated
    def open_tasks(self, rule_id: str, customer_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        from . import tasks

        with self.engine.connect() as conn:
            return tasks.open_tasks_for(conn, rule_id, customer_ids)

    @_translated
    def merge_task_alert(self, task_id: int, *, talking_points: str | None, priority: int, now: dt.datetime) -> bool:
        from . import tasks

        with self.engine.begin() as conn:
            return tasks.merge_alert(conn, task_id, talking_points=talking_points, priority=priority, now=now)

    @_translated
    def planned_tasks(self, customer_ids: Sequence[str], since: dt.datetime) -> dict[tuple[str, str], list[dt.datetime]]:
        from . import tasks

        with self.engine.connect() as conn:
            return tasks.planned_tasks(conn, customer_ids, since)

    @_translated
    def existing_tasks(self, dedupe_keys: Sequence[str]) -> dict[str, int]:
        from . import tasks

        with self.engine.connect() as conn:
            return tasks.existing_tasks(conn, dedupe_keys)

    @_translated
    def insert_tasks(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        from . import tasks

        with self.engine.begin() as conn:
            return tasks.insert_tasks(conn, rows)

    # ------------------------------------------------------------------ published rules

    @_translated
    def rule_generation(self) -> int:
        with self.engine.connect() as conn:
            return rule_versions.generation(conn)

    @_translated
    def live_versions(self) -> tuple[int, list[dict[str, Any]]]:
        """The generation, then the live rows (at least as new as it: a publish in between makes
        the next generation check load again)."""
        with self.engine.connect() as conn:
            return rule_versions.live_versions(conn)

    @_translated
    def live_state(self, rule_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.live_state(conn, rule_ids)

    @_translated
    def rule_versions(self, version_ids: Sequence[int]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.versions_by_id(conn, version_ids)

    @_translated
    def rule_versions_by_number(self, pairs: Iterable[tuple[str, int]]) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.versions_by_number(conn, pairs)

    @_translated
    def rule_history(self, rule_id: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.history(conn, rule_id)

    @_translated
    def disabled_rules(self, rule_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.disabled_rules(conn, rule_ids)

    @_translated
    def draft(self, draft_id: int, *, texts: bool = True) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return rule_versions.get_draft(conn, draft_id, texts=texts)

    @_translated
    def drafts(self, *, status: str | None = None, file: str | None = None, before_id: int | None = None,
               limit: int = 50) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return rule_versions.list_drafts(conn, status=status, file=file, before_id=before_id, limit=limit)

    @_translated
    def record_draft(self, values: dict[str, Any], *, audit_entries: Sequence[dict[str, Any]],
                     now: dt.datetime) -> tuple[int, list[int]]:
        """Store a draft (and its audit entry); a pending one supersedes older pending drafts of
        its file (or, for an enable, of its rule). Returns its id and the superseded ids."""
        with self.engine.begin() as conn:
            draft_id = rule_versions.insert_draft(conn, **values)
            superseded: list[int] = []
            if values["status"] == "pending":
                superseded = rule_versions.supersede_pending(conn, file=values["file"], kind=values["kind"],
                                                             except_id=draft_id, now=now, by=values["author"])
            _audit(conn, audit_entries, now, target=f"draft:{draft_id}",
                   extra={"superseded": superseded} if superseded else None)
            return draft_id, superseded

    @_translated
    def apply_draft(self, draft_id: int, *, from_status: str, versions: Sequence[dict[str, Any]],
                    enable: Sequence[tuple[str, int]], author: str, approver: str | None, note: str,
                    now: dt.datetime, audit_entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """In one transaction: the draft goes live (only from `from_status`), each changed rule
        gets its next version and becomes live (only if its live version is still the one the
        draft was based on), enables apply, the generation moves on, the audit log records it.
        Pending enables of the rules it publishes or enables are superseded (their state is gone);
        an enable that is stale itself is marked superseded and refused (StaleDraft)."""
        if enable:
            self._refuse_stale_enable(draft_id, enable, from_status=from_status, by=approver or author, now=now)
        try:
            with self.engine.begin() as conn:
                if not rule_versions.decide_draft(conn, draft_id, from_status=from_status, to_status="live",
                                                  by=approver, now=now):
                    raise Conflict(f"draft {draft_id} is no longer {from_status}")
                state = rule_versions.live_state(conn, [v["rule_id"] for v in versions])
                published = []
                for v in versions:
                    current = state.get(v["rule_id"])
                    if (current["version"] if current else None) != v["base_version"]:
                        raise Conflict(
                            f"rule {v['rule_id']} is live at version {current['version'] if current else 'none'} "
                            f"now, but draft {draft_id} was based on version {v['base_version'] or 'none'}: "
                            "submit the change again on top of the live version")
                    row = rule_versions.insert_version(
                        conn, rule_id=v["rule_id"], content_hash=v["content_hash"], file=v["file"],
                        source=v["source"], templates=v["templates"], author=author, approver=approver,
                        note=note, draft_id=draft_id, now=now)
                    # a stopped rule stays stopped, and stays stopped by whoever stopped it
                    enabled = rule_versions.publish_live(conn, rule_id=v["rule_id"], version_id=row["id"],
                                                         current=current, by=approver or author, now=now)
                    published.append({"rule": v["rule_id"], "version": row["version"], "id": row["id"],
                                      "content_hash": v["content_hash"], "enabled": enabled})
                for rule_id, version_id in enable:
                    if not rule_versions.set_enabled(conn, rule_id=rule_id, enabled=True, by=approver or author,
                                                     now=now, reason=None, version_id=version_id):
                        raise Conflict(f"rule {rule_id} is no longer disabled at the version this enable "
                                       "was requested for")
                reasons = {p["rule"]: f"rule {p['rule']} was published at version {p['version']} (draft {draft_id}) "
                                      "after this enable was requested: request the enable again"
                           for p in published}
                reasons.update({rule_id: f"rule {rule_id} was enabled by draft {draft_id}" for rule_id, _ in enable})
                superseded = rule_versions.supersede_enables(conn, reasons, except_id=draft_id, now=now,
                                                             by=approver or author)
                generation = rule_versions.bump_generation(conn, now)
                _audit(conn, audit_entries, now, target=f"draft:{draft_id}",
                       extra={"versions": published, "generation": generation,
                              **({"superseded": superseded} if superseded else {})})
                return {"versions": published, "generation": generation}
        except IntegrityError:
            raise Conflict(f"another change to these rules was published at the same time as draft {draft_id}: "
                           "submit it again on top of the live version") from None

    def _refuse_stale_enable(self, draft_id: int, enable: Sequence[tuple[str, int]], *, from_status: str, by: str,
                             now: dt.datetime) -> None:
        """An enable whose rule was published again or enabled since it was requested can never
        apply: mark it superseded with the reason (and audit the refused approval), then refuse."""
        with self.engine.begin() as conn:
            stale = rule_versions.stale_enable(conn, enable)
            if stale is None or not rule_versions.decide_draft(conn, draft_id, from_status=from_status,
                                                               to_status="superseded", by=by, now=now,
                                                               reason=stale):
                return
            _audit(conn, [{"actor": by, "action": "rules.approve_refused",
                           "details": {"reason": "stale", "detail": stale}}], now, target=f"draft:{draft_id}")
        raise StaleDraft(f"draft {draft_id} is stale: {stale}. It is marked superseded; nothing was changed")

    @_translated
    def reject_draft(self, draft_id: int, *, by: str, reason: str, now: dt.datetime,
                     audit_entries: Sequence[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            if not rule_versions.decide_draft(conn, draft_id, from_status="pending", to_status="rejected",
                                              by=by, now=now, reason=reason):
                raise Conflict(f"draft {draft_id} is no longer pending")
            _audit(conn, audit_entries, now, target=f"draft:{draft_id}")

    @_translated
    def disable_rule(self, rule_id: str, *, by: str, reason: str, now: dt.datetime,
                     audit_entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The emergency stop: off at once for every process (the generation moves), and its
        unsent messages suppressed `rule_disabled`."""
        with self.engine.begin() as conn:
            if not rule_versions.set_enabled(conn, rule_id=rule_id, enabled=False, by=by, now=now, reason=reason):
                raise Conflict(f"rule {rule_id} is disabled already")
            suppressed = rule_versions.suppress_unsent(conn, rule_id, now)
            generation = rule_versions.bump_generation(conn, now)
            _audit(conn, audit_entries, now, target=f"rule:{rule_id}",
                   extra={"suppressed_messages": suppressed, "generation": generation})
            return {"suppressed_messages": suppressed, "generation": generation}

    @_translated
    def record_audit(self, audit_entries: Sequence[dict[str, Any]], now: dt.datetime) -> None:
        with self.engine.begin() as conn:
            _audit(conn, audit_entries, now)

    @_translated
    def approval_mark(self) -> dict[str, Any] | None:
        """When and by whom the database was marked as requiring approval (store.database_settings)."""
        from . import database_settings

        with self.engine.connect() as conn:
            return database_settings.get_setting(conn, database_settings.APPROVAL)

    @_translated
    def require_approval(self, *, by: str, now: dt.datetime) -> dict[str, Any]:
        """Mark the database as requiring approval (once; audited `rules.approval_required` by
        whoever marked it); the mark."""
        from . import database_settings

        with self.engine.begin() as conn:
            mark, new = database_settings.set_once(conn, database_settings.APPROVAL, "required", by=by, now=now)
            if new:
                _audit(conn, [{"actor": by, "action": "rules.approval_required", "target": "database",
                               "details": {"setting": "approval", "value": "required"}}], now)
        return mark

    # ------------------------------------------------------------------ working the task list (pipeline.tasks)

    @_translated
    def task_page(self, **filters: Any) -> list[dict[str, Any]]:
        """Tasks in due order with the customer's name and mobile (store.task_list.query_tasks)."""
        from . import task_list

        with self.engine.connect() as conn:
            return task_list.query_tasks(conn, **filters)

    @_translated
    def task(self, task_id: int) -> dict[str, Any] | None:
        from . import task_list

        with self.engine.connect() as conn:
            rows = task_list.query_tasks(conn, task_id=task_id, limit=1)
        return rows[0] if rows else None

    @_translated
    def close_task(self, task_id: int, *, outcome: str, note: str | None, next_contact_on: dt.date | None,
                   by: str, now: dt.datetime, manager_id: str | None, effects: dict[str, Any],
                   audit_entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """In one transaction: the task closed (only if still open; Conflict otherwise), its outcome's
        effects applied, the audit log written. Returns what the effects did."""
        from . import task_list

        with self.engine.begin() as conn:
            if not task_list.close_task(conn, task_id, outcome=outcome, note=note, next_contact_on=next_contact_on,
                                        by=by, now=now, manager_id=manager_id):
                raise Conflict(f"task {task_id} is no longer open")
            done = task_list.apply_effects(conn, effects, now=now)
            entries = list(audit_entries)
            if entries and done:  # the outcome's entry says what its effects did
                entries[0] = {**entries[0], "details": {**(entries[0].get("details") or {}), "effects": done}}
            _audit(conn, entries, now)
            return done

    @_translated
    def assign_task(self, task_id: int, *, manager_id: str, expected: str | None, day: dt.date, type_: str,
                    capacity: int | None, now: dt.datetime, audit_entries: Sequence[dict[str, Any]]) -> None:
        """In one transaction: the open task (still `expected`'s) to `manager_id`, a day of theirs
        reserved for it (`capacity` None: counted without a limit), the previous manager's day given
        back, the audit log written. Conflict when the task changed meanwhile or the day is full."""
        from . import task_list, tasks

        with self.engine.begin() as conn:
            if not task_list.assign(conn, task_id, manager_id=manager_id, expected=expected, now=now):
                raise Conflict(f"task {task_id} is no longer open, or was assigned meanwhile")
            if not tasks.reserve(conn, manager_id, day, type_, capacity):
                raise Conflict(f"manager {manager_id} has no room for another {type_} on {day} "
                               f"({capacity} a day are planned already)")
            if expected is not None:
                tasks.release(conn, expected, day, type_)
            _audit(conn, audit_entries, now)

    @_translated
    def task_manager_ids(self) -> list[str]:
        from . import managers

        with self.engine.connect() as conn:
            return managers.manager_ids(conn)

    @_translated
    def flag_overdue_tasks(self, now: dt.datetime, sla: dt.timedelta) -> int:
        from . import task_list

        with self.engine.begin() as conn:
            return task_list.flag_overdue(conn, now=now, sla=sla)

    @_translated
    def expire_tasks(self, now: dt.datetime, older_than: dt.timedelta) -> int:
        from . import task_list

        with self.engine.begin() as conn:
            return task_list.expire(conn, now=now, older_than=older_than)

    @_translated
    def digest_due(self, *, start: dt.datetime, end: dt.datetime, key_prefix: str,
                   key_suffix: str) -> list[dict[str, Any]]:
        from . import task_list

        with self.engine.connect() as conn:
            return task_list.digest_due(conn, start=start, end=end, key_prefix=key_prefix, key_suffix=key_suffix)

    @_translated
    def digest_tasks(self, manager_ids: Sequence[str], *, start: dt.datetime,
                     end: dt.datetime) -> list[dict[str, Any]]:
        from . import task_list

        with self.engine.connect() as conn:
            return task_list.digest_tasks(conn, manager_ids, start=start, end=end)

    @_translated
    def record_digest(self, *, kind: RunKind, run_date: dt.date, now: dt.datetime, rule_id: str,
                      rows: Sequence[dict[str, Any]]) -> tuple[int | None, int]:
        """The digest emails as a run of their own (kind digest, closed at once with its counts) and
        its outbox messages, in one transaction; nothing at all (no empty run) when every message
        was written already (by another process). Returns (run id or None, messages written)."""
        from ..vocabulary import RunStatus

        with self.engine.connect() as conn:
            trans = conn.begin()
            try:
                run_id = runs.insert_run(conn, kind=kind.value, run_date=run_date, dry_run=False, now=now,
                                         rule_ids=[rule_id])
                written = outbox.insert_messages(conn, [dict(row, run_id=run_id) for row in rows])
                if not written:
                    trans.rollback()
                    return None, 0
                runs.record_totals(conn, run_id, status=RunStatus.COMPLETED, error=None, now=now, stats=[{
                    "rule_id": rule_id, "candidates": len(rows), "matched": len(rows), "queued": len(written),
                    "duplicates": len(rows) - len(written), "suppressed": {}}])
                trans.commit()
            except BaseException:
                if trans.is_active:
                    trans.rollback()
                raise
        return run_id, len(written)

    @_translated
    def task_report_counts(self, *, by: str, **filters: Any) -> list[dict[str, Any]]:
        from . import task_list

        with self.engine.connect() as conn:
            return task_list.report_counts(conn, by=by, **filters)

    @_translated
    def task_manager_names(self, manager_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        from . import task_list

        with self.engine.connect() as conn:
            return task_list.manager_names(conn, manager_ids)


def _audit(conn: Any, entries: Sequence[dict[str, Any]], now: dt.datetime, *, target: str | None = None,
           extra: dict[str, Any] | None = None) -> None:
    for entry in entries:
        details = {**(entry.get("details") or {}), **(extra or {})}
        audit.record(conn, actor=entry["actor"], action=entry["action"], target=entry.get("target") or target,
                     now=now, details=details or None)


__all__ = ["SqlStore", "Candidate", "Written"]
