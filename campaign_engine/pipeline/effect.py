"""The effect of a rule: its contacts against its holdout, over a period or one run (issue #11).

`effect_report` is what the entry points call (`campaign-engine effect`, `GET
/api/v1/rules/{id}/effect`): it reads the live rule's goal and holdout, has the store count the
period's contacts and conversions (RunStore.effect_counts, one aggregate query), and builds the
report with effect.report. Periods are whole local days of the configured time zone, `to`'s day
included, by when the contacts were written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..effect.report import EffectReport, build_report
from ..errors import NotFound, Problem, ValidationFailed
from ..rulebook.model import Rule
from ..vocabulary import HoldoutGroup
from .services import Services
from .task_planning import plans_tasks


@dataclass(frozen=True)
class EffectRequest:
    """Which rule, over which local days (None: from its first contact / up to today), or one run."""

    rule_id: str
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    run_id: int | None = None


def _control(services: Services, rule: Rule) -> tuple[HoldoutGroup, str | None]:
    """The group whose held-out rows are the rule's holdout arm, and why there is none when none is."""
    if rule.holdout is not None:
        return HoldoutGroup.RULE, None
    if rule.is_marketing and services.settings.control_group is not None:
        return HoldoutGroup.CONTROL_GROUP, None
    why = ("the rule has no holdout (add `holdout: {percent: 10}` to its file)" if not rule.is_marketing else
           "the rule has no holdout (add `holdout: {percent: 10}`) and no control group is configured")
    return HoldoutGroup.RULE, why


def _local_midnight(day: dt.date, services: Services) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=services.settings.tz).astimezone(dt.timezone.utc)


def effect_report(services: Services, request: EffectRequest, *, now: dt.datetime) -> EffectReport:
    """One rule's effect report. NotFound for a rule that is not live; ValidationFailed for a rule
    without a goal or a period that ends before it starts."""
    rule = services.rulebook.get(request.rule_id)
    if rule is None:
        raise NotFound("rule", request.rule_id, "the effect report reads the live rule's goal")
    if rule.goal is None:
        raise ValidationFailed([Problem("the rule has no goal: add e.g. `goal: {type: deposit_renewal, "
                                        "within_days: 14}` to measure its effect", file=rule.file,
                                        line=rule.line, rule=rule.id, field="goal")], what="effect request")
    tz = services.settings.tz
    date_to = request.date_to or (None if request.run_id is not None else now.astimezone(tz).date())
    if request.date_from and date_to and request.date_from > date_to:
        raise ValidationFailed([Problem(f"from {request.date_from.isoformat()} is after to {date_to.isoformat()}",
                                        field="from")], what="effect request")
    group, no_holdout = _control(services, rule)
    counts = services.store.effect_counts(
        rule_id=rule.id, goal=rule.goal, holdout_group=group.value,
        since=_local_midnight(request.date_from, services) if request.date_from else None,
        until=_local_midnight(date_to + dt.timedelta(days=1), services) if date_to else None,
        run_id=request.run_id, now=now, with_tasks=plans_tasks(rule))
    window = dt.timedelta(days=rule.goal.within_days)
    last_close = (counts.last_anchor + window).astimezone(tz).date() if counts.last_anchor else None
    date_from = request.date_from
    if date_from is None and counts.first_contact is not None and request.run_id is None:
        date_from = counts.first_contact.astimezone(tz).date()
    return build_report(rule.id, counts, window_days=rule.goal.within_days, date_from=date_from,
                        date_to=date_to, last_window_closes=last_close, no_holdout=no_holdout)


def rules_with_goals(services: Services) -> list[str]:
    """The live rules that declare a goal, by id: what `campaign-engine effect` reports by default."""
    return sorted(rule_id for rule_id, rule in services.rulebook.rules.items() if rule.goal is not None)
