"""Customer data: customers, consents, contact history, products, deposits, CSV imports."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import marshmallow as ma
from flask import g, request

from ...errors import NotFound, Problem, ValidationFailed
from ...imports import COLUMNS, KINDS, parse_row
from ...store import customers as store
from ...store.csv_import import import_csv
from ...store.upsert import upsert_rows
from ...vocabulary import Tier
from ..auth import ADMIN, READ
from ..blueprint import ApiBlueprint
from ..errors import ErrorSchema
from .common import (CONTACT_DATA_NOTE, MessagePageSchema, PageArgs, mask_email, mask_mobile, now, page, record,
                     services, today)
from .contact_data import CUSTOMER_CONTACT_FIELDS, RevealArgs, access, present
from .messages import MessageQuery, message_page

blp = ApiBlueprint("customers", __name__, url_prefix="/api/v1",
                   description="Customers, consents, products, deposits and imports")

TIERS = [tier.value for tier in Tier]
# Money and rates leave the API as exact decimal text ("1234.50"), never as binary floats.
DECIMAL_TEXT = {"type": "string", "format": "decimal", "example": "1234.50"}


class ConsentSchema(ma.Schema):
    channel = ma.fields.String()
    granted = ma.fields.Boolean()
    source = ma.fields.String()
    recorded_at = ma.fields.DateTime()


class CustomerSchema(ma.Schema):
    customer_id = ma.fields.String()
    name = ma.fields.String()
    gender = ma.fields.String(allow_none=True)
    birth_date = ma.fields.Date(allow_none=True)
    mobile = ma.fields.String(allow_none=True, metadata={"description": CONTACT_DATA_NOTE})
    email = ma.fields.String(allow_none=True, metadata={"description": CONTACT_DATA_NOTE})
    city = ma.fields.String(allow_none=True)
    branch = ma.fields.String(allow_none=True)
    tier = ma.fields.String()
    risk_level = ma.fields.String(allow_none=True)
    aum = ma.fields.Decimal(as_string=True, metadata=DECIMAL_TEXT)
    rate_sensitive = ma.fields.Boolean()
    do_not_contact = ma.fields.Boolean()
    language = ma.fields.String()
    manager_id = ma.fields.String(allow_none=True)
    birthday_calendar = ma.fields.String(metadata={"description": "solar or lunar: which birthday the customer "
                                                                "celebrates (lunar: greeted on the 农历生日)"})
    updated_at = ma.fields.DateTime()
    consents = ma.fields.List(ma.fields.Nested(ConsentSchema))


class CustomerPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(CustomerSchema))
    next = ma.fields.String(allow_none=True)


class CustomerQuery(PageArgs, RevealArgs):
    tier = ma.fields.String(validate=ma.validate.OneOf(TIERS))
    city = ma.fields.String(validate=ma.validate.Length(max=32))
    branch = ma.fields.String(validate=ma.validate.Length(max=64))
    manager_id = ma.fields.String(validate=ma.validate.Length(max=32))
    risk_level = ma.fields.String(validate=ma.validate.OneOf(["C1", "C2", "C3", "C4", "C5"]))


def _money_range(value: Decimal) -> None:
    # A function, not validate.Range: apispec would document a Decimal bound as a string.
    if not 0 <= value <= Decimal("9999999999999999"):
        raise ma.ValidationError("must be between 0 and 9999999999999999")


class CustomerInSchema(ma.Schema):
    """The customer CSV columns as JSON; validated by the same rules as an import row."""

    class Meta:
        unknown = ma.RAISE

    name = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=64))
    gender = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(["M", "F"]))
    birth_date = ma.fields.Date(allow_none=True)
    mobile = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=20))
    email = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=254))
    city = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))
    branch = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=64))
    tier = ma.fields.String(required=True, validate=ma.validate.OneOf(TIERS))
    risk_level = ma.fields.String(allow_none=True, validate=ma.validate.OneOf(["C1", "C2", "C3", "C4", "C5"]))
    aum = ma.fields.Decimal(load_default=Decimal(0), places=2, allow_nan=False, as_string=False,
                           validate=_money_range, metadata={"minimum": 0, "maximum": 9999999999999999})
    rate_sensitive = ma.fields.Boolean(load_default=False)
    sms_consent = ma.fields.Boolean(metadata={"description": "omit to leave the recorded consent as it is"})
    email_consent = ma.fields.Boolean(metadata={"description": "omit to leave the recorded consent as it is"})
    do_not_contact = ma.fields.Boolean(load_default=False)
    language = ma.fields.String(load_default="zh", validate=ma.validate.Length(min=1, max=8))
    manager_id = ma.fields.String(allow_none=True, validate=ma.validate.Length(max=32))
    birthday_calendar = ma.fields.String(load_default="solar", validate=ma.validate.OneOf(["solar", "lunar"]),
                                         metadata={"description": "which birthday the customer celebrates: solar "
                                                                  "(公历, the default) or lunar (农历)"})


class ConsentInSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE

    granted = ma.fields.Boolean(required=True)
    source = ma.fields.String(required=True, validate=ma.validate.Length(min=1, max=100),
                              metadata={"description": "where the answer came from, e.g. 'branch:0101 form 2026-11'"})


class ImportReportSchema(ma.Schema):
    kind = ma.fields.String()
    rows = ma.fields.Integer()
    upserted = ma.fields.Integer()
    refused = ma.fields.Integer(metadata={"description": "rows refused (each has its problems): rows = upserted + refused"})
    ok = ma.fields.Boolean()
    problems = ma.fields.List(ma.fields.Dict())


class ProductSchema(ma.Schema):
    product_code = ma.fields.String()
    name = ma.fields.String()
    type = ma.fields.String()
    risk_level = ma.fields.String()
    rate = ma.fields.Decimal(as_string=True, allow_none=True, metadata=DECIMAL_TEXT)
    min_amount = ma.fields.Decimal(as_string=True, allow_none=True, metadata=DECIMAL_TEXT)
    launch_date = ma.fields.Date(allow_none=True)


class ProductListSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(ProductSchema))


class DepositSchema(ma.Schema):
    deposit_id = ma.fields.String()
    customer_id = ma.fields.String()
    product_code = ma.fields.String(allow_none=True)
    account_no = ma.fields.String()
    amount = ma.fields.Decimal(as_string=True, metadata=DECIMAL_TEXT)
    rate = ma.fields.Decimal(as_string=True, allow_none=True, metadata=DECIMAL_TEXT)
    open_date = ma.fields.Date(allow_none=True)
    maturity_date = ma.fields.Date(allow_none=True)
    auto_renew = ma.fields.Boolean()


class DepositPageSchema(ma.Schema):
    items = ma.fields.List(ma.fields.Nested(DepositSchema))
    next = ma.fields.String(allow_none=True)


class DepositQuery(PageArgs):
    customer_id = ma.fields.String(validate=ma.validate.Length(max=32))
    maturing_from = ma.fields.Date()
    maturing_to = ma.fields.Date()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, Decimal)):
        return str(value)
    return str(value)


def _checked(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    """Run the import's own row checks on an API body, so both paths accept the same data."""
    row, problems = parse_row(kind, {c: _csv_value(values.get(c)) for c in COLUMNS[kind]}, today=today())
    if problems or row is None:
        raise ValidationFailed(problems or [Problem("invalid row")], what=kind[:-1])
    return row


def _customer_with_consents(conn, customer_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    customer = store.get_customer(conn, customer_id)
    if customer is None:
        raise NotFound("customer", customer_id)
    customer["consents"] = store.get_consents(conn, customer_id)
    return customer


@blp.route("/customers", methods=["GET"])
@blp.secured(READ)
@blp.arguments(CustomerQuery, location="query")
@blp.response(200, CustomerPageSchema)
def list_customers(args):  # type: ignore[no-untyped-def]
    """Customers in id order, filtered; page with `after`. Mobile and email masked unless the key's
    role is admin, or an operator asks `reveal=contact` with a `reason` (audited)."""
    decided = access(args)
    filters = {k: args.get(k) for k in ("tier", "city", "branch", "manager_id", "risk_level")}
    with services().db.connect() as conn:
        items = store.list_customers(conn, limit=args["limit"], after=args.get("after"), **filters)
    items = present(items, CUSTOMER_CONTACT_FIELDS, decided, args, target="customers", key="customer_id")
    return page(items, args["limit"], "customer_id")


@blp.route("/customers/<customer_id>", methods=["GET"])
@blp.secured(READ)
@blp.arguments(RevealArgs, location="query")
@blp.response(200, CustomerSchema)
def get_customer(args, customer_id: str):  # type: ignore[no-untyped-def]
    """One customer with current consents; mobile and email masked as in the list."""
    decided = access(args)
    with services().db.connect() as conn:
        customer = _customer_with_consents(conn, customer_id)
    return present([customer], CUSTOMER_CONTACT_FIELDS, decided, args, target=f"customer:{customer_id}",
                   key="customer_id")[0]


@blp.route("/customers/<customer_id>", methods=["PUT"])
@blp.secured(ADMIN)
@blp.arguments(CustomerInSchema)
@blp.response(200, CustomerSchema)
def put_customer(body, customer_id: str):  # type: ignore[no-untyped-def]
    """Create or update a customer (the same checks as a CSV row)."""
    row = _checked("customers", {**body, "customer_id": customer_id})
    if row["customer_id"] != customer_id:
        raise ValidationFailed([Problem("a customer id has no leading or trailing spaces", field="customer_id")],
                               what="customer")
    for key in ("sms_consent", "email_consent"):
        if key not in body:  # not given: the stored consent and its proof stay as they are
            row[key] = None
    with services().db.begin() as conn:
        before = {c["channel"]: c["granted"] for c in store.get_consents(conn, customer_id)}
        upsert_rows(conn, "customers", [row], now=now(), source=f"api:{g.actor}")
    record("customer.upsert", customer_id, {"mobile": mask_mobile(row.get("mobile")),
                                            "email": mask_email(row.get("email"))})
    for channel in ("sms", "email"):
        granted = row[f"{channel}_consent"]
        if granted is not None and before.get(channel) != granted:
            record("consent." + ("grant" if granted else "withdraw"), f"{customer_id}:{channel}",
                   {"source": f"api:{g.actor}"})
    with services().db.connect() as conn:
        return _customer_with_consents(conn, customer_id)


@blp.route("/customers/<customer_id>/consents", methods=["GET"])
@blp.secured(READ)
@blp.response(200, ConsentSchema(many=True))
def get_consents(customer_id: str):  # type: ignore[no-untyped-def]
    """A customer's marketing consent per channel, with time and source."""
    with services().db.connect() as conn:
        return _customer_with_consents(conn, customer_id)["consents"]


@blp.route("/customers/<customer_id>/consents/<any(sms, email, phone):channel>", methods=["PUT"])
@blp.secured(ADMIN)
@blp.arguments(ConsentInSchema)
@blp.response(200, ConsentSchema)
def put_consent(body, customer_id: str, channel: str):  # type: ignore[no-untyped-def]
    """Grant or withdraw a channel's marketing consent (recorded with time and source): sms, email, or
    phone (a relationship manager's marketing calls and visits; withdrawing it cancels their open ones)."""
    suppressed = 0
    with services().db.begin() as conn:
        if store.get_customer(conn, customer_id) is None:
            raise NotFound("customer", customer_id)
        if body["granted"]:
            store.set_consent(conn, customer_id, channel, granted=True, source=body["source"], now=now())
        else:  # at once: queued marketing messages (phone: open marketing tasks) on this channel go too
            suppressed = store.withdraw_marketing(conn, customer_id, channel, source=body["source"], now=now(), route="api")
        consent = next(c for c in store.get_consents(conn, customer_id) if c["channel"] == channel)
    details: dict[str, Any] = {"source": body["source"]}
    if not body["granted"]:
        details["suppressed_messages"] = suppressed
    record("consent." + ("grant" if body["granted"] else "withdraw"), f"{customer_id}:{channel}", details)
    return consent


@blp.route("/customers/<customer_id>/messages", methods=["GET"])
@blp.secured(READ)
@blp.arguments(MessageQuery, location="query")
@blp.response(200, MessagePageSchema)
def customer_messages(args, customer_id: str):  # type: ignore[no-untyped-def]
    """A customer's contact history, newest first; recipients masked as in /messages."""
    decided = access(args)
    with services().db.connect() as conn:
        if store.get_customer(conn, customer_id) is None:
            raise NotFound("customer", customer_id)
    return message_page(args, decided, target=f"customer:{customer_id}:messages", customer_id=customer_id)


@blp.route("/imports/<any(customers, products, deposits, holdings, managers):kind>", methods=["POST"])
@blp.secured(ADMIN)
@blp.doc(requestBody={"required": True, "content": {"text/csv": {"schema": {"type": "string"}}}})
@blp.response(200, ImportReportSchema)
@blp.alt_response(415, schema=ErrorSchema, description="the body is not text/csv")
def import_file(kind: str):  # type: ignore[no-untyped-def]
    """Bulk upsert from a CSV body (the CLI import formats); bad rows reported, good rows kept."""
    if request.mimetype != "text/csv":
        from flask_smorest import abort

        abort(415, message="send the CSV file as the body with Content-Type: text/csv")
    assert kind in KINDS
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{kind}.csv"
        path.write_bytes(request.get_data())
        report = import_csv(services().db, kind, path, now=now(), tz=services().settings.tz)
    moved: list[dict[str, Any]] = []
    if kind == "managers":  # an inactive manager's open tasks go to their customers' branch queues
        from ...store.managers import requeue_open_tasks

        with services().db.begin() as conn:
            moved = requeue_open_tasks(conn, None, actor=g.actor, now=now(), tz=services().settings.tz,
                                       reason="manager inactive")
    record("import", kind, {"rows": report.rows, "upserted": report.upserted, "refused": report.refused,
                            "problems": len(report.problems), **({"requeued_tasks": len(moved)} if moved else {})})
    # Problems name the request body, not the server's temporary file.
    problems = [{**p.as_dict(), "file": "request body"} for p in report.problems]
    return {"kind": kind, "rows": report.rows, "upserted": report.upserted, "refused": report.refused,
            "ok": report.ok,
            "problems": problems}


@blp.route("/products", methods=["GET"])
@blp.secured(READ)
@blp.response(200, ProductListSchema)
def list_products():  # type: ignore[no-untyped-def]
    """The product catalogue."""
    with services().db.connect() as conn:
        return {"items": store.list_products(conn)}


@blp.route("/products/<code>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, ProductSchema)
def get_product(code: str):  # type: ignore[no-untyped-def]
    """One product."""
    with services().db.connect() as conn:
        product = store.get_product(conn, code)
    if product is None:
        raise NotFound("product", code)
    return product


@blp.route("/deposits", methods=["GET"])
@blp.secured(READ)
@blp.arguments(DepositQuery, location="query")
@blp.response(200, DepositPageSchema)
def list_deposits(args):  # type: ignore[no-untyped-def]
    """Time deposits by customer or maturity range, in id order."""
    with services().db.connect() as conn:
        items = store.list_deposits(conn, limit=args["limit"], after=args.get("after"),
                                    customer_id=args.get("customer_id"), maturing_from=args.get("maturing_from"),
                                    maturing_to=args.get("maturing_to"))
    return page(items, args["limit"], "deposit_id")


@blp.route("/deposits/<deposit_id>", methods=["GET"])
@blp.secured(READ)
@blp.response(200, DepositSchema)
def get_deposit(deposit_id: str):  # type: ignore[no-untyped-def]
    """One time deposit."""
    with services().db.connect() as conn:
        deposit = store.get_deposit(conn, deposit_id)
    if deposit is None:
        raise NotFound("deposit", deposit_id)
    return deposit
