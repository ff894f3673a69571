"""Measuring effect: conversions in (POST /conversions) and a rule's effect out (GET /rules/{id}/effect)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from flask import g

from ...errors import Problem, ValidationFailed
from ...imports import COLUMNS, check_row
from ...pipeline.effect import EffectRequest, effect_report
from ...store import conversions
from ..auth import READ, RUN
from .common import MAX_ID, now, record, services, today
from ..blueprint import ApiBlueprint

blp = ApiBlueprint("effect", __name__, url_prefix="/api/v1",
                   description="Conversions, and the effect of a rule against its holdout")

MAX_BATCH = 10_000
FIELDS = COLUMNS["conversions"]


class ConversionSchema(ma.Schema):
    """For the documentation: the items are checked one by one by the CSV import's row parsers."""

    conversion_id = ma.fields.String(required=True, metadata={"description": "the bank's id: recorded once"})
    customer_id = ma.fields.String(required=True)
    type = ma.fields.String(required=True, metadata={
        "description": "deposit_open, deposit_renewal, product_purchase, holding_increase or custom"})
    product_code = ma.fields.String(allow_none=True)
    amount = ma.fields.Decimal(allow_none=True, as_string=False)
    occurred_at = ma.fields.String(required=True, metadata={
        "description": "2026-03-12T10:30:00+08:00 (a naive time is the configured time zone's), or a date"})


class ConversionBatchSchema(ma.Schema):
    conversions = ma.fields.List(ma.fields.Raw(metadata={"description": "a conversion (ConversionSchema)"}),
                                 required=True, validate=ma.validate.Length(min=1, max=MAX_BATCH))


class ConversionResultSchema(ma.Schema):
    received = ma.fields.Integer()
    recorded = ma.fields.Integer(metadata={"description": "new conversions recorded now"})
    already_recorded = ma.fields.Integer(metadata={"description": "sent before with the same values: "
                                                                  "nothing written (the batch is idempotent)"})


class EffectArgs(ma.Schema):
    date_from = ma.fields.Date(data_key="from", metadata={"description": "first local day (default: the "
                                                                         "rule's first contact)"})
    date_to = ma.fields.Date(data_key="to", metadata={"description": "last local day, included (default today)"})
    run = ma.fields.Integer(validate=ma.validate.Range(min=1, max=MAX_ID),
                            metadata={"description": "only this run's contacts"})


class ArmSchema(ma.Schema):
    n = ma.fields.Integer()
    conversions = ma.fields.Integer()
    rate = ma.fields.Float(allow_none=True)
    ci = ma.fields.List(ma.fields.Float(), allow_none=True, metadata={"description": "95 % Wilson interval"})
    amount = ma.fields.Float(allow_none=True)


class LiftSchema(ma.Schema):
    absolute = ma.fields.Float(allow_none=True)
    ci = ma.fields.List(ma.fields.Float(), allow_none=True, metadata={"description": "95 % Newcombe interval"})
    relative = ma.fields.Float(allow_none=True)
    p_value = ma.fields.Float(allow_none=True)


class IncrementalSchema(ma.Schema):
    conversions = ma.fields.Float(allow_none=True)
    amount = ma.fields.Float(allow_none=True)


class EffectSchema(ma.Schema):
    rule = ma.fields.String()
    date_from = ma.fields.String(attribute="from", data_key="from", allow_none=True)
    date_to = ma.fields.String(attribute="to", data_key="to", allow_none=True)
    window_days = ma.fields.Integer()
    readable = ma.fields.Boolean()
    reason = ma.fields.String(allow_none=True)
    treated = ma.fields.Nested(ArmSchema)
    holdout = ma.fields.Nested(ArmSchema)
    lift = ma.fields.Nested(LiftSchema)
    incremental = ma.fields.Nested(IncrementalSchema)
    success_rate = ma.fields.Float(allow_none=True, metadata={
        "description": "精准营销成功率: converted / contacted among the treated messages sent"})


def _text(value: Any) -> str | None:
    """An item's value as the row parsers read it; None when it is neither text nor a number."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return repr(value)
    return None


def _parse(items: list[Any]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Each item through the CSV import's row parsers; problems name `conversions.<index>.<field>`."""
    rows, problems = [], []
    tz, moment = services().settings.tz, now()
    for index, item in enumerate(items):
        where = f"conversions.{index}"
        if not isinstance(item, dict):
            problems.append(Problem("a conversion is an object", field=where))
            continue
        values: dict[str, str] = {}
        for key, value in item.items():
            text = _text(value)
            if key not in FIELDS:
                problems.append(Problem(f"unknown field (fields: {', '.join(FIELDS)})", field=f"{where}.{key}"))
            elif text is None:
                problems.append(Problem("must be text or a number", field=f"{where}.{key}"))
            else:
                values[key] = text
        row, found = check_row("conversions", values, today=today())
        problems += [Problem(p.reason, field=f"{where}.{p.field}") for p in found]
        if not found:
            row["occurred_at"] = conversions.occurred_at(row["occurred_at"], tz=tz, now=moment)
            rows.append(row)
    return rows, problems


@blp.route("/conversions", methods=["POST"])
@blp.secured(RUN)
@blp.arguments(ConversionBatchSchema)
@blp.response(200, ConversionResultSchema)
def record_conversions(body):  # type: ignore[no-untyped-def]
    """Record a batch of conversions, idempotent on conversion_id; with a bad item, nothing is
    recorded and the 400 names each bad item by its index (`conversions.3.amount`)."""
    rows, problems = _parse(body["conversions"])
    if problems:
        raise ValidationFailed(problems, what="conversions")
    with services().db.begin() as conn:
        batch = conversions.record_batch(conn, rows, source=f"api:{g.actor}", now=now())
        if batch.problems:  # rolled back: nothing recorded
            raise ValidationFailed([Problem(reason, field=f"conversions.{index}.{name}")
                                    for index, name, reason in batch.problems], what="conversions")
        result = {"received": len(rows), "recorded": batch.recorded, "already_recorded": batch.already}
        record("conversions.record", "conversions", result, conn=conn)
    return result


@blp.route("/rules/<rule_id>/effect", methods=["GET"])
@blp.secured(READ)
@blp.arguments(EffectArgs, location="query")
@blp.response(200, EffectSchema)
def rule_effect(args, rule_id: str):  # type: ignore[no-untyped-def]
    """A rule's effect: its contacts against its holdout over local days (or one run), with 95 %
    intervals; `readable` is false, with the reason, until every contact's window has closed and
    both arms are large enough."""
    request = EffectRequest(rule_id, date_from=args.get("date_from"), date_to=args.get("date_to"),
                            run_id=args.get("run"))
    return effect_report(services(), request, now=now()).as_dict()
