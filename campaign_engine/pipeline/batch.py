"""One rule over one batch of candidates: rows -> facts -> verdicts -> contact decisions -> outbox rows.

`prepare_rule` does once per rule and run what every batch shares (run-wide namespaces, the
candidate plan, templates, the product's risk); `process_batch` evaluates, decides, renders
and writes one batch, counting every outcome in the rule's RuleStats; `run_rule` streams a
rule's candidates in a shard through it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, Sequence

from .. import logs
from ..errors import CampaignEngineError, Problem, TemplateError, ValidationFailed
from ..effect.assignment import held_out, holdout_salt
from ..events import Event
from ..facts.calendar import calendar_facts
from ..facts.namespaces import (BIRTHDAY_FIELDS, BUSINESS_DAY_FIELDS, LUNAR_BIRTHDAY_FIELDS, NO_DERIVATIONS,
                                Derivations, FactSet, customer_facts, deposit_facts, flattener, product_facts)
from ..facts.official import CalendarNotAnnounced
from ..policy.contact import MOBILE_CHANNELS, ConsentRecord, Contact, Decision, address_of, decide_contact
from ..policy.caps import cap_window_start, is_capped
from ..policy.quiet_hours import next_send_time
from ..rendering.environment import RenderedMessage, TemplateSet, render_message
from ..rulebook.model import Rule, referenced_fields
from ..selection.plan import CandidatePlan, plan_candidates
from ..settings import Settings
from ..unsubscribe import unsubscribe_url
from ..vocabulary import (TASK_CHANNELS, Channel, EventType, HoldoutGroup, MessageStatus, OnceMode, SubjectType,
                          SuppressionReason, TaskStatus)
from .calendar_checks import TASK_DAYS, OfficialCalendarUnknown, check_official_calendar, workday_skip
from .ports import CandidateRow
from .report import RuleStats
from .services import Services
from .task_planning import Owner, Slot, TaskPlan, find_slot, owner_of, plans_tasks, task_plan
from .task_planning import capped as task_capped

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shard:
    """Customers whose id is in [lower, upper) (None: unbounded); a run is one or more shards."""

    number: int
    lower: str | None = None
    upper: str | None = None


WHOLE = Shard(0)


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
    held_out: HoldoutGroup | None = None  # held out after the whole policy: recorded, never rendered or sent
    slot: Slot | None = None  # a call or visit task: whose list, which day (task_planning)
    merge_into: int | None = None  # a repeated alert: the customer's open task of the rule it joins
    owner: Owner | None = None  # whose list its task is on (the manager, or the branch queue)


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
    derive: Derivations = NO_DERIVATIONS  # derived fields the conditions or templates read (costly per candidate)
    skipped: str | None = None  # why the rule does not run on this date (its window, workdays_only): it reads nothing


# --------------------------------------------------------------------------- facts

def consents(candidate: CandidateRow, phone_default: bool = False) -> dict[Channel, ConsentRecord]:
    """Marketing consent per channel; a call or a visit rests on the phone-marketing consent (read
    for rules that plan tasks; `phone_default` when none is recorded)."""
    data = candidate.customer
    out = {
        Channel.SMS: ConsentRecord(bool(data["sms_consent"]), data["sms_consent_source"], data["sms_consent_at"]),
        Channel.EMAIL: ConsentRecord(bool(data["email_consent"]), data["email_consent_source"],
                                     data["email_consent_at"]),
    }
    if "phone_consent" in data:
        granted = phone_default if data["phone_consent"] is None else bool(data["phone_consent"])
        phone = ConsentRecord(granted, data["phone_consent_source"] or ("default" if granted else None),
                              data["phone_consent_at"])
        out[Channel.CALL] = out[Channel.VISIT] = phone
    return out


def fact_sets(candidates: Sequence[CandidateRow], holds: Mapping[str, list[str]],
              today: dt.date, derive: Derivations = NO_DERIVATIONS) -> list[FactSet]:
    """Each candidate's customer (and deposit) facts, with the derived fields on demand in `derive`."""
    out = []
    lunar, business_days, birthday = derive.lunar_birthday, derive.business_days, derive.birthday
    for c in candidates:
        data = c.customer
        customer = customer_facts(data, today, sms_consent=bool(data["sms_consent"]),
                                  email_consent=bool(data["email_consent"]),
                                  holds=holds.get(data["customer_id"], ()) if holds else (),
                                  lunar_birthday=lunar, birthday=birthday)
        deposit = (deposit_facts(c.deposit, c.product, today, business_days)
                   if c.deposit is not None else None)
        out.append(FactSet(customer, deposit))
    return out


def derivations(rule: Rule, templates: TemplateSet, services: Services) -> Derivations:
    """The derived fields on demand that a rule's conditions or templates read."""
    fields = referenced_fields(rule.conditions)

    def reads(names: Sequence[str]) -> bool:
        return any(f in fields or templates.may_use(f.rsplit(".", 1)[1]) for f in names)

    return Derivations(lunar_birthday=reads(LUNAR_BIRTHDAY_FIELDS),
                       business_days=services.holidays if reads(BUSINESS_DAY_FIELDS) else None,
                       birthday=reads(BIRTHDAY_FIELDS))


DEDUPE_KEY_MAX = 255


def _bounded(key: str) -> str:
    """Keys stay readable; one longer than the column keeps its head and a hash of the whole."""
    if len(key) <= DEDUPE_KEY_MAX:
        return key
    return f"{key[:DEDUPE_KEY_MAX - 66]}#{hashlib.sha256(key.encode()).hexdigest()}"


def occurrence(rule: Rule, today: dt.date, event: Event | None) -> str:
    """The occurrence part of the rule's idempotency keys in a run (`once`; `every` keys per run date,
    its window is the policy's: ContactState.recent). per_occurrence keys each deposit by its maturity
    date instead (dedupe_key)."""
    mode = rule.once_mode
    if rule.every_days is None and mode is OnceMode.PER_CAMPAIGN:
        return f"campaign:{rule.campaign_id}"
    if rule.every_days is None and mode is OnceMode.PER_EVENT and event is not None:
        return f"event:{event.key}"
    return f"date:{today.isoformat()}"


def dedupe_key(prep: RuleRun, facts: FactSet) -> str:
    """The idempotency key of a match: one message per rule and occurrence."""
    if facts.deposit is not None:
        subject = f"deposit|{facts.deposit['deposit_id']}"
        if prep.rule.every_days is None and prep.rule.once_mode is OnceMode.PER_OCCURRENCE:
            # once per deposit maturity, whatever day it matched
            return _bounded(f"{prep.rule.id}|{subject}|maturity:{facts.deposit['maturity_date']}")
    else:
        subject = f"customer|{facts.customer['customer_id']}"
    return _bounded(f"{prep.rule.id}|{subject}|{prep.occurrence}")


# --------------------------------------------------------------------------- one rule

def window_skip(rule: Rule, today: dt.date) -> str | None:
    """Why a rule does not run on `today` (outside its `active` window), else None."""
    if rule.window is None or rule.active_on(today):
        return None
    return f"{today} is outside its campaign window {rule.window} (active)"


def prepare_rule(services: Services, rule: Rule, today: dt.date, event: Event | None) -> RuleRun:
    """What every batch of the rule shares on `today`; OfficialCalendarUnknown when the rule needs
    the official calendar of a year not announced yet (calendar_checks)."""
    outside = window_skip(rule, today)  # outside its window a rule needs no calendar, product or plan
    if outside is None:
        check_official_calendar(rule, today, services.holidays, services.settings.tasks.urgent_priority)
    skipped = outside or workday_skip(rule, today, services.holidays)
    shared: dict[str, Any] = {
        "calendar": calendar_facts(today, services.holidays),
        "rule": {"id": rule.id, "name": rule.name, "category": rule.category.value},
    }
    product_risk_rank = None
    if event is not None:
        shared["event"] = dict(event.data)
        if rule.trigger.event is EventType.PRODUCT_LAUNCH:
            product_risk_rank = event.data["product"]["risk_rank"]
    if rule.product and not outside:
        product = services.store.load_product(rule.product)
        if product is None:
            raise ValidationFailed([Problem(f"unknown product {rule.product!r}", file=rule.file,
                                            line=rule.line, rule=rule.id, field="product")], what="rule")
        shared["product"] = product_facts(product)
        product_risk_rank = shared["product"]["risk_rank"]
    templates = services.rulebook.template_set(rule.id)
    try:
        plan = (plan_candidates(rule, today, shared, services.holidays) if not outside
                else CandidatePlan(subject=rule.trigger.subject, never=True))
    except CalendarNotAnnounced as exc:  # a business-day window reaching into an unannounced year
        assert exc.day is not None
        raise OfficialCalendarUnknown(exc.year, exc.day, ", ".join(
            f for f in BUSINESS_DAY_FIELDS if f in referenced_fields(rule.conditions)), exc.source) from exc
    if plans_tasks(rule):
        plan = replace(plan, phone_consent=True)
    return RuleRun(
        rule=rule, today=today, shared=shared, plan=replace(plan, never=True) if skipped else plan,
        templates=templates, product_risk_rank=product_risk_rank,
        occurrence=occurrence(rule, today, event),
        needs_holds="customer.holds" in referenced_fields(rule.conditions) or templates.may_use("holds"),
        flatten=flattener(referenced_fields(rule.conditions)),
        derive=derivations(rule, templates, services), skipped=skipped,
    )


@dataclass
class ContactState:
    """Per batch: what the caps, the suppression list and the rule's `every` window already hold for
    its customers."""

    planned: dict[tuple[str, str], list[dt.datetime]]  # (customer, channel) -> due times
    blocked: set[tuple[str, str]]  # (channel, address) on the suppression list
    # `every: Nd`: subjects (customer or deposit ids) this rule has a message for in the last N-1 days
    recent: set[str] = field(default_factory=set)
    tasks: TaskPlan | None = None  # a rule that plans calls or visits: managers, open tasks, task caps
    _due: dict[tuple[Channel, dt.datetime], dt.datetime] = field(default_factory=dict, repr=False, compare=False)
    _day: dict[tuple[Channel, dt.datetime], dt.date] = field(default_factory=dict, repr=False, compare=False)
    _capped_alone: dict[dt.date, bool] = field(default_factory=dict, repr=False, compare=False)

    def due_at(self, settings: Settings, channel: Channel, now: dt.datetime) -> dt.datetime:
        # The same for every match of the batch: computed once per channel and `now`.
        key = (channel, now)
        due = self._due.get(key)
        if due is None:
            due = self._due[key] = next_send_time(now, settings.quiet_hours.get(channel.value), settings.tz)
        return due

    def capped(self, settings: Settings, customer_id: str, channel: Channel, now: dt.datetime) -> bool:
        tz = settings.tz
        if channel in TASK_CHANNELS:  # tasks.caps: at most one marketing call a week by default
            return self.tasks is not None and task_capped(self.tasks, settings, customer_id, channel,
                                                          now.astimezone(tz).date())
        day = self._day.get((channel, now))
        if day is None:
            day = self._day[(channel, now)] = self.due_at(settings, channel, now).astimezone(tz).date()
        planned = self.planned.get((customer_id, channel.value))
        if not planned:  # nothing planned for this customer: the same answer for everyone on `day`
            free = self._capped_alone.get(day)
            if free is None:
                free = self._capped_alone[day] = is_capped(day, [], settings.frequency_caps)
            return free
        return is_capped(day, [t.astimezone(tz).date() for t in planned], settings.frequency_caps)


def subject_id(facts: FactSet) -> str:
    """The id of a match's subject: its deposit's, else its customer's."""
    return str(facts.deposit["deposit_id"] if facts.deposit is not None else facts.customer["customer_id"])


def repeat_window_start(every_days: int, now: dt.datetime, settings: Settings) -> dt.datetime:
    """`every: Nd` counts messages created since local midnight N-1 days before today (settings.tz):
    a subject reached on day 0 may be reached again on day N, not before."""
    local_today = now.astimezone(settings.tz).date()
    return dt.datetime.combine(local_today - dt.timedelta(days=every_days - 1), dt.time(), tzinfo=settings.tz)


def contact_state(services: Services, prep: RuleRun, matches: Sequence[Match], now: dt.datetime) -> ContactState:
    """One query each for the batch: planned marketing messages (caps), suppressed addresses, and
    for an `every` rule the subjects it reached within its window."""
    settings = services.settings
    addresses = [(c.value, address_of(c, m.facts.customer["mobile"], m.facts.customer["email"]) or "")
                 for m in matches for c in prep.rule.channels if c is not Channel.VISIT]
    if any(c in MOBILE_CHANNELS for c in prep.rule.channels):  # a mobile a manager flagged wrong_number
        addresses += [(SuppressionReason.WRONG_NUMBER.value, m.facts.customer["mobile"] or "") for m in matches]
    planned: dict[tuple[str, str], list[dt.datetime]] = {}
    blocked = services.store.blocked_addresses(addresses)
    if prep.rule.is_marketing and settings.frequency_caps and matches:
        local_today = now.astimezone(settings.tz).date()
        since_day = cap_window_start(local_today, settings.frequency_caps)
        since = dt.datetime.combine(since_day, dt.time(), tzinfo=settings.tz)
        planned = services.store.planned_marketing(sorted({m.facts.customer["customer_id"] for m in matches}),
                                                   since)
    recent: set[str] = set()
    if prep.rule.every_days is not None and matches:
        recent = services.store.recent_subjects(
            rule_id=prep.rule.id, subject_type=prep.rule.trigger.subject.value,
            customer_ids=sorted({m.facts.customer["customer_id"] for m in matches}),
            since=repeat_window_start(prep.rule.every_days, now, settings))
    tasks = None
    if plans_tasks(prep.rule) and matches:
        tasks = task_plan(services.store, prep.rule, [m.facts.customer for m in matches], settings, now)
    return ContactState(planned, blocked, recent, tasks)


def holdout_group(rule: Rule, customer_id: str, settings: Settings) -> HoldoutGroup | None:
    """Whether a customer the policy lets this rule contact is held out instead, and by what.

    The global control group first (marketing rules only), then the rule's own holdout; both are
    deterministic buckets of the customer id (effect.assignment), the same in every process.
    """
    group = settings.control_group
    if group is not None and rule.is_marketing and held_out(customer_id, group.hash_salt, group.percent):
        return HoldoutGroup.CONTROL_GROUP
    if rule.holdout is not None and held_out(customer_id, holdout_salt(rule.id, rule.holdout.salt),
                                             rule.holdout.percent):
        return HoldoutGroup.RULE
    return None


def decide_and_render(services: Services, prep: RuleRun, match: Match, state: ContactState,
                      now: dt.datetime, *, dry: bool = True) -> None:
    """The contact policy's decision for one match (its channel, or why not), the holdout, and the
    rendered message or task talking points. A call or visit also takes a day on the manager's list
    (reserved in the store unless `dry`) or joins the customer's open task of the rule."""
    customer = match.facts.customer
    settings = services.settings
    cid = customer["customer_id"]
    if subject_id(match.facts) in state.recent:  # `every`: reached within its window, before any policy
        match.decision = Decision(suppressed=SuppressionReason.REPEAT_WINDOW)
        return
    contact = Contact(
        mobile=customer["mobile"], email=customer["email"], do_not_contact=bool(customer["do_not_contact"]),
        risk_rank=customer["risk_rank"], consents=match.consents,
        capped=frozenset(c for c in prep.rule.channels
                         if prep.rule.is_marketing and state.capped(settings, cid, c, now)),
        blocked=frozenset(c for c in prep.rule.channels
                          if (c.value, address_of(c, customer["mobile"], customer["email"])) in state.blocked),
        wrong_number=(SuppressionReason.WRONG_NUMBER.value, customer["mobile"] or "") in state.blocked)
    full: set[Channel] = set()
    while True:
        match.decision = decide_contact(replace(contact, full=frozenset(full)) if full else contact,
                                        category=prep.rule.category,
                                        channels=prep.rule.channels, template_channels=prep.templates.channels,
                                        product_risk_rank=prep.product_risk_rank)
        channel = match.decision.channel
        if channel is None or channel not in TASK_CHANNELS or state.tasks is None:
            break
        owner = match.owner = owner_of(customer, state.tasks, channel)
        opened = state.tasks.open.get((cid, channel.value))
        if opened is not None:  # a repeated alert joins the open task: no new task, no capacity taken
            match.merge_into = int(opened["id"])
            match.due_at = opened["due_at"]
            break
        if holdout_group(prep.rule, cid, settings) is not None:  # held out: takes none of the manager's day
            break
        try:
            match.slot = find_slot(services.store, state.tasks, owner, channel, now=now, priority=prep.rule.priority,
                                   settings=settings, holidays=services.holidays, dry=dry)
        except CalendarNotAnnounced as exc:
            assert exc.day is not None
            raise OfficialCalendarUnknown(exc.year, exc.day, TASK_DAYS, exc.source) from exc
        if match.slot is not None:
            break
        full.add(channel)  # the manager is full up to the horizon: the rule's next channel
    if not match.decision.send:
        return
    assert match.decision.channel is not None
    match.due_at = (match.slot.due_at if match.slot is not None
                    else match.due_at or now if match.decision.channel in TASK_CHANNELS
                    else state.due_at(settings, match.decision.channel, now))
    if prep.rule.is_marketing:  # later matches of this batch see this one under the caps
        state.planned.setdefault((cid, match.decision.channel.value), []).append(match.due_at)
    # After the whole policy, so both arms are customers we would really have contacted; a held-out
    # match keeps the cap slot taken above, so no lower-priority campaign reaches it in its place.
    match.held_out = holdout_group(prep.rule, cid, settings)
    if match.held_out is not None:
        return
    context = match.namespaces
    if prep.rule.is_marketing and match.decision.channel is Channel.EMAIL:
        context = {**context, "unsubscribe_url": unsubscribe_url(settings.public_base_url, settings.secret_key,
                                                                 cid, Channel.EMAIL.value)}
    if match.decision.channel in TASK_CHANNELS:
        context = {**context, **task_context(prep, match, settings)}
    try:
        match.message = render_message(
            prep.templates, match.decision.channel.value, context,
            signature=services.settings.sms_signature,
            opt_out=services.settings.sms_opt_out if prep.rule.is_marketing else None)
    except TemplateError as exc:
        match.error = str(exc)


def task_context(prep: RuleRun, match: Match, settings: Settings) -> dict[str, Any]:
    """What a task's talking points see besides the message context: the manager, the task, and
    the suitability verdict of the product it is about."""
    owner = match.owner.view() if match.owner is not None else {"id": None, "name": None, "branch": None,
                                                                  "queue": True}
    customer_rank = match.facts.customer.get("risk_rank")
    product_rank = prep.product_risk_rank
    return {"manager": owner,
            "task": {"type": match.decision.channel.value if match.decision and match.decision.channel else None,
                     "due_at": match.due_at.astimezone(settings.tz).strftime("%Y-%m-%d %H:%M") if match.due_at else None,
                     "priority": prep.rule.priority},
            "suitability": {"customer_risk_rank": customer_rank, "product_risk_rank": product_rank,
                            "suitable": product_rank is None or (customer_rank is not None and customer_rank >= product_rank)}}


def task_row(prep: RuleRun, match: Match, run_id: int, now: dt.datetime) -> dict[str, Any]:
    """A planned call or visit, as the tasks table holds it (its talking points, or why not)."""
    decision, slot, facts = match.decision, match.slot, match.facts
    assert decision is not None and decision.channel is not None and slot is not None
    consent = decision.consent
    return {
        "dedupe_key": match.dedupe_key, "run_id": run_id, "rule_id": prep.rule.id, "rule_version": prep.rule.version,
        "category": prep.rule.category.value, "priority": prep.rule.priority,
        "customer_id": facts.customer["customer_id"],
        "subject_type": (SubjectType.DEPOSIT if facts.deposit is not None else SubjectType.CUSTOMER).value,
        "subject_id": subject_id(facts), "type": decision.channel.value, "manager_id": slot.owner.manager_id,
        "branch": facts.customer.get("branch"), "status": TaskStatus.OPEN.value, "due_at": slot.due_at,
        "created_at": now, "updated_at": now, "last_alert_at": now, "alerts": 1,
        "talking_points": match.message.body if match.message else None,
        "note": f"talking points could not be rendered: {match.error}" if match.error else None,
        "consent_source": consent.source if consent else None, "consent_at": consent.recorded_at if consent else None,
    }


def message_row(prep: RuleRun, match: Match, run_id: int, now: dt.datetime) -> dict[str, Any]:
    decision = match.decision
    assert decision is not None and decision.channel is not None
    message = match.message
    facts = match.facts
    subject_type = SubjectType.DEPOSIT if facts.deposit is not None else SubjectType.CUSTOMER
    consent = decision.consent
    # held out: the decision is recorded (no body, no recipient) with the time it would have been sent
    status = (MessageStatus.HELD_OUT if match.held_out is not None else MessageStatus.FAILED if message is None
              else MessageStatus.SCHEDULED if match.due_at and match.due_at > now else MessageStatus.QUEUED)
    return {
        "dedupe_key": match.dedupe_key, "run_id": run_id, "rule_id": prep.rule.id,
        "rule_version": prep.rule.version,
        "category": prep.rule.category.value, "priority": prep.rule.priority,
        "customer_id": facts.customer["customer_id"], "subject_type": subject_type.value,
        "subject_id": facts.deposit["deposit_id"] if facts.deposit else facts.customer["customer_id"],
        "channel": decision.channel.value,
        "recipient": None if match.held_out is not None else decision.recipient,
        "status": status.value, "held_out_by": match.held_out.value if match.held_out is not None else None,
        "subject": message.subject if message else None, "body": message.body if message else None,
        "html": message.html if message else None,
        "sms_segments": message.sms.segments if message and message.sms else None,
        "error": match.error, "consent_source": consent.source if consent else None,
        "consent_at": consent.recorded_at if consent else None, "created_at": now,
        "due_at": match.due_at or now,
    }


def evaluate_batch(services: Services, prep: RuleRun,
                   candidates: Sequence[CandidateRow]) -> tuple[list[FactSet], list[dict[str, Any]], list[bool]]:
    """One batch of candidates -> their facts, namespaces and the engine's verdicts."""
    holds: Mapping[str, list[str]] = {}
    if prep.needs_holds:
        holds = services.store.load_holds(sorted({c.customer["customer_id"] for c in candidates}))
    facts = fact_sets(candidates, holds, prep.today, prep.derive)
    namespaces = [fs.namespaces(prep.shared) for fs in facts]
    verdicts = services.engine.evaluate(prep.rule.id, [prep.flatten(ns) for ns in namespaces])
    return facts, namespaces, verdicts


def process_batch(services: Services, prep: RuleRun, candidates: Sequence[CandidateRow], stats: RuleStats,
                  *, run_id: int | None, now: dt.datetime,
                  on_match: Callable[[Match], None] | None = None) -> None:
    """Evaluate, decide, render and write one batch of candidates (a dry run: run_id None, writes nothing)."""
    facts, namespaces, verdicts = evaluate_batch(services, prep, candidates)
    stats.candidates += len(candidates)
    matches = []
    for candidate, fs, ns, hit in zip(candidates, facts, namespaces, verdicts):
        if hit:
            matches.append(Match(fs, ns, dedupe_key(prep, fs), consents(candidate, services.settings.phone_consent_default)))
    stats.matched += len(matches)
    keys = [m.dedupe_key for m in matches]
    done = services.store.existing_messages(keys)
    for written in (done[m.dedupe_key] for m in matches if m.dedupe_key in done):
        if run_id is not None and written.run_id == run_id:  # this run's shard, executed again
            setattr(stats, written.outcome, getattr(stats, written.outcome) + 1)
        else:
            stats.duplicates += 1
    tasked = services.store.existing_tasks(keys) if plans_tasks(prep.rule) else {}
    for task_run in (tasked[k] for k in keys if k in tasked and k not in done):
        if run_id is not None and task_run == run_id:
            stats.tasks += 1
        else:
            stats.duplicates += 1
    fresh = [m for m in matches if m.dedupe_key not in done and m.dedupe_key not in tasked]
    state = contact_state(services, prep, fresh, now)
    rows, tasks = [], []
    for match in fresh:
        decide_and_render(services, prep, match, state, now, dry=run_id is None)
        assert match.decision is not None
        if on_match is not None:
            on_match(match)
        if match.decision.suppressed is not None:
            stats.suppressed[match.decision.suppressed.value] += 1
        elif match.merge_into is not None:
            if run_id is None or services.store.merge_task_alert(
                    match.merge_into, talking_points=match.message.body if match.message else None,
                    priority=prep.rule.priority, now=now):
                stats.merged += 1
            else:  # closed since this batch read it: this alert is a task of its own next time
                stats.duplicates += 1
        elif match.slot is not None and match.held_out is None:
            if run_id is None:
                stats.tasks += 1
            else:
                tasks.append((match, task_row(prep, match, run_id, now)))
        elif run_id is not None:
            rows.append(message_row(prep, match, run_id, now))
        elif match.held_out is not None:
            stats.held_out += 1  # dry run: would be held out
        elif match.message is None:
            stats.failed += 1
        elif match.due_at and match.due_at > now:  # dry run: would be scheduled
            stats.scheduled += 1
        else:
            stats.queued += 1  # dry run: would be queued
    if tasks:
        planted = services.store.insert_tasks([row for _, row in tasks])
        for match, row in tasks:
            if row["dedupe_key"] in planted and row["talking_points"] is None:
                stats.failed += 1  # planned, but its talking points did not render: the template needs a fix
            elif row["dedupe_key"] in planted:
                stats.tasks += 1
            else:  # another run planned it between our check and insert: its day goes back
                assert match.slot is not None
                services.store.release_task_slot(match.slot.owner.key, match.slot.day, row["type"])
                stats.duplicates += 1
    if not rows:
        return
    inserted = services.store.insert_messages(rows)
    for row in rows:
        if row["dedupe_key"] not in inserted:
            stats.duplicates += 1  # another run wrote it between our check and insert
        elif row["status"] == MessageStatus.QUEUED.value:
            stats.queued += 1
        elif row["status"] == MessageStatus.SCHEDULED.value:
            stats.scheduled += 1
        elif row["status"] == MessageStatus.HELD_OUT.value:
            stats.held_out += 1
        else:
            stats.failed += 1


def run_rule(services: Services, rule: Rule, today: dt.date, *, run_id: int | None, now: dt.datetime,
             event: Event | None = None, shard: Shard = WHOLE) -> RuleStats:
    """One rule over its candidates in a shard; its failure is recorded, never raised."""
    with logs.bound(rule_id=rule.id, run_id=run_id):  # its log lines name the rule (and the run)
        stats = _run_rule(services, rule, today, run_id=run_id, now=now, event=event, shard=shard)
        if run_id is not None:
            log.info("rule %s: %s candidate(s), %s matched, %s queued, %s scheduled, %s suppressed in %.2f s",
                     rule.id, stats.candidates, stats.matched, stats.queued, stats.scheduled,
                     sum(stats.suppressed.values()), stats.seconds)
        return stats


def _run_rule(services: Services, rule: Rule, today: dt.date, *, run_id: int | None, now: dt.datetime,
              event: Event | None, shard: Shard) -> RuleStats:
    stats = RuleStats(rule.id)
    started = time.perf_counter()
    try:
        prep = prepare_rule(services, rule, today, event)
        stats.skipped = prep.skipped
        plan = replace(prep.plan, customer_from=shard.lower, customer_to=shard.upper)
        for batch in services.store.select_candidates(plan, services.settings.batch_size):
            process_batch(services, prep, batch, stats, run_id=run_id, now=now)
    except CampaignEngineError as exc:  # bad rule data, the engine, the store (StoreError): this rule only
        stats.error = str(exc)
        log.error("run %s rule %s failed: %s", run_id, rule.id, exc)
    stats.seconds = time.perf_counter() - started
    return stats
