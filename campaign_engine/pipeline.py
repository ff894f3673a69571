"""The one orchestrator: rules -> candidates (SQL) -> conditions (engine) -> policy -> rendering -> outbox.

Entry points (CLI, later the API, scheduler and workers) call run_scheduled,
handle_event, preview and validate_rules; nothing here reads the clock: callers
pass `today` and `now`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from jinja2.sandbox import SandboxedEnvironment
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .errors import CampaignEngineError, NotFound, Problem, TemplateError, ValidationFailed
from .evaluation.engine import RuleEngine, check_compiles
from .evaluation.explain import explain
from .events import event_key, load_event, restore_event
from .facts.calendar import HolidayCalendar, calendar_facts
from .facts.namespaces import FactSet, customer_facts, deposit_facts, flattener, product_facts
from .policy.contact import ConsentRecord, Contact, Decision, decide_contact
from .policy.schedule import cap_window_start, is_capped, next_send_time
from .rendering.environment import RenderedMessage, TemplateSet, load_template_set, render_message
from .rulebook.fields import sample_namespaces
from .rulebook.loader import Rulebook
from .rulebook.model import Rule, referenced_fields
from .selection.plan import CandidatePlan, plan_candidates
from .settings import Settings
from .store import candidates as candidate_store
from .store import outbox, runs, suppression
from .unsubscribe import unsubscribe_url
from .vocabulary import Channel, EventType, MessageStatus, RunKind, RunStatus, ShardStatus, SubjectType

log = logging.getLogger(__name__)


class EventConflict(CampaignEngineError):
    """An event id was replayed with a different payload."""

    def __init__(self, key: str, run_id: int):
        self.key = key
        self.run_id = run_id
        super().__init__(f"event {key} was already handled by run {run_id} with a different payload")


@dataclass
class Services:
    """What the pipeline needs, built once by an entry point."""

    settings: Settings
    db: Engine
    rulebook: Rulebook
    engine: RuleEngine
    templates: SandboxedEnvironment
    holidays: HolidayCalendar

    def close(self) -> None:
        """Release the database connections."""
        self.db.dispose()


@dataclass
class RuleStats:
    rule: str
    candidates: int = 0
    matched: int = 0
    queued: int = 0
    scheduled: int = 0  # queued for the next sending window (quiet hours)
    duplicates: int = 0
    failed: int = 0
    suppressed: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "candidates": self.candidates, "matched": self.matched,
                "queued": self.queued, "scheduled": self.scheduled, "duplicates": self.duplicates,
                "failed": self.failed,
                "suppressed": dict(sorted(self.suppressed.items())), "error": self.error,
                "seconds": round(self.seconds, 3)}


@dataclass
class Match:
    """One candidate that satisfied a rule, and what became of it."""

    facts: FactSet
    namespaces: dict[str, Any]  # what the template sees
    dedupe_key: str
    consents: Mapping[Channel, ConsentRecord]
    decision: Decision | None = None
    due_at: dt.datetime | None = None  # when it may be sent (quiet hours push it to the window)
    message: RenderedMessage | None = None
    error: str | None = None


@dataclass
class RuleRun:
    """Everything one rule needs for one run, prepared once before any candidate is read."""

    rule: Rule
    today: dt.date
    shared: dict[str, Any]  # run-wide namespaces: event, calendar, rule, product
    plan: CandidatePlan
    templates: TemplateSet
    product_risk_rank: int | None
    occurrence: str  # the part of the idempotency key naming this run's occurrence
    flatten: Callable[[Mapping[str, Any]], dict[str, Any]]  # namespaces -> the engine's fact
    needs_holds: bool  # conditions or template read customer.holds (one more query per batch)


# --------------------------------------------------------------------------- facts

def _consents(row: Any) -> dict[Channel, ConsentRecord]:
    return {
        Channel.SMS: ConsentRecord(bool(row.sms_consent), row.sms_consent_source, row.sms_consent_at),
        Channel.EMAIL: ConsentRecord(bool(row.email_consent), row.email_consent_source, row.email_consent_at),
    }


def _fact_sets(rows: Sequence[Any], subject: SubjectType, holds: Mapping[str, list[str]],
               today: dt.date) -> list[FactSet]:
    out = []
    for row in rows:
        data = row._mapping
        customer = customer_facts(data, today, sms_consent=bool(row.sms_consent),
                                  email_consent=bool(row.email_consent),
                                  holds=holds.get(row.customer_id, ()))
        deposit = None
        if subject is SubjectType.DEPOSIT:
            deposit_row = {k[len("deposit__"):]: v for k, v in data.items() if k.startswith("deposit__")}
            product_row = {k[len("product__"):]: v for k, v in data.items() if k.startswith("product__")}
            deposit = deposit_facts(deposit_row, product_row if product_row.get("product_code") else None,
                                    today)
        out.append(FactSet(customer, deposit))
    return out


DEDUPE_KEY_MAX = 255


def _bounded(key: str) -> str:
    """Keys stay readable; one longer than the column keeps its head and a hash of the whole."""
    if len(key) <= DEDUPE_KEY_MAX:
        return key
    return f"{key[:DEDUPE_KEY_MAX - 66]}#{hashlib.sha256(key.encode()).hexdigest()}"


def _dedupe_key(prep: RuleRun, facts: FactSet) -> str:
    """The idempotency key of a match: one message per rule and occurrence."""
    if facts.deposit is not None:
        subject = f"deposit|{facts.deposit['deposit_id']}"
        if prep.rule.trigger.event is None:  # once per deposit maturity, whatever day it matched
            return _bounded(f"{prep.rule.id}|{subject}|maturity:{facts.deposit['maturity_date']}")
    else:
        subject = f"customer|{facts.customer['customer_id']}"
    return _bounded(f"{prep.rule.id}|{subject}|{prep.occurrence}")


# --------------------------------------------------------------------------- one rule

def _prepare(services: Services, rule: Rule, today: dt.date, event: Mapping[str, Any] | None,
             event_id_key: str | None) -> RuleRun:
    shared: dict[str, Any] = {
        "calendar": calendar_facts(today, services.holidays),
        "rule": {"id": rule.id, "name": rule.name, "category": rule.category.value},
    }
    product_risk_rank = None
    if event is not None:
        shared["event"] = dict(event)
        if rule.trigger.event is EventType.PRODUCT_LAUNCH:
            product_risk_rank = event["product"]["risk_rank"]
    if rule.product:
        with services.db.connect() as conn:
            product = candidate_store.load_product(conn, rule.product)
        if product is None:
            raise ValidationFailed([Problem(f"unknown product {rule.product!r}", file=rule.file,
                                            line=rule.line, rule=rule.id, field="product")], what="rule")
        shared["product"] = product_facts(product)
        product_risk_rank = shared["product"]["risk_rank"]
    templates = load_template_set(services.templates, rule.template)
    return RuleRun(
        rule=rule, today=today, shared=shared, plan=plan_candidates(rule, today, shared),
        templates=templates, product_risk_rank=product_risk_rank,
        occurrence=f"event:{event_id_key}" if event_id_key else f"date:{today.isoformat()}",
        needs_holds="customer.holds" in referenced_fields(rule.conditions) or templates.may_use("holds"),
        flatten=flattener(referenced_fields(rule.conditions)),
    )


@dataclass
class ContactState:
    """Per batch: what the caps and the suppression list already hold for its customers."""

    planned: dict[tuple[str, str], list[dt.datetime]]  # (customer, channel) -> due times
    blocked: set[tuple[str, str]]  # (channel, address) on the suppression list

    def due_at(self, settings: Settings, channel: Channel, now: dt.datetime) -> dt.datetime:
        return next_send_time(now, settings.quiet_hours.get(channel.value), settings.tz)

    def capped(self, settings: Settings, customer_id: str, channel: Channel, now: dt.datetime) -> bool:
        tz = settings.tz
        day = self.due_at(settings, channel, now).astimezone(tz).date()
        earlier = [t.astimezone(tz).date() for t in self.planned.get((customer_id, channel.value), ())]
        return is_capped(day, earlier, settings.frequency_caps)


def _contact_state(services: Services, prep: RuleRun, matches: Sequence[Match], now: dt.datetime) -> ContactState:
    """One query each for the batch: planned marketing messages (caps) and suppressed addresses."""
    settings = services.settings
    addresses = [(c.value, m.facts.customer["mobile"] if c is Channel.SMS else m.facts.customer["email"])
                 for m in matches for c in prep.rule.channels]
    planned: dict[tuple[str, str], list[dt.datetime]] = {}
    with services.db.connect() as conn:
        blocked = suppression.blocked(conn, addresses)
        if prep.rule.is_marketing and settings.frequency_caps and matches:
            local_today = now.astimezone(settings.tz).date()
            since_day = cap_window_start(local_today, settings.frequency_caps)
            since = dt.datetime.combine(since_day, dt.time(), tzinfo=settings.tz)
            planned = outbox.planned_marketing(conn, sorted({m.facts.customer["customer_id"] for m in matches}),
                                               since)
    return ContactState(planned, blocked)


def _decide_and_render(services: Services, prep: RuleRun, match: Match, state: ContactState,
                       now: dt.datetime) -> None:
    customer = match.facts.customer
    settings = services.settings
    cid = customer["customer_id"]
    contact = Contact(
        mobile=customer["mobile"], email=customer["email"], do_not_contact=bool(customer["do_not_contact"]),
        risk_rank=customer["risk_rank"], consents=match.consents,
        capped=frozenset(c for c in prep.rule.channels
                         if prep.rule.is_marketing and state.capped(settings, cid, c, now)),
        blocked=frozenset(c for c in prep.rule.channels
                          if (c.value, customer["mobile"] if c is Channel.SMS else customer["email"]) in state.blocked))
    match.decision = decide_contact(contact, category=prep.rule.category, channels=prep.rule.channels,
                                    template_channels=prep.templates.channels,
                                    product_risk_rank=prep.product_risk_rank)
    if not match.decision.send:
        return
    assert match.decision.channel is not None
    match.due_at = state.due_at(settings, match.decision.channel, now)
    if prep.rule.is_marketing:  # later matches of this batch see this one under the caps
        state.planned.setdefault((cid, match.decision.channel.value), []).append(match.due_at)
    context = match.namespaces
    if prep.rule.is_marketing and match.decision.channel is Channel.EMAIL:
        context = {**context, "unsubscribe_url": unsubscribe_url(settings.public_base_url, settings.secret_key,
                                                                 cid, Channel.EMAIL.value)}
    try:
        match.message = render_message(
            prep.templates, match.decision.channel.value, context,
            signature=services.settings.sms_signature,
            opt_out=services.settings.sms_opt_out if prep.rule.is_marketing else None)
    except TemplateError as exc:
        match.error = str(exc)


def _message_row(prep: RuleRun, match: Match, run_id: int, now: dt.datetime) -> dict[str, Any]:
    decision = match.decision
    assert decision is not None and decision.channel is not None
    message = match.message
    facts = match.facts
    subject_type = SubjectType.DEPOSIT if facts.deposit is not None else SubjectType.CUSTOMER
    consent = decision.consent
    return {
        "dedupe_key": match.dedupe_key, "run_id": run_id, "rule_id": prep.rule.id,
        "category": prep.rule.category.value, "priority": prep.rule.priority,
        "customer_id": facts.customer["customer_id"], "subject_type": subject_type.value,
        "subject_id": facts.deposit["deposit_id"] if facts.deposit else facts.customer["customer_id"],
        "channel": decision.channel.value, "recipient": decision.recipient,
        "status": (MessageStatus.FAILED if message is None else
                   MessageStatus.SCHEDULED if match.due_at and match.due_at > now else MessageStatus.QUEUED).value,
        "subject": message.subject if message else None, "body": message.body if message else None,
        "html": message.html if message else None,
        "sms_segments": message.sms.segments if message and message.sms else None,
        "error": match.error, "consent_source": consent.source if consent else None,
        "consent_at": consent.recorded_at if consent else None, "created_at": now,
        "due_at": match.due_at or now,
    }


def evaluate_batch(services: Services, prep: RuleRun,
                   rows: Sequence[Any]) -> tuple[list[FactSet], list[dict[str, Any]], list[bool]]:
    """One batch of candidate rows -> their facts, namespaces and the engine's verdicts."""
    holds: Mapping[str, list[str]] = {}
    if prep.needs_holds:
        with services.db.connect() as conn:
            holds = candidate_store.load_holds(conn, sorted({row.customer_id for row in rows}))
    fact_sets = _fact_sets(rows, prep.rule.trigger.subject, holds, prep.today)
    namespaces = [fs.namespaces(prep.shared) for fs in fact_sets]
    verdicts = services.engine.evaluate(prep.rule.id, [prep.flatten(ns) for ns in namespaces])
    return fact_sets, namespaces, verdicts


def _process_batch(services: Services, prep: RuleRun, rows: Sequence[Any], stats: RuleStats,
                   *, run_id: int | None, now: dt.datetime,
                   on_match: Callable[[Match], None] | None = None) -> None:
    """Evaluate, decide, render and write one batch of candidates."""
    fact_sets, namespaces, verdicts = evaluate_batch(services, prep, rows)
    stats.candidates += len(rows)
    matches = []
    for row, fs, ns, hit in zip(rows, fact_sets, namespaces, verdicts):
        if hit:
            matches.append(Match(fs, ns, _dedupe_key(prep, fs), _consents(row)))
    stats.matched += len(matches)
    with services.db.connect() as conn:
        done = outbox.existing_dedupe_keys(conn, [m.dedupe_key for m in matches])
    for written in (done[m.dedupe_key] for m in matches if m.dedupe_key in done):
        if run_id is not None and written.run_id == run_id:  # this run's shard, executed again
            setattr(stats, written.outcome, getattr(stats, written.outcome) + 1)
        else:
            stats.duplicates += 1
    fresh = [m for m in matches if m.dedupe_key not in done]
    contact_state = _contact_state(services, prep, fresh, now)
    message_rows = []
    for match in fresh:
        _decide_and_render(services, prep, match, contact_state, now)
        assert match.decision is not None
        if on_match is not None:
            on_match(match)
        if match.decision.suppressed is not None:
            stats.suppressed[match.decision.suppressed.value] += 1
        elif run_id is not None:
            message_rows.append(_message_row(prep, match, run_id, now))
        elif match.message is None:
            stats.failed += 1
        elif match.due_at and match.due_at > now:  # dry run: would be scheduled
            stats.scheduled += 1
        else:
            stats.queued += 1  # dry run: would be queued
    if message_rows:
        with services.db.begin() as conn:
            inserted = outbox.insert_messages(conn, message_rows)
        for row in message_rows:
            if row["dedupe_key"] not in inserted:
                stats.duplicates += 1  # another run wrote it between our check and insert
            elif row["status"] == MessageStatus.QUEUED.value:
                stats.queued += 1
            elif row["status"] == MessageStatus.SCHEDULED.value:
                stats.scheduled += 1
            else:
                stats.failed += 1


@dataclass(frozen=True)
class Shard:
    """Customers whose id is in [lower, upper) (None: unbounded); a run is one or more shards."""

    number: int
    lower: str | None = None
    upper: str | None = None


WHOLE = Shard(0)


def _run_rule(services: Services, rule: Rule, today: dt.date, *, run_id: int | None, now: dt.datetime,
              event: Mapping[str, Any] | None = None, event_id_key: str | None = None,
              shard: Shard = WHOLE) -> RuleStats:
    """One rule over its candidates in a shard; its failure is recorded, never raised."""
    stats = RuleStats(rule.id)
    started = time.perf_counter()
    try:
        prep = _prepare(services, rule, today, event, event_id_key)
        plan = replace(prep.plan, customer_from=shard.lower, customer_to=shard.upper)
        for rows in candidate_store.select_candidates(services.db, plan, services.settings.batch_size):
            _process_batch(services, prep, rows, stats, run_id=run_id, now=now)
    except (CampaignEngineError, SQLAlchemyError) as exc:
        stats.error = str(exc)
        log.error("run %s rule %s failed: %s", run_id, rule.id, exc)
    stats.seconds = time.perf_counter() - started
    return stats


# --------------------------------------------------------------------------- runs

def _report(run_id: int | None, kind: RunKind, today: dt.date, stats: list[RuleStats], dry_run: bool,
            status: RunStatus, **extra: Any) -> dict[str, Any]:
    return {"run_id": run_id, "kind": kind.value, "date": today.isoformat(), "dry_run": dry_run,
            "status": status.value, "rules": [s.as_dict() for s in stats], **extra}


@dataclass
class PendingRun:
    """A run that has been accepted (and recorded, unless dry) but not yet executed."""

    run_id: int | None
    kind: RunKind
    today: dt.date
    rules: list[Rule]
    now: dt.datetime
    dry_run: bool
    event: Mapping[str, Any] | None = None
    event_key: str | None = None
    missing: tuple[str, ...] = ()  # rule ids of the run that this process has not loaded


def _in_priority_order(rules: Sequence[Rule]) -> list[Rule]:
    return sorted(rules, key=lambda r: (-r.priority, r.id))


def _begin(services: Services, rules: list[Rule], today: dt.date, *, kind: RunKind, dry_run: bool,
           now: dt.datetime, event: Mapping[str, Any] | None = None, key: str | None = None,
           payload: dict[str, Any] | None = None) -> PendingRun:
    run_id = None
    if not dry_run:
        with services.db.begin() as conn:
            run_id = runs.start_run(conn, kind=kind.value, run_date=today, dry_run=False, now=now,
                                    rule_ids=[r.id for r in _in_priority_order(rules)], event_key=key,
                                    event_payload=payload)
    return PendingRun(run_id, kind, today, rules, now, dry_run, event, key)


def load_run(services: Services, run_id: int) -> PendingRun:
    """A recorded run as this process executes it: its rules from this process's rulebook."""
    with services.db.connect() as conn:
        record = runs.run_record(conn, run_id)
    if record is None:
        raise NotFound("run", run_id)
    rule_ids = record["rule_ids"] or []
    rules = [services.rulebook.rules[r] for r in rule_ids if r in services.rulebook.rules]
    event = None
    if record["event_key"]:
        event = restore_event(EventType(record["event_key"].split(":", 1)[0]), record["event_payload"])
    return PendingRun(run_id, RunKind(record["kind"]), record["run_date"], rules, record["started_at"],
                      False, event, record["event_key"],
                      missing=tuple(r for r in rule_ids if r not in services.rulebook.rules))


def execute_shard(services: Services, pending: PendingRun, shard: Shard = WHOLE) -> list[RuleStats]:
    """Every rule of the run over one shard's customers, highest priority first (when the caps
    force a choice, it has taken the slot already); a rule's failure is recorded in its stats
    without stopping the others."""
    stats = [_run_rule(services, rule, pending.today, run_id=pending.run_id, now=pending.now,
                       event=pending.event, event_id_key=pending.event_key, shard=shard)
             for rule in _in_priority_order(pending.rules)]
    stats += [RuleStats(rule_id, error=f"rule {rule_id} is not in this worker's rule folder")
              for rule_id in pending.missing]
    return stats


def plan_shards(services: Services, pending: PendingRun) -> list[Shard]:
    """Record the run's shards: customer-id ranges of about `shard_size` customers each."""
    assert pending.run_id is not None
    with services.db.begin() as conn:
        bounds = runs.shard_bounds(conn, services.settings.shard_size)
        runs.add_shards(conn, pending.run_id, bounds)
    log.info("run %s: %s shard(s) of up to %s customers", pending.run_id, len(bounds),
             services.settings.shard_size)
    return [Shard(n, lower, upper) for n, (lower, upper) in enumerate(bounds)]


SHARD_ATTEMPTS = 5


@dataclass
class ShardOutcome:
    stats: list[RuleStats]
    closed: dict[str, Any] | None  # the run's totals when this shard was its last one


def run_shard(services: Services, run_id: int, shard_no: int, *, worker: str,
              clock: Callable[[], dt.datetime]) -> ShardOutcome | None:
    """Execute one recorded shard, again if an earlier attempt was lost (its messages stand:
    the idempotency keys keep them single, and they count as this run's). None when the
    shard has already finished. Other errors propagate: the caller retries or fails it."""
    with services.db.begin() as conn:
        claimed = runs.claim_shard(conn, run_id, shard_no, worker=worker, now=clock())
    if claimed is None:
        log.info("run %s shard %s already finished", run_id, shard_no)
        return None
    if claimed["attempts"] > SHARD_ATTEMPTS:  # its worker keeps dying on it (memory? a crash?)
        return ShardOutcome([], fail_shard(
            services, run_id, shard_no, f"given up after {SHARD_ATTEMPTS} attempts whose workers were lost",
            now=clock()))
    if claimed["attempts"] > 1:
        log.warning("run %s shard %s: attempt %s", run_id, shard_no, claimed["attempts"])
    pending = load_run(services, run_id)
    stats = execute_shard(services, pending, Shard(shard_no, claimed["lower"], claimed["upper"]))
    with services.db.begin() as conn:
        runs.finish_shard(conn, run_id, shard_no, status=ShardStatus.COMPLETED,
                          stats=[s.as_dict() for s in stats], error=None, now=clock())
    return ShardOutcome(stats, _close(services, run_id, clock()))


def fail_shard(services: Services, run_id: int, shard_no: int, error: str, *,
               now: dt.datetime) -> dict[str, Any] | None:
    """Give a shard up (its retries are spent); the run closes when its other shards are done."""
    log.error("run %s shard %s failed: %s", run_id, shard_no, error)
    with services.db.begin() as conn:
        runs.finish_shard(conn, run_id, shard_no, status=ShardStatus.FAILED, stats=[], error=error, now=now)
    return _close(services, run_id, now)


def _close(services: Services, run_id: int, now: dt.datetime) -> dict[str, Any] | None:
    with services.db.begin() as conn:
        closed = runs.close_if_done(conn, run_id, now=now)
    if closed is not None:
        log.info("run %s finished: %s", run_id, closed["status"])
    return closed


def _closed_report(pending: PendingRun, closed: dict[str, Any]) -> dict[str, Any]:
    rules = [{"rule": t["rule_id"], **{k: v for k, v in t.items() if k != "rule_id"},
              "seconds": round(t["seconds"], 3)} for t in closed["rules"]]
    return {"run_id": pending.run_id, "kind": pending.kind.value, "date": pending.today.isoformat(),
            "dry_run": False, "status": closed["status"], "rules": rules, "error": closed["error"],
            "event_key": pending.event_key}


IN_PROCESS = f"in-process:{os.getpid()}"  # the worker name of shards executed by finish_run


def finish_run(services: Services, pending: PendingRun) -> dict[str, Any]:
    """Execute an accepted run here, shard after shard (workers execute the same shards in
    parallel when a broker is configured: see campaign_engine.distributed)."""
    log.info("run %s started: %s rule(s) for %s", pending.run_id, len(pending.rules),
             pending.event_key or pending.today)
    if pending.run_id is None:  # a dry run writes nothing, not even its shards
        stats = execute_shard(services, pending)
        error = runs.rules_failed([s.rule for s in stats if s.error])
        return _report(None, pending.kind, pending.today, stats, True,
                       RunStatus.COMPLETED_WITH_ERRORS if error else RunStatus.COMPLETED,
                       error=error, event_key=pending.event_key)
    started = time.perf_counter()

    def clock() -> dt.datetime:  # `now` plus the time measured here: no wall-clock read
        return pending.now + dt.timedelta(seconds=time.perf_counter() - started)

    shards = plan_shards(services, pending)
    closed = None
    for shard in shards:
        try:
            outcome = run_shard(services, pending.run_id, shard.number, worker=IN_PROCESS, clock=clock)
        except Exception as exc:  # a bug, not a rule failure: close the run as failed, then raise
            for rest in shards[shard.number:]:
                fail_shard(services, pending.run_id, rest.number,
                           f"{type(exc).__name__}: {exc}" if rest is shard else f"not run: shard {shard.number} failed",
                           now=clock())
            raise
        if outcome is not None and outcome.closed is not None:
            closed = outcome.closed
    assert closed is not None, "the last shard closes the run"
    return _closed_report(pending, closed)


def unfinished_shards(services: Services, run_id: int) -> list[int]:
    """Shards of a run still pending or running (after a lost process: what `resume` executes)."""
    with services.db.connect() as conn:
        return runs.unfinished_shards(conn, run_id)


def resume_run(services: Services, run_id: int, *, clock: Callable[[], dt.datetime]) -> dict[str, Any] | None:
    """Execute here the shards of a run that were never finished (its process died mid-run);
    what they had written stands. Returns the run's totals if this closed it."""
    closed = None
    for shard_no in unfinished_shards(services, run_id):
        outcome = run_shard(services, run_id, shard_no, worker=IN_PROCESS, clock=clock)
        if outcome is not None and outcome.closed is not None:
            closed = outcome.closed
    return closed


def select_rules(rulebook: Rulebook, rule_ids: Sequence[str] | None, *, scheduled: bool) -> list[Rule]:
    """The named rules (enabled or not), or every enabled scheduled rule."""
    if rule_ids:
        missing = [r for r in rule_ids if rulebook.get(r) is None]
        if missing:
            raise NotFound("rule", ", ".join(missing))
        rules = [rulebook.rules[r] for r in rule_ids]
        wrong = [r.id for r in rules if (r.trigger.schedule is None) == scheduled]
        if wrong:
            raise ValidationFailed([Problem("not a scheduled rule" if scheduled else "not an event rule",
                                            rule=r, field="rules") for r in wrong], what="run request")
        return rules
    return [r for r in rulebook.enabled() if (r.trigger.schedule is not None) == scheduled]


def begin_scheduled(services: Services, *, today: dt.date, now: dt.datetime,
                    rule_ids: Sequence[str] | None = None, dry_run: bool = False) -> PendingRun:
    """Accept a run of scheduled rules for a date."""
    rules = select_rules(services.rulebook, rule_ids, scheduled=True)
    return _begin(services, rules, today, kind=RunKind.SCHEDULED, dry_run=dry_run, now=now)


def run_scheduled(services: Services, *, today: dt.date, now: dt.datetime,
                  rule_ids: Sequence[str] | None = None, dry_run: bool = False) -> dict[str, Any]:
    """Run scheduled rules for a date; rerunning the same date writes nothing new."""
    return finish_run(services, begin_scheduled(services, today=today, now=now, rule_ids=rule_ids,
                                                dry_run=dry_run))


def _payload_json(data: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, default=str, sort_keys=True))


@dataclass
class EventStart:
    """An accepted event: a new pending run, or the report of the run its event_id already has."""

    pending: PendingRun | None = None
    replay: dict[str, Any] | None = None


def _replay(services: Services, key: str, stored: dict[str, Any]) -> dict[str, Any] | None:
    with services.db.connect() as conn:
        first = runs.find_event_run(conn, key)
        if first is None:
            return None
        if first["event_payload"] != stored:
            raise EventConflict(key, first["id"])
        report = runs.get_run(conn, first["id"])
    assert report is not None
    return {**report, "replayed": True}


def begin_event(services: Services, event_type: EventType, payload: Any, *, now: dt.datetime,
                dry_run: bool = False) -> EventStart:
    """Validate an event; a replayed event_id returns its first run, a new one is recorded."""
    event = load_event(event_type, payload)
    stored = _payload_json(event)
    key = event_key(event_type, event["event_id"])
    today = now.astimezone(services.settings.tz).date()
    rules = [r for r in services.rulebook.enabled() if r.trigger.event is event_type]
    if dry_run:
        return EventStart(_begin(services, rules, today, kind=RunKind.EVENT, dry_run=True, now=now,
                                 event=event, key=key))
    replay = _replay(services, key, stored)
    if replay is not None:
        return EventStart(replay=replay)
    try:
        return EventStart(_begin(services, rules, today, kind=RunKind.EVENT, dry_run=False, now=now,
                                 event=event, key=key, payload=stored))
    except IntegrityError:  # the same event_id arrived concurrently: the other one is first
        replay = _replay(services, key, stored)
        assert replay is not None
        return EventStart(replay=replay)


def handle_event(services: Services, event_type: EventType, payload: Any, *, now: dt.datetime,
                 dry_run: bool = False) -> dict[str, Any]:
    """Validate an event and run every enabled rule it triggers; a replayed event_id returns its run."""
    start = begin_event(services, event_type, payload, now=now, dry_run=dry_run)
    if start.replay is not None:
        return start.replay
    assert start.pending is not None
    return {**finish_run(services, start.pending), "replayed": False}


# --------------------------------------------------------------------------- preview

def preview(services: Services, rule_id: str, *, today: dt.date, now: dt.datetime,
            customer_id: str | None = None, event_payload: Any = None,
            sample: int | None = None) -> dict[str, Any]:
    """What a rule would do: counts, a sample of rendered messages, and for one customer
    the outcome of each condition. Writes nothing."""
    rule = services.rulebook.get(rule_id)
    if rule is None:
        raise NotFound("rule", rule_id)
    event = None
    if rule.trigger.event is not None:
        if event_payload is None:
            raise ValidationFailed([Problem("an event rule previews against an event payload",
                                            rule=rule.id, field="event")], what="preview request")
        event = load_event(rule.trigger.event, event_payload)
    key = event_key(rule.trigger.event, event["event_id"]) if event else None
    sample_size = services.settings.preview_sample if sample is None else sample
    prep = _prepare(services, rule, today, event, key)
    stats = RuleStats(rule.id)
    samples: list[dict[str, Any]] = []

    def keep(match: Match) -> None:
        if len(samples) < sample_size:
            samples.append(_match_view(match))

    if customer_id is None:
        for rows in candidate_store.select_candidates(services.db, prep.plan, services.settings.batch_size):
            _process_batch(services, prep, rows, stats, run_id=None, now=now, on_match=keep)
        return {"rule": rule.id, "date": today.isoformat(), "counts": stats.as_dict(), "sample": samples}

    one = CandidatePlan(subject=rule.trigger.subject, customer_id=customer_id)
    subjects = []
    for rows in candidate_store.select_candidates(services.db, one, services.settings.batch_size):
        with services.db.connect() as conn:
            holds = candidate_store.load_holds(conn, [customer_id])
        for row, fs in zip(rows, _fact_sets(rows, rule.trigger.subject, holds, today)):
            ns = fs.namespaces(prep.shared)
            outcome = explain(rule.conditions, ns)
            view: dict[str, Any] = {
                "subject_id": fs.deposit["deposit_id"] if fs.deposit else fs.customer["customer_id"],
                "matches": outcome.result, "conditions": outcome.as_dict(),
                "explanation": outcome.lines(),
                "selected_by_sql": _in_plan(services, prep.plan, fs),
            }
            if outcome.result:
                match = Match(fs, ns, _dedupe_key(prep, fs), _consents(row))
                _decide_and_render(services, prep, match, _contact_state(services, prep, [match], now), now)
                view.update(_match_view(match))
            subjects.append(view)
    if not subjects:
        raise NotFound("customer", customer_id)
    return {"rule": rule.id, "date": today.isoformat(), "customer_id": customer_id, "subjects": subjects}


def _in_plan(services: Services, plan: CandidatePlan, facts: FactSet) -> bool:
    """Would the run's SQL have read this subject? (It must, whenever the rule matches.)"""
    narrowed = replace(plan, customer_id=facts.customer["customer_id"])
    wanted = facts.deposit["deposit_id"] if facts.deposit else facts.customer["customer_id"]
    for rows in candidate_store.select_candidates(services.db, narrowed, 10_000):
        if any((r.deposit__deposit_id if facts.deposit else r.customer_id) == wanted for r in rows):
            return True
    return False


def _match_view(match: Match) -> dict[str, Any]:
    decision = match.decision
    view: dict[str, Any] = {"customer_id": match.facts.customer["customer_id"],
                            "subject_id": (match.facts.deposit or match.facts.customer).get(
                                "deposit_id" if match.facts.deposit else "customer_id"),
                            "dedupe_key": match.dedupe_key}
    if decision is not None and decision.suppressed is not None:
        view["suppressed"] = decision.suppressed.value
    elif decision is not None and decision.channel is not None:
        view["channel"] = decision.channel.value
        if match.message is not None:
            view.update(subject=match.message.subject, body=match.message.body,
                        sms_segments=match.message.sms.segments if match.message.sms else None)
        else:
            view["error"] = match.error
    return view


# --------------------------------------------------------------------------- validation

def validate_rules(rulebook: Rulebook, templates: SandboxedEnvironment, settings: Settings) -> list[Problem]:
    """Every problem in the rule folder, including templates rendered against a sample context."""
    problems = list(rulebook.problems)
    for rule in rulebook.rules.values():
        where = {"file": rule.file, "line": rule.line, "rule": rule.id}
        try:
            check_compiles(rule.conditions)
        except Exception as exc:  # the engine refused the compiled condition
            problems.append(Problem(f"the rules engine refuses this condition: {exc}", field="conditions",
                                    **where))
            continue
        try:
            template_set = load_template_set(templates, rule.template)
        except TemplateError as exc:
            problems.append(Problem(str(exc), field="template", **where))
            continue
        context = sample_namespaces(rule.trigger.subject, rule.trigger.event)
        context["rule"] = {"id": rule.id, "name": rule.name, "category": rule.category.value}
        if rule.is_marketing:
            context["unsubscribe_url"] = unsubscribe_url(settings.public_base_url, settings.secret_key,
                                                         "C00000001", Channel.EMAIL.value)
        if rule.product:
            context["product"] = product_facts(
                {"product_code": rule.product, "name": "示例产品", "type": "wealth", "risk_level": "R2",
                 "rate": 2.5, "min_amount": 10000, "launch_date": dt.date(2026, 1, 1)})
        for channel in rule.channels:
            if channel.value not in template_set.channels:
                problems.append(Problem(f"template {rule.template} has no {channel.value} part",
                                        field="channels", **where))
                continue
            try:
                render_message(template_set, channel.value, context, signature=settings.sms_signature,
                               opt_out=settings.sms_opt_out if rule.is_marketing else None)
            except TemplateError as exc:
                problems.append(Problem(str(exc), field="template", **where))
    return problems
