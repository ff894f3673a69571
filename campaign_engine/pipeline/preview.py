"""Preview: what a rule would do (counts, sample messages, one customer's condition by condition),
through the same batch path as a run, writing nothing."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from typing import Any

from ..errors import NotFound, Problem, ValidationFailed
from ..evaluation.explain import explain
from ..events import parse_event
from ..facts.namespaces import FactSet
from ..selection.plan import CandidatePlan
from .batch import (Match, consents, contact_state, decide_and_render, dedupe_key, fact_sets, prepare_rule,
                    process_batch)
from .report import RuleStats
from .services import Services


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
        event = parse_event(rule.trigger.event, event_payload)
    sample_size = services.settings.preview_sample if sample is None else sample
    prep = prepare_rule(services, rule, today, event)
    stats = RuleStats(rule.id)
    samples: list[dict[str, Any]] = []

    def keep(match: Match) -> None:
        if len(samples) < sample_size:
            samples.append(_match_view(match))

    if customer_id is None:
        for batch in services.store.select_candidates(prep.plan, services.settings.batch_size):
            process_batch(services, prep, batch, stats, run_id=None, now=now, on_match=keep)
        return {"rule": rule.id, "date": today.isoformat(), "counts": stats.as_dict(), "sample": samples}

    one = CandidatePlan(subject=rule.trigger.subject, customer_id=customer_id)
    subjects = []
    for batch in services.store.select_candidates(one, services.settings.batch_size):
        holds = services.store.load_holds([customer_id])
        for candidate, fs in zip(batch, fact_sets(batch, holds, today)):
            ns = fs.namespaces(prep.shared)
            outcome = explain(rule.conditions, ns)
            view: dict[str, Any] = {
                "subject_id": fs.deposit["deposit_id"] if fs.deposit else fs.customer["customer_id"],
                "matches": outcome.result, "conditions": outcome.as_dict(),
                "explanation": outcome.lines(),
                "selected_by_sql": _in_plan(services, prep.plan, fs),
            }
            if outcome.result:
                match = Match(fs, ns, dedupe_key(prep, fs), consents(candidate))
                decide_and_render(services, prep, match, contact_state(services, prep, [match], now), now)
                view.update(_match_view(match))
            subjects.append(view)
    if not subjects:
        raise NotFound("customer", customer_id)
    return {"rule": rule.id, "date": today.isoformat(), "customer_id": customer_id, "subjects": subjects}


def _in_plan(services: Services, plan: CandidatePlan, facts: FactSet) -> bool:
    """Would the run's SQL have read this subject? (It must, whenever the rule matches.)"""
    narrowed = replace(plan, customer_id=facts.customer["customer_id"])
    wanted = facts.deposit["deposit_id"] if facts.deposit else facts.customer["customer_id"]
    for batch in services.store.select_candidates(narrowed, 10_000):
        if any(((c.deposit or {}).get("deposit_id") if facts.deposit else c.customer["customer_id"]) == wanted
               for c in batch):
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
