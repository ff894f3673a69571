"""Conversions (issue #11): the CSV import (bad rows by line and field, good rows kept, once per
conversion_id) and the conversions derived from the deposit and holdings imports."""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from campaign_engine.imports import COLUMNS
from campaign_engine.store.conversions import occurred_at
from campaign_engine.store.csv_import import import_csv
from campaign_engine.store.models import Conversion
from factories import NOW, PRODUCTS, customer, deposit
from campaign_engine.store.upsert import upsert_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")
UTC = dt.timezone.utc


def seed(engine, *customer_ids: str) -> None:
    with engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [customer(c) for c in customer_ids], now=NOW, source="test")


def write(path: Path, kind: str, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS[kind])
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row.get(c)) for c in COLUMNS[kind]])
    return path


def recorded(engine) -> dict[str, dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Conversion.__table__).order_by(Conversion.conversion_id)).mappings()
        return {r["conversion_id"]: dict(r) for r in rows}


def conversion(cid: str, customer_id: str = "C1", **overrides: Any) -> dict[str, Any]:
    row = {"conversion_id": cid, "customer_id": customer_id, "type": "product_purchase",
           "product_code": "FUND-EQ01", "amount": "5000.00", "occurred_at": "2026-03-11T10:30:00+08:00"}
    row.update(overrides)
    return row


# --------------------------------------------------------------------------- occurred_at


def test_conversions_occurred_at_naive_is_local_and_a_date_is_the_end_of_that_day_or_now():
    now = dt.datetime(2026, 3, 20, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
    assert occurred_at(dt.datetime(2026, 3, 11, 10, 30), tz=SHANGHAI, now=now) == dt.datetime(
        2026, 3, 11, 2, 30, tzinfo=UTC)
    assert occurred_at(dt.date(2026, 3, 11), tz=SHANGHAI, now=now) == dt.datetime(
        2026, 3, 11, 15, 59, 59, 999999, tzinfo=UTC)
    assert occurred_at(dt.date(2026, 3, 20), tz=SHANGHAI, now=now) == now  # today: no later than the import


# --------------------------------------------------------------------------- CSV import


def test_import_conversions_keeps_good_rows_and_reports_bad_ones_by_line_and_field(engine, tmp_path):
    seed(engine, "C1", "C2")
    path = write(tmp_path / "conversions.csv", "conversions", [
        conversion("V1"),
        conversion("V2", "C2", type="deposit_open", product_code="TD1Y", amount="80000",
                   occurred_at="2026-03-11 09:00"),  # naive: Shanghai time
        conversion("V3", type="sale", amount="-1"),  # line 4: two problems
        conversion("V4", "C404"),  # unknown customer
        conversion("V5", product_code="NOPE"),  # unknown product
        conversion("V1", "C2"),  # the id again in the file: refused, the first kept
        conversion("V6", type="custom", product_code="", amount="", occurred_at="2026-03-12"),
    ])
    report = import_csv(engine, "conversions", path, now=NOW + dt.timedelta(days=5), tz=SHANGHAI)
    assert {(p.line, p.field) for p in report.problems} == {
        (4, "type"), (4, "amount"), (5, "customer_id"), (6, "product_code"), (7, "conversion_id")}
    assert (report.rows, report.upserted, report.refused) == (7, 3, 4)
    stored = recorded(engine)
    assert sorted(stored) == ["V1", "V2", "V6"]
    assert stored["V1"]["customer_id"] == "C1" and stored["V1"]["amount"] == Decimal("5000.00")
    assert stored["V2"]["occurred_at"].astimezone(UTC) == dt.datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    assert stored["V6"]["amount"] is None and stored["V6"]["product_code"] is None
    assert stored["V6"]["source"] == "import:conversions.csv"


def test_import_conversions_again_records_nothing_and_refuses_an_id_with_other_values(engine, tmp_path):
    seed(engine, "C1")
    first = write(tmp_path / "a.csv", "conversions", [conversion("V1"), conversion("V2")])
    assert import_csv(engine, "conversions", first, now=NOW + dt.timedelta(days=5), tz=SHANGHAI).ok
    before = recorded(engine)
    again = import_csv(engine, "conversions", first, now=NOW + dt.timedelta(days=6), tz=SHANGHAI)
    assert again.ok and again.upserted == 2 and recorded(engine) == before  # the same values: nothing new
    changed = write(tmp_path / "b.csv", "conversions", [conversion("V1", amount="9999"), conversion("V3")])
    report = import_csv(engine, "conversions", changed, now=NOW + dt.timedelta(days=6), tz=SHANGHAI)
    assert [(p.line, p.field) for p in report.problems] == [(2, "conversion_id")]
    assert "recorded already with other values" in report.problems[0].reason
    assert sorted(recorded(engine)) == ["V1", "V2", "V3"]
    assert recorded(engine)["V1"]["amount"] == Decimal("5000.00")


def test_import_conversions_future_time_is_refused(engine, tmp_path):
    seed(engine, "C1")
    path = write(tmp_path / "c.csv", "conversions", [conversion("V1", occurred_at="2026-04-30T10:00:00+08:00")])
    report = import_csv(engine, "conversions", path, now=NOW, tz=SHANGHAI)
    assert [(p.line, p.field) for p in report.problems] == [(2, "occurred_at")]
    assert recorded(engine) == {}


# --------------------------------------------------------------------------- derived from deposits


def deposit_csv(tmp_path: Path, name: str, *rows: dict[str, Any]) -> Path:
    return write(tmp_path / name, "deposits", [dict(r) for r in rows])


def test_deposit_import_first_load_of_the_book_records_no_conversions(engine, tmp_path):
    seed(engine, "C1")
    path = deposit_csv(tmp_path, "d.csv", deposit("D1", "C1", open_date=dt.date(2026, 3, 9)))
    assert import_csv(engine, "deposits", path, now=NOW, tz=SHANGHAI).ok
    assert recorded(engine) == {}


def test_deposit_import_new_deposit_is_an_open_and_one_near_a_maturity_a_renewal(engine, tmp_path):
    seed(engine, "C1", "C2")
    book = deposit_csv(tmp_path, "book.csv",
                       deposit("OLD1", "C1", open_date=dt.date(2025, 3, 12), maturity_date=dt.date(2026, 3, 12)),
                       deposit("OLD2", "C2", open_date=dt.date(2025, 1, 1), maturity_date=dt.date(2026, 1, 1)))
    assert import_csv(engine, "deposits", book, now=NOW, tz=SHANGHAI).ok
    now = dt.datetime(2026, 3, 16, 1, 0, tzinfo=UTC)
    daily = deposit_csv(
        tmp_path, "daily.csv",
        deposit("OLD1", "C1", open_date=dt.date(2025, 3, 12), maturity_date=dt.date(2026, 3, 12)),  # unchanged
        deposit("NEW1", "C1", amount=Decimal("82000"), open_date=dt.date(2026, 3, 14),
                maturity_date=dt.date(2027, 3, 14)),  # 2 days after OLD1 matured: a renewal
        deposit("NEW2", "C2", amount=Decimal("30000"), open_date=dt.date(2026, 3, 15),
                maturity_date=dt.date(2027, 3, 15)))  # OLD2 matured in January: a new deposit
    assert import_csv(engine, "deposits", daily, now=now, tz=SHANGHAI).ok
    stored = recorded(engine)
    assert {(c["type"], c["customer_id"], c["amount"]) for c in stored.values()} == {
        ("deposit_renewal", "C1", Decimal("82000.00")), ("deposit_open", "C2", Decimal("30000.00"))}
    renewal = next(c for c in stored.values() if c["type"] == "deposit_renewal")
    # a date only: the end of that day in Shanghai (the latest it happened)
    assert renewal["occurred_at"].astimezone(UTC) == dt.datetime(2026, 3, 14, 15, 59, 59, 999999, tzinfo=UTC)
    assert renewal["product_code"] == "TD1Y" and renewal["conversion_id"] == "auto:deposit_renewal:NEW1:2026-03-14"
    # the same file again records nothing new
    assert import_csv(engine, "deposits", daily, now=now + dt.timedelta(days=1), tz=SHANGHAI).ok
    assert recorded(engine) == stored


def test_deposit_import_renewed_in_place_under_the_same_id_is_a_renewal(engine, tmp_path):
    seed(engine, "C1")
    book = deposit_csv(tmp_path, "book.csv",
                       deposit("D1", "C1", open_date=dt.date(2025, 3, 12), maturity_date=dt.date(2026, 3, 12)))
    import_csv(engine, "deposits", book, now=NOW, tz=SHANGHAI)
    renewed = deposit_csv(tmp_path, "renewed.csv",
                          deposit("D1", "C1", open_date=dt.date(2026, 3, 12), maturity_date=dt.date(2027, 3, 12)))
    assert import_csv(engine, "deposits", renewed, now=NOW + dt.timedelta(days=3), tz=SHANGHAI).ok
    assert [(c["conversion_id"], c["type"]) for c in recorded(engine).values()] == [
        ("auto:deposit_renewal:D1:2026-03-12", "deposit_renewal")]
    corrected = deposit_csv(tmp_path, "corrected.csv",  # a later maturity, same open date: a correction
                            deposit("D1", "C1", open_date=dt.date(2026, 3, 12), maturity_date=dt.date(2027, 9, 12)))
    import_csv(engine, "deposits", corrected, now=NOW + dt.timedelta(days=4), tz=SHANGHAI)
    assert len(recorded(engine)) == 1


# --------------------------------------------------------------------------- derived from holdings


def test_holdings_import_a_higher_amount_is_a_holding_increase_of_the_difference(engine, tmp_path):
    seed(engine, "C1", "C2")
    book = write(tmp_path / "h0.csv", "holdings", [
        {"customer_id": "C1", "product_code": "FUND-EQ01", "amount": "10000"},
        {"customer_id": "C2", "product_code": "FUND-EQ01", "amount": "5000"}])
    assert import_csv(engine, "holdings", book, now=NOW, tz=SHANGHAI).ok
    assert recorded(engine) == {}  # the first load is where measuring starts
    later = NOW + dt.timedelta(days=2)
    daily = write(tmp_path / "h1.csv", "holdings", [
        {"customer_id": "C1", "product_code": "FUND-EQ01", "amount": "15000"},  # +5000
        {"customer_id": "C2", "product_code": "FUND-EQ01", "amount": "4000"},  # lower: nothing
        {"customer_id": "C2", "product_code": "TD1Y", "amount": "20000"}])  # a first holding: from 0
    assert import_csv(engine, "holdings", daily, now=later, tz=SHANGHAI).ok
    stored = recorded(engine)
    assert {(c["customer_id"], c["product_code"], c["type"], c["amount"]) for c in stored.values()} == {
        ("C1", "FUND-EQ01", "holding_increase", Decimal("5000.00")),
        ("C2", "TD1Y", "holding_increase", Decimal("20000.00"))}
    assert {c["occurred_at"].astimezone(UTC) for c in stored.values()} == {later}
    assert {c["source"] for c in stored.values()} == {"import:h1.csv (holdings)"}
    assert import_csv(engine, "holdings", daily, now=later + dt.timedelta(hours=1), tz=SHANGHAI).ok
    assert recorded(engine) == stored
