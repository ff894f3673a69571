"""The effect screen: for every live rule with a goal, its treated and held-out arms, the success rate
(精准营销成功率) and the lift with its 95 % interval, as `campaign-engine effect` and the API's
GET /api/v1/rules/<id>/effect report them (pipeline.effect.effect_report). The report's own verdict
decides whether a lift may be read; this screen never computes another."""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import g, render_template, request
from markupsafe import Markup

from ...api.auth import READ
from ...errors import CampaignEngineError, NotFound, ValidationFailed
from ...pipeline.effect import EffectRequest, effect_report, rules_with_goals
from ...store.console_data import any_conversions
from .. import auth
from ..blueprint import bp, t
from ..effect_chart import Row, interval_chart

TREATED_TONE, HOLDOUT_TONE, LIFT_TONE, UNREADABLE_TONE = 0, 5, 1, 6


def _day(name: str, problems: list[str]) -> dt.date | None:
    text = (request.args.get(name) or "").strip()
    if not text:
        return None
    try:
        if len(text) != 10:
            raise ValueError(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        problems.append(t(f"effect.bad_{name}"))
        return None


def _lift_chart(entries: list[dict[str, Any]]) -> Markup | None:
    rows = [Row(label=f"{e['rule_id']} {e['name']}".strip(), value=e["report"].lift,
                low=e["report"].lift_ci[0] if e["report"].lift_ci else None,
                high=e["report"].lift_ci[1] if e["report"].lift_ci else None,
                tone=LIFT_TONE if e["report"].readable else UNREADABLE_TONE,
                note="" if e["report"].readable else t("effect.not_readable_short"))
            for e in entries if e.get("report") is not None]
    if not any(r.value is not None for r in rows):
        return None
    return Markup(interval_chart(rows, title=t("effect.lift_chart"), unit=" " + t("effect.pp"),
                                 tick_unit=t("effect.pp_tick"), signed=True, empty=t("effect.no_value")))


def _arms_chart(entry: dict[str, Any]) -> Markup | None:
    report = entry["report"]
    rows = []
    for arm, tone, key in ((report.treated, TREATED_TONE, "effect.treated"),
                           (report.holdout, HOLDOUT_TONE, "effect.holdout")):
        rows.append(Row(label=t(key), value=arm.rate, low=arm.ci[0] if arm.ci else None,
                        high=arm.ci[1] if arm.ci else None, tone=tone))
    if not any(r.value is not None for r in rows):
        return None
    return Markup(interval_chart(rows, title=t("effect.arms_chart", rule=entry["rule_id"]), unit="%",
                                 width=900, empty=t("effect.no_value")))


@bp.route("/effect")
@auth.requires(READ)
def effect() -> Any:
    problems: list[str] = []
    date_from, date_to = _day("from", problems), _day("to", problems)
    if date_from and date_to and date_from > date_to:
        problems.append(t("effect.bad_range"))
    services = g.services
    entries: list[dict[str, Any]] = []
    if not problems:
        for rule_id in rules_with_goals(services):
            rule = services.rulebook.get(rule_id)
            entry: dict[str, Any] = {"rule_id": rule_id, "name": rule.name if rule else "", "rule": rule,
                                     "report": None, "error": None}
            try:
                entry["report"] = effect_report(services, EffectRequest(rule_id, date_from, date_to),
                                                now=auth.now())
            except (NotFound, ValidationFailed) as exc:
                entry["error"] = str(exc)
            except CampaignEngineError as exc:  # a domain refusal shown, never the generic 500
                entry["error"] = str(exc)
            entries.append(entry)
        for entry in entries:
            entry["chart"] = _arms_chart(entry) if entry["report"] is not None else None
    with services.db.connect() as conn:
        has_conversions = any_conversions(conn)
    return render_template("console/effect/index.html", entries=entries, problems=problems,
                           lift_chart=_lift_chart(entries) if entries else None, has_conversions=has_conversions,
                           form={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
                           ), (400 if problems else 200)
