"""Event payloads: validated with marshmallow into the event.* namespace.

An unknown or missing field is an EventPayloadError naming the field.
"""

from __future__ import annotations

from typing import Any, Mapping

from marshmallow import (RAISE, Schema, ValidationError, fields, validate, validates_schema)

from .errors import EventPayloadError, Problem
from .vocabulary import PRODUCT_RISK_LEVELS, EventType, risk_rank

_EVENT_ID = fields.String(required=True, validate=validate.Length(min=1, max=128))


def _non_negative(value: Any) -> None:
    # A function, not validate.Range: apispec would document a Decimal bound as the string "0.00".
    if value < 0:
        raise ValidationError("must not be negative")


_MONEY = dict(as_string=False, places=2, allow_nan=False, validate=_non_negative, metadata={"minimum": 0})
_RATE = dict(required=True, as_string=False, places=4, allow_nan=False)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class RateChangeSchema(_Strict):
    event_id = _EVENT_ID
    product_type = fields.String(validate=validate.Length(min=1, max=32))
    product_code = fields.String(validate=validate.Length(min=1, max=32))
    old_rate = fields.Decimal(**_RATE)
    new_rate = fields.Decimal(**_RATE)
    effective_date = fields.Date(required=True)

    @validates_schema
    def _one_product(self, data: Mapping[str, Any], **_: Any) -> None:
        if not data.get("product_type") and not data.get("product_code"):
            raise ValidationError("give product_type or product_code", "product_type")


class LaunchedProductSchema(_Strict):
    code = fields.String(required=True, validate=validate.Length(min=1, max=32))
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    type = fields.String(required=True, validate=validate.Length(min=1, max=32))
    risk_level = fields.String(required=True, validate=validate.OneOf(PRODUCT_RISK_LEVELS))
    rate = fields.Decimal(as_string=False, places=4, allow_nan=False, load_default=None)
    min_amount = fields.Decimal(load_default=None, **_MONEY)


class ProductLaunchSchema(_Strict):
    event_id = _EVENT_ID
    product = fields.Nested(LaunchedProductSchema, required=True)
    launch_date = fields.Date(required=True)


class LargeTransactionSchema(_Strict):
    event_id = _EVENT_ID
    customer_id = fields.String(required=True, validate=validate.Length(min=1, max=32))
    account_no = fields.String(required=True, validate=validate.Length(min=1, max=40))
    amount = fields.Decimal(required=True, **_MONEY)
    direction = fields.String(required=True, validate=validate.OneOf(("in", "out")))
    occurred_at = fields.DateTime(required=True)


SCHEMAS: dict[EventType, type[Schema]] = {
    EventType.RATE_CHANGE: RateChangeSchema,
    EventType.PRODUCT_LAUNCH: ProductLaunchSchema,
    EventType.LARGE_TRANSACTION: LargeTransactionSchema,
}


def _problems(messages: Any, path: str = "") -> list[Problem]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            name = path if key == "_schema" else (f"{path}.{key}" if path else str(key))
            out += _problems(value, name)
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [Problem(m, field=path or None) for m in messages]
    return [Problem(str(messages), field=path or None)]


def parse_event_type(name: str) -> EventType:
    """Accept `rate_change` and `rate-change`."""
    try:
        return EventType(name.replace("-", "_"))
    except ValueError:
        known = ", ".join(e.value for e in EventType)
        raise EventPayloadError([Problem(f"unknown event type {name!r} (known: {known})",
                                         field="type")], what="event") from None


def load_event(event_type: EventType, payload: Any) -> dict[str, Any]:
    """Validate a payload and return the event namespace (with derived fields)."""
    if not isinstance(payload, Mapping):
        raise EventPayloadError([Problem("the payload must be a JSON object")], what=f"{event_type} event")
    try:
        data: dict[str, Any] = SCHEMAS[event_type]().load(payload)
    except ValidationError as exc:
        raise EventPayloadError(_problems(exc.messages), what=f"{event_type} event") from None
    if event_type is EventType.RATE_CHANGE:
        data.setdefault("product_type", None)
        data.setdefault("product_code", None)
        data["rate_delta"] = data["new_rate"] - data["old_rate"]
    elif event_type is EventType.PRODUCT_LAUNCH:
        data["product"]["risk_rank"] = risk_rank(data["product"]["risk_level"])
    return data


def restore_event(event_type: EventType, stored: Mapping[str, Any]) -> dict[str, Any]:
    """The event namespace again from what a run stored (JSON of load_event's result): the
    derived and defaulted fields are taken off and the rest validated once more."""
    payload = dict(stored)
    if event_type is EventType.RATE_CHANGE:
        payload.pop("rate_delta", None)
        for key in ("product_type", "product_code"):
            if payload.get(key) is None:
                payload.pop(key, None)
    elif event_type is EventType.PRODUCT_LAUNCH:
        payload["product"] = {k: v for k, v in payload["product"].items() if k != "risk_rank"}
    return load_event(event_type, payload)


def event_key(event_type: EventType, event_id: str) -> str:
    return f"{event_type.value}:{event_id}"


__all__ = ["SCHEMAS", "load_event", "restore_event", "parse_event_type", "event_key"]
