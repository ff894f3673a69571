"""Event payloads: validated with marshmallow into the event.* namespace.

An unknown or missing field is an EventPayloadError naming the field.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Mapping, TypedDict

from marshmallow import (RAISE, Schema, ValidationError, fields, validate, validates_schema)

from .errors import EventPayloadError, Problem
from .vocabulary import PRODUCT_RISK_LEVELS, EventType, risk_rank

_EVENT_ID = fields.String(required=True, validate=validate.Length(min=1, max=128))


def _non_negative(value: Any) -> None:
    # A function, not validate.Range: apispec would document a Decimal bound as the string "0.00".
    if value < 0:
        raise ValidationError("must not be negative")


class _MoneyKwargs(TypedDict):
    """Keyword arguments shared by the money fields."""

    as_string: bool
    places: int
    allow_nan: bool
    validate: Callable[[Any], None]
    metadata: dict[str, Any]


class _RateKwargs(TypedDict):
    """Keyword arguments shared by the rate fields."""

    required: bool
    as_string: bool
    places: int
    allow_nan: bool


_MONEY: _MoneyKwargs = dict(as_string=False, places=2, allow_nan=False, validate=_non_negative,
                            metadata={"minimum": 0})
_RATE: _RateKwargs = dict(required=True, as_string=False, places=4, allow_nan=False)


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


@dataclass(frozen=True)
class Event:
    """A validated event: its type and its event.* namespace (derived fields included).

    Made once at the edge (`parse_event`, or `from_validated` after a web schema has loaded
    the payload), stored with its run in canonical JSON (`canonical`), and read back by each
    shard with `from_canonical`, which converts types and validates nothing again.
    """

    type: EventType
    data: Mapping[str, Any]

    @property
    def event_id(self) -> str:
        return str(self.data["event_id"])

    @property
    def key(self) -> str:
        return event_key(self.type, self.event_id)

    def canonical(self) -> dict[str, Any]:
        """JSON values, keys sorted: what a run stores and a replay is compared by."""
        return json.loads(json.dumps(self.data, default=str, sort_keys=True))

    @classmethod
    def from_validated(cls, event_type: EventType, loaded: Mapping[str, Any]) -> "Event":
        """The event from a payload its schema (SCHEMAS) has already loaded: derived fields added."""
        data = copy.deepcopy(dict(loaded))
        if event_type is EventType.RATE_CHANGE:
            data.setdefault("product_type", None)
            data.setdefault("product_code", None)
            data["rate_delta"] = data["new_rate"] - data["old_rate"]
        elif event_type is EventType.PRODUCT_LAUNCH:
            data["product"]["risk_rank"] = risk_rank(data["product"]["risk_level"])
        return cls(event_type, data)

    @classmethod
    def from_canonical(cls, event_type: EventType, stored: Mapping[str, Any]) -> "Event":
        """The event again from what its run stored: JSON values back to dates and decimals."""
        return cls(event_type, _typed(SCHEMAS[event_type](), stored))


def _typed(schema: Schema, stored: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(stored)
    for name, value in stored.items():
        spec = schema.fields.get(name)
        if value is None or spec is None:  # derived fields: rate_delta, risk_rank
            continue
        if isinstance(spec, fields.Nested):
            out[name] = _typed(spec.schema, value)
        elif isinstance(spec, fields.Decimal):
            out[name] = Decimal(str(value))
        elif isinstance(spec, fields.Date):  # before DateTime: marshmallow's Date is a DateTime
            out[name] = dt.date.fromisoformat(value)
        elif isinstance(spec, fields.DateTime):
            out[name] = dt.datetime.fromisoformat(value)
    if "rate_delta" in out and out["rate_delta"] is not None:
        out["rate_delta"] = Decimal(str(out["rate_delta"]))
    return out


def parse_event(event_type: EventType, payload: Any) -> Event:
    """Validate a payload into an Event; an EventPayloadError names each bad field."""
    if not isinstance(payload, Mapping):
        raise EventPayloadError([Problem("the payload must be a JSON object")], what=f"{event_type} event")
    try:
        loaded: dict[str, Any] = SCHEMAS[event_type]().load(payload)
    except ValidationError as exc:
        raise EventPayloadError(_problems(exc.messages), what=f"{event_type} event") from None
    return Event.from_validated(event_type, loaded)


def event_key(event_type: EventType, event_id: str) -> str:
    return f"{event_type.value}:{event_id}"


__all__ = ["SCHEMAS", "Event", "parse_event", "parse_event_type", "event_key"]
