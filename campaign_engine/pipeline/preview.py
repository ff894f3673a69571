"""Preview: what a rule would do (counts, sample messages, one customer's condition by condition),
through the same batch path as a run, writing nothing.

It says what a run started now would do: a match queued now, or scheduled for its channel's next
sending window (quiet hours, in the configured time zone), or already in the outbox from an
earlier run of the same occurrence (then the message written, not a decision that would never be
taken).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from ..errors import NotFound, Problem, ValidationFailed
from ..evaluation.explain import explain
from ..events import parse_event
from ..facts.namespaces import FactSet
from ..selection.plan import CandidatePlan
from ..vocabulary import TASK_CHANNELS
from .batch import (Match, consents, contact_state, decide_and_render, dedupe_key, fact_sets, prepare_rule,
                    process_batch)
from .ports import OutboxEntry
from .publishing import not_live_hint
from .report import RuleStats
from .task_planning import plans_tasks
from .services import Services


def preview(services: Services, rule_id: str, *, today: dt.date, now: dt.datetime,
            customer_id: str | None = None, event_payload: Any = None,
            sample: int | None = None) -> dict[str, Any]:
    """What a rule would do: counts, a sample of rendered messages, and for one customer
    the outcome of each condition. Writes nothing."""
    rule = services.rulebook.get(rule_id)
    if rule is None:
        raise NotFound("rule", rule_id, not_live_hint(services.store, [rule_id]))
    event = None
    if rule.trigger.event is not None:
        if event_payload is None:
            raise ValidationFailed([Problem("an event rule previews against an event payload",
                                            rule=rule.id, field="event")], what="preview request")
        event = parse_event(rule.trigger.event, event_payload)
    sample_size = services.settings.preview_sample if sample is None else sample
    tz = services.settings.tz
    prep = prepare_rule(services, rule, today, event)
    stats = RuleStats(rule.id, skipped=prep.skipped)  # outside its window, or workdays_only on a day off
    samples: list[dict[str, Any]] = []
    waiting: Counter[tuple[dt.datetime, str]] = Counter()  # (due at, channel) of the would-be scheduled
    planned: Counter[tuple[dt.datetime, str]] = Counter()  # (due at, call or visit) of the would-be tasks

    def keep(match: Match) -> None:
        if _waits(match, now):
            assert match.due_at is not None and match.decision is not None and match.decision.channel is not None
            waiting[(match.due_at, match.decision.channel.value)] += 1
        if _plans(match):
            assert match.slot is not None and match.decision is not None and match.decision.channel is not None
            planned[(match.slot.due_at, match.decision.channel.value)] += 1
        if len(samples) < sample_size:
            samples.append(_match_view(match, now, tz))

    if customer_id is None:
        for batch in services.store.select_candidates(prep.plan, services.settings.batch_size):
            process_batch(services, prep, batch, stats, run_id=None, now=now, on_match=keep)
        tasks = {"tasks_planned": [{"at": _local(at, tz), "type": type_, "count": count}
                                   for (at, type_), count in sorted(planned.items())]} if plans_tasks(rule) else {}
        return {"rule": rule.id, "date": today.isoformat(), "now": _local(now, tz), "counts": stats.as_dict(),
                "scheduled_for": [{"at": _local(at, tz), "channel": channel, "count": count}
                                  for (at, channel), count in sorted(waiting.items())],
                **tasks, "sample": samples}

    one = CandidatePlan(subject=rule.trigger.subject, customer_id=customer_id)
    subjects = []
    for batch in services.store.select_candidates(one, services.settings.batch_size):
        holds = services.store.load_holds([customer_id])
        facts = fact_sets(batch, holds, today, prep.derive)
        keys = [dedupe_key(prep, fs) for fs in facts]
        written = services.store.outbox_entries(keys)
        for candidate, fs, key in zip(batch, facts, keys):
            ns = fs.namespaces(prep.shared)
            outcome = explain(rule.conditions, ns)
            view: dict[str, Any] = {
                "subject_id": fs.deposit["deposit_id"] if fs.deposit else fs.customer["customer_id"],
                "matches": outcome.result, "conditions": outcome.as_dict(),
                "explanation": outcome.lines(),
                "selected_by_sql": _in_plan(services, prep.plan, fs),
            }
            if key in written:  # this occurrence has its message: say which, not what a run would decide
                view.update(customer_id=fs.customer["customer_id"], dedupe_key=key,
                            existing_message=_entry_view(written[key], tz))
            elif outcome.result and not prep.skipped:  # a skipped rule decides nothing (`skipped` says why)
                match = Match(fs, ns, key, consents(candidate))
                decide_and_render(services, prep, match, contact_state(services, prep, [match], now), now)
                view.update(_match_view(match, now, tz))
            subjects.append(view)
    if not subjects:
        raise NotFound("customer", customer_id)
    return {"rule": rule.id, "date": today.isoformat(), "now": _local(now, tz), "customer_id": customer_id,
            "subjects": subjects, **({"skipped": prep.skipped} if prep.skipped else {})}


def _in_plan(services: Services, plan: CandidatePlan, facts: FactSet) -> bool:
    """Would the run's SQL have read this subject? (It must, whenever the rule matches.)"""
    narrowed = replace(plan, customer_id=facts.customer["customer_id"])
    wanted = facts.deposit["deposit_id"] if facts.deposit else facts.customer["customer_id"]
    for batch in services.store.select_candidates(narrowed, 10_000):
        if any(((c.deposit or {}).get("deposit_id") if facts.deposit else c.customer["customer_id"]) == wanted
               for c in batch):
            return True
    return False


def _local(moment: dt.datetime, tz: ZoneInfo) -> str:
    """ISO 8601 in the configured time zone, with its offset: the time a bank's staff read."""
    return moment.astimezone(tz).isoformat()


def _waits(match: Match, now: dt.datetime) -> bool:
    """Would a run write this match's message `scheduled` (rendered, due after now)? As process_batch
    counts it (a call or visit is a task, not a message: _plans)."""
    decision = match.decision
    return (decision is not None and decision.suppressed is None and match.message is not None
            and decision.channel not in TASK_CHANNELS and match.held_out is None
            and match.due_at is not None and match.due_at > now)


def _plans(match: Match) -> bool:
    """Would a run plan a new manager task for this match (a day found on the list, not held out)?"""
    decision = match.decision
    return (decision is not None and decision.suppressed is None and match.merge_into is None
            and match.slot is not None and match.held_out is None)


def _entry_view(entry: OutboxEntry, tz: ZoneInfo) -> dict[str, Any]:
    return {"id": entry.id, "run_id": entry.run_id, "status": entry.status, "channel": entry.channel,
            "due_at": _local(entry.due_at, tz) if entry.due_at else None}


def _match_view(match: Match, now: dt.datetime, tz: ZoneInfo) -> dict[str, Any]:
    decision = match.decision
    view: dict[str, Any] = {"customer_id": match.facts.customer["customer_id"],
                            "subject_id": (match.facts.deposit or match.facts.customer).get(
                                "deposit_id" if match.facts.deposit else "customer_id"),
                            "dedupe_key": match.dedupe_key}
    if decision is not None and decision.suppressed is not None:
        view["suppressed"] = decision.suppressed.value
    elif decision is not None and decision.channel is not None:
        view["channel"] = decision.channel.value
        if match.held_out is not None:  # would be recorded held_out: never rendered, never sent
            view["held_out"] = match.held_out.value
        elif match.message is not None:
            view.update(subject=match.message.subject, body=match.message.body,
                        sms_segments=match.message.sms.segments if match.message.sms else None)
            if _waits(match, now):
                assert match.due_at is not None
                view["scheduled_for"] = _local(match.due_at, tz)
        else:
            view["error"] = match.error
        if decision.channel in TASK_CHANNELS and match.held_out is None:
            if match.merge_into is not None:  # joins the customer's open task of the rule
                view["merged_into"] = match.merge_into
            if match.due_at is not None:
                view["due_at"] = _local(match.due_at, tz)
            if match.owner is not None:
                view["owner"] = match.owner.view()
    return view
