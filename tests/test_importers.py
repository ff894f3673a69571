"""CSV import and the shared upsert writer, on the real test database."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DataError, IntegrityError

from campaign_engine.demo import generator as demo
from campaign_engine.demo import loader
from campaign_engine.demo.loader import load_demo_data
from campaign_engine.imports import COLUMNS, KINDS, ImportReport, parse_row
from campaign_engine.store.csv_import import import_csv
from campaign_engine.store.models import Consent, Customer, Deposit, Holding, Product
from campaign_engine.store.upsert import upsert_rows

UTC = dt.timezone.utc


def customer(**values: str) -> dict[str, str]:
    """A good customers.csv row as text, with some values replaced."""
    row = {
        "customer_id": "C00000001", "name": "王小明", "gender": "M", "birth_date": "1980-05-17",
        "mobile": "13800138000", "email": "xiaoming.wang@163.com", "city": "上海",
        "branch": "上海分行浦东支行", "tier": "gold", "risk_level": "C3", "aum": "350000.00",
        "rate_sensitive": "true", "sms_consent": "true", "email_consent": "false",
        "do_not_contact": "false", "language": "zh", "manager_id": "RM0001",
    }
    row.update(values)
    return row


def write_csv(path: Path, kind: str, rows: list[dict[str, str]], *, encoding: str = "utf-8",
              columns: tuple[str, ...] | list[str] | None = None) -> Path:
    columns = list(columns or COLUMNS[kind])
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def count(engine, model) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def get_customer(engine, customer_id: str) -> Customer:
    with engine.connect() as conn:
        return conn.execute(select(Customer.__table__).where(Customer.customer_id == customer_id)).one()


def consents(engine, customer_id: str) -> dict[str, tuple[bool, str, dt.datetime]]:
    with engine.connect() as conn:
        rows = conn.execute(select(Consent.channel, Consent.granted, Consent.source, Consent.recorded_at)
                            .where(Consent.customer_id == customer_id)).all()
    return {channel: (granted, source, as_utc(at)) for channel, granted, source, at in rows}


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives naive UTC datetimes back, PostgreSQL aware ones."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def located(report: ImportReport) -> set[tuple[int | None, str | None]]:
    return {(p.line, p.field) for p in report.problems}


def seed_products(engine, now: dt.datetime) -> None:
    with engine.begin() as conn:
        upsert_rows(conn, "products", [
            {"product_code": "TD1Y", "name": "1年定期存款", "type": "time_deposit", "risk_level": "R1",
             "rate": Decimal("1.45"), "min_amount": Decimal("50"), "launch_date": dt.date(2015, 1, 1)},
            {"product_code": "FUND-EQ01", "name": "价值精选股票基金", "type": "fund", "risk_level": "R4",
             "rate": None, "min_amount": Decimal("1"), "launch_date": None},
        ], now=now, source="test")


def seed_customer(engine, tmp_path: Path, now: dt.datetime, customer_id: str = "C00000001") -> None:
    report = import_csv(engine, "customers",
                        write_csv(tmp_path / "seed.csv", "customers", [customer(customer_id=customer_id)]),
                        now=now)
    assert report.ok, report.problems


# --------------------------------------------------------------------------- customers


def test_import_csv_customers_imported_and_readable(engine, tmp_path, now):
    path = write_csv(tmp_path / "customers.csv", "customers", [
        customer(mobile="+86 138-0013-8000", aum="1234567.89"),
        customer(customer_id="C00000002", name="欧阳娜", gender="", birth_date="", mobile="",
                 email="", tier="regular", risk_level="", aum="", rate_sensitive="",
                 sms_consent="0", email_consent="yes", do_not_contact="Y", language="",
                 manager_id=""),
    ])

    report = import_csv(engine, "customers", path, now=now)

    assert report.ok and report.problems == []
    assert (report.kind, report.file, report.rows, report.upserted) == ("customers", str(path), 2, 2)
    first = get_customer(engine, "C00000001")
    assert (first.name, first.gender, first.birth_date, first.birth_mmdd) == (
        "王小明", "M", dt.date(1980, 5, 17), 517)
    assert (first.mobile, first.email, first.city, first.branch) == (
        "13800138000", "xiaoming.wang@163.com", "上海", "上海分行浦东支行")
    assert (first.tier, first.risk_level, first.aum) == ("gold", "C3", Decimal("1234567.89"))
    assert (first.rate_sensitive, first.do_not_contact, first.language, first.manager_id) == (
        True, False, "zh", "RM0001")
    assert as_utc(first.updated_at) == now
    second = get_customer(engine, "C00000002")
    assert (second.name, second.gender, second.birth_date, second.birth_mmdd, second.mobile) == (
        "欧阳娜", None, None, None, None)
    assert (second.risk_level, second.aum, second.rate_sensitive, second.do_not_contact) == (
        None, Decimal("0"), False, True)
    assert second.language == "zh"
    assert consents(engine, "C00000002") == {
        "sms": (False, "import:customers.csv", now), "email": (True, "import:customers.csv", now)}


def test_import_csv_customers_upsert_updates_existing(engine, tmp_path, now):
    import_csv(engine, "customers", write_csv(tmp_path / "a.csv", "customers", [customer()]), now=now)
    later = now + dt.timedelta(days=1)

    report = import_csv(engine, "customers", write_csv(tmp_path / "b.csv", "customers", [
        customer(name="王晓明", tier="platinum", aum="2500000", birth_date="1980-02-29")]), now=later)

    assert report.ok and report.upserted == 1
    assert count(engine, Customer) == 1
    row = get_customer(engine, "C00000001")
    assert (row.name, row.tier, row.aum, row.birth_mmdd) == ("王晓明", "platinum", Decimal("2500000"), 229)
    assert as_utc(row.updated_at) == later


def test_import_csv_customers_duplicate_id_refused_and_first_row_kept(engine, tmp_path, now):
    rows = [customer(name="甲"), customer(name="乙"), customer(customer_id="C00000002"), customer(name="丙")]
    for batch_size in (5000, 1):  # in one batch or across batches alike
        path = write_csv(tmp_path / f"dup{batch_size}.csv", "customers", rows)
        report = import_csv(engine, "customers", path, now=now, batch_size=batch_size)
        assert (report.rows, report.upserted, report.refused) == (4, 2, 2)
        assert [str(p) for p in report.problems] == [
            f"{path}:3, field customer_id: customer_id 'C00000001' also on line 2; the first row was kept",
            f"{path}:5, field customer_id: customer_id 'C00000001' also on line 2; the first row was kept"]
        assert get_customer(engine, "C00000001").name == "甲"
        assert count(engine, Customer) == 2


def test_import_csv_duplicate_of_a_refused_row_refused_too(engine, tmp_path, now):
    path = write_csv(tmp_path / "c.csv", "customers", [
        customer(tier="golden"), customer(), customer(customer_id=" C00000001 ", name="")])

    report = import_csv(engine, "customers", path, now=now)

    assert (report.rows, report.upserted, report.refused) == (3, 0, 3)
    again = "customer_id 'C00000001' also on line 2; only the first row is imported, and it was refused"
    assert [(p.line, p.field, p.reason) for p in report.problems] == [
        (2, "tier", "unknown tier 'golden'"), (3, "customer_id", again),
        (4, "name", "name is required"), (4, "customer_id", again)]
    assert count(engine, Customer) == 0


def test_import_csv_each_kind_refuses_a_repeated_key(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    product = {"product_code": "TD3M", "name": "3个月定期存款", "type": "time_deposit", "risk_level": "R1"}
    holding = {"customer_id": "C00000001", "product_code": "FUND-EQ01", "amount": "1"}
    for kind, rows, reason in [
        ("products", [product, {**product, "name": "改名"}], "product_code 'TD3M' also on line 2"),
        ("deposits", [deposit(), deposit(amount="2")], "deposit_id 'D1' also on line 2"),
        ("holdings", [holding, {**holding, "amount": "2"}, {**holding, "product_code": "TD1Y"}],
         "customer_id 'C00000001' and product_code 'FUND-EQ01' also on line 2"),
    ]:
        report = import_csv(engine, kind, write_csv(tmp_path / f"{kind}.csv", kind, rows), now=now)
        assert [(p.line, p.reason) for p in report.problems] == [(3, f"{reason}; the first row was kept")], kind
        assert (report.rows, report.upserted, report.refused) == (len(rows), len(rows) - 1, 1), kind
    with engine.connect() as conn:
        assert conn.execute(select(Product.name).where(Product.product_code == "TD3M")).scalar_one() == "3个月定期存款"
        assert conn.execute(select(Deposit.amount)).scalar_one() == Decimal("50000.00")
        assert sorted(conn.execute(select(Holding.product_code, Holding.amount)).all()) == [
            ("FUND-EQ01", Decimal("1")), ("TD1Y", Decimal("1"))]


def test_import_csv_nul_in_a_value_refused_and_rest_of_file_kept(engine, tmp_path, now):
    # PostgreSQL cannot store a NUL: refused as the row's problem, not a failed batch
    path = write_csv(tmp_path / "c.csv", "customers", [
        customer(customer_id="C1"), customer(customer_id="C2", name="王\x00小明", city="上\x00海"),
        customer(customer_id="C3\x00"), customer(customer_id="C4", email="a\x00@b.com"), customer(customer_id="C5")])

    report = import_csv(engine, "customers", path, now=now, batch_size=2)

    nul = "contains a NUL character (U+0000), which cannot be stored"
    assert [(p.line, p.field, p.reason) for p in report.problems] == [
        (3, "name", nul), (3, "city", nul), (4, "customer_id", nul), (5, "email", nul)]
    assert str(report.problems[0]) == f"{path}:3, field name: {nul}"
    assert (report.rows, report.upserted, report.refused) == (5, 2, 3)
    with engine.connect() as conn:
        assert set(conn.execute(select(Customer.customer_id)).scalars()) == {"C1", "C5"}


def test_import_csv_summary_adds_up(engine, tmp_path, now):
    path = write_csv(tmp_path / "c.csv", "customers", [
        customer(customer_id="C1"), customer(customer_id="C2", tier="x", aum="y"), customer(customer_id="C1"),
        customer(customer_id="C4")])

    report = import_csv(engine, "customers", path, now=now)

    assert report.rows == report.upserted + report.refused
    assert report.summary() == "customers: 4 row(s) read: 2 upserted, 2 refused (3 problem(s))"


def test_import_csv_customers_bad_rows_reported_and_good_rows_kept(engine, tmp_path, now):
    path = write_csv(tmp_path / "customers.csv", "customers", [
        customer(customer_id="C1"),                                   # line 2: good
        customer(customer_id="C2", tier="golden"),                    # line 3
        customer(customer_id="C3", birth_date="2026-13-01"),          # line 4
        customer(customer_id=""),                                     # line 5
        customer(customer_id="C5", mobile="2380013800"),              # line 6
        customer(customer_id="C6", email="wang.163.com"),             # line 7
        customer(customer_id="C7", aum="-5"),                         # line 8
        customer(customer_id="C8", risk_level="C9", sms_consent="maybe"),  # line 9: two problems
        customer(customer_id="C9", tier="钻石"),                       # line 10: good
    ])

    report = import_csv(engine, "customers", path, now=now)

    assert not report.ok
    assert (report.rows, report.upserted, report.refused) == (9, 2, 7)
    assert located(report) == {(3, "tier"), (4, "birth_date"), (5, "customer_id"), (6, "mobile"),
                               (7, "email"), (8, "aum"), (9, "risk_level"), (9, "sms_consent")}
    reasons = {p.field: p.reason for p in report.problems}
    assert "unknown tier 'golden'" in reasons["tier"]
    assert "malformed date '2026-13-01'" in reasons["birth_date"]
    assert "customer_id is required" in reasons["customer_id"]
    assert all(p.file == str(path) for p in report.problems)
    with engine.connect() as conn:
        ids = set(conn.execute(select(Customer.customer_id)).scalars())
    assert ids == {"C1", "C9"}
    assert get_customer(engine, "C9").tier == "diamond"


@pytest.mark.parametrize(("field", "value"), [
    ("gender", "X"), ("birth_date", "1980/05/17"), ("birth_date", "2030-01-01"),
    ("mobile", "+86 1380013800"), ("mobile", "１３８００１３８０００"), ("email", "a@b"),
    ("tier", ""), ("aum", "abc"), ("aum", "1.234"), ("aum", "NaN"),
    ("aum", "12345678901234567"), ("do_not_contact", "2"), ("language", "chinese"),
    ("name", ""), ("name", "王" * 65),
])
def test_import_csv_customers_bad_value_rejected(engine, tmp_path, now, field, value):
    path = write_csv(tmp_path / "c.csv", "customers", [customer(**{field: value})])

    report = import_csv(engine, "customers", path, now=now)

    assert located(report) == {(2, field)}
    assert count(engine, Customer) == 0


def test_import_csv_line_numbers_count_physical_lines(engine, tmp_path, now):
    path = tmp_path / "multiline.csv"
    good = customer(name="王\n小明")  # a quoted field spanning two physical lines
    write_csv(path, "customers", [good])
    with open(path, "a", encoding="utf-8", newline="") as handle:
        handle.write("\n")  # blank line 4
        csv.writer(handle).writerow([customer(customer_id="C2", tier="golden").get(c, "")
                                     for c in COLUMNS["customers"]])

    report = import_csv(engine, "customers", path, now=now)

    assert located(report) == {(5, "tier")}
    assert report.rows == 2 and report.upserted == 1


def test_import_csv_wrong_field_count_reported(engine, tmp_path, now):
    path = write_csv(tmp_path / "c.csv", "customers", [customer()])
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("C2,李四,M\n")

    report = import_csv(engine, "customers", path, now=now)

    assert [(p.line, p.field) for p in report.problems] == [(3, None)]
    assert "expected 19 fields, found 3" in report.problems[0].reason
    assert report.upserted == 1


def test_import_csv_bom_file_with_chinese_names_and_values(engine, tmp_path, now):
    path = write_csv(tmp_path / "bom.csv", "customers", [
        customer(name="诸葛亮", tier="白金", sms_consent="是", email_consent="否", rate_sensitive="N"),
        customer(customer_id="C00000002", name="李娜", tier="限制", gender="女"),
    ], encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    report = import_csv(engine, "customers", path, now=now)

    assert report.ok, report.problems
    first = get_customer(engine, "C00000001")
    assert (first.name, first.tier, first.rate_sensitive) == ("诸葛亮", "platinum", False)
    assert {k: v[0] for k, v in consents(engine, "C00000001").items()} == {"sms": True, "email": False}
    second = get_customer(engine, "C00000002")
    assert (second.name, second.tier, second.gender) == ("李娜", "restricted", "F")


def test_import_csv_non_utf8_file_reported(engine, tmp_path, now):
    path = write_csv(tmp_path / "gbk.csv", "customers", [customer()], encoding="gbk")

    report = import_csv(engine, "customers", path, now=now)

    assert not report.ok
    assert len(report.problems) == 1 and report.problems[0].line is None
    assert "not valid UTF-8" in report.problems[0].reason
    assert count(engine, Customer) == 0


def test_import_csv_non_utf8_tail_keeps_rows_before_it(engine, tmp_path, now):
    rows = [customer(customer_id=f"C{i:08d}") for i in range(1, 201)]  # > one 8 KiB decode chunk
    path = write_csv(tmp_path / "tail.csv", "customers", rows)
    with open(path, "ab") as handle:
        handle.write("C99999999,王五,M,,,,,,gold,,,,,,,,\n".encode("gbk"))

    report = import_csv(engine, "customers", path, now=now, batch_size=50)

    assert [p.reason for p in report.problems if "UTF-8" in p.reason]
    assert 0 < count(engine, Customer) == report.upserted <= 200


def test_import_csv_missing_column_imports_nothing(engine, tmp_path, now):
    columns = [c for c in COLUMNS["customers"] if c not in ("tier", "email")]
    path = write_csv(tmp_path / "c.csv", "customers", [customer()], columns=columns)

    report = import_csv(engine, "customers", path, now=now)

    assert not report.ok and report.rows == 0
    assert len(report.problems) == 1
    assert report.problems[0].line == 1
    assert "missing column(s) email, tier" in report.problems[0].reason
    assert count(engine, Customer) == 0


def test_import_csv_unknown_column_imports_nothing(engine, tmp_path, now):
    columns = [*COLUMNS["customers"], "remark"]
    path = write_csv(tmp_path / "c.csv", "customers", [customer()], columns=columns)

    report = import_csv(engine, "customers", path, now=now)

    assert [p.reason for p in report.problems] == ["unknown column(s) 'remark'"]
    assert count(engine, Customer) == 0


def test_import_csv_columns_in_any_order_and_case(engine, tmp_path, now):
    columns = list(reversed(COLUMNS["customers"]))
    path = write_csv(tmp_path / "c.csv", "customers", [customer()], columns=columns)
    text = path.read_text(encoding="utf-8").replace("customer_id", " Customer_ID ", 1)
    path.write_text(text, encoding="utf-8")

    report = import_csv(engine, "customers", path, now=now)

    assert report.ok, report.problems
    assert get_customer(engine, "C00000001").name == "王小明"


def test_import_csv_empty_and_missing_files_reported(engine, tmp_path, now):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")

    assert "header row is required" in import_csv(engine, "customers", empty, now=now).problems[0].reason
    missing = import_csv(engine, "customers", tmp_path / "nope.csv", now=now)
    assert not missing.ok and "cannot open" in missing.problems[0].reason


def test_import_csv_unknown_kind_raises(engine, tmp_path, now):
    with pytest.raises(ValueError, match="unknown kind 'accounts'"):
        import_csv(engine, "accounts", tmp_path / "x.csv", now=now)


# --------------------------------------------------------------------------- consents


def test_import_csv_consents_kept_when_unchanged_and_updated_when_changed(engine, tmp_path, now):
    first = write_csv(tmp_path / "customers.csv", "customers",
                      [customer(sms_consent="true", email_consent="false")])
    import_csv(engine, "customers", first, now=now)
    later, latest = now + dt.timedelta(days=30), now + dt.timedelta(days=60)

    import_csv(engine, "customers", first, now=later)
    assert consents(engine, "C00000001") == {
        "sms": (True, "import:customers.csv", now), "email": (False, "import:customers.csv", now)}

    changed = write_csv(tmp_path / "crm-export.csv", "customers",
                        [customer(sms_consent="false", email_consent="false")])
    import_csv(engine, "customers", changed, now=latest)
    assert consents(engine, "C00000001") == {
        "sms": (False, "import:crm-export.csv", latest), "email": (False, "import:customers.csv", now)}
    assert as_utc(get_customer(engine, "C00000001").updated_at) == latest


def test_upsert_rows_customer_without_consent_keys_leaves_consents(engine, now):
    row = {"customer_id": "C1", "name": "张三", "tier": "regular", "sms_consent": True,
           "email_consent": False}
    with engine.begin() as conn:
        upsert_rows(conn, "customers", [row], now=now, source="api")
    with engine.begin() as conn:
        written = upsert_rows(conn, "customers", [{"customer_id": "C1", "name": "张三丰", "tier": "gold",
                                                   "birth_date": dt.date(1990, 12, 31)}],
                              now=now + dt.timedelta(hours=1), source="api")

    assert written == 1
    row = get_customer(engine, "C1")
    assert (row.name, row.tier, row.birth_mmdd, row.language, row.aum) == (
        "张三丰", "gold", 1231, "zh", Decimal("0"))
    assert consents(engine, "C1") == {"sms": (True, "api", now), "email": (False, "api", now)}


def test_upsert_rows_unknown_kind_raises(engine, now):
    with engine.begin() as conn, pytest.raises(ValueError):
        upsert_rows(conn, "accounts", [{}], now=now, source="test")


# --------------------------------------------------------------------------- stored exactly
# On PostgreSQL rows travel by COPY (text format) into a temporary table and are upserted from
# there: text that looks like COPY syntax must arrive as written, NULLs as NULLs.

AWKWARD = {
    "name": 'O\'Brien "王\\N"\t小明\n第二行\r\n末行\\.',
    "email": "o'brien\\x@例子.中国",
    "city": "\\N",
    "branch": "C:\\temp\\新建\t分行\\t支行",
    "manager_id": "NULL",
}


def test_import_csv_awkward_text_and_nulls_stored_exactly_and_updated_on_reimport(engine, tmp_path, now):
    first = write_csv(tmp_path / "first.csv", "customers", [
        customer(customer_id="C1", **AWKWARD),
        customer(customer_id="C2", name="空值", gender="", birth_date="", mobile="", email="",
                 city="", branch="", risk_level="", aum="", manager_id=""),
        customer(customer_id="C3", name="张三"),
    ])

    report = import_csv(engine, "customers", first, now=now, batch_size=2)

    assert report.ok and report.upserted == 3, report.problems
    c1 = get_customer(engine, "C1")
    assert {k: getattr(c1, k) for k in AWKWARD} == AWKWARD
    c2 = get_customer(engine, "C2")
    assert (c2.gender, c2.birth_date, c2.birth_mmdd, c2.mobile, c2.email, c2.city, c2.branch,
            c2.risk_level, c2.manager_id) == (None,) * 9
    assert (c2.aum, c2.language, c2.tier) == (Decimal("0"), "zh", "gold")

    later = now + dt.timedelta(days=1)
    second = write_csv(tmp_path / "second.csv", "customers", [
        customer(customer_id="C2", name="不再空\\", gender="女", birth_date="1990-02-28",
                 email="b@例子.中国", city="\\t", branch="北京分行\n朝阳支行", risk_level="C5",
                 aum="1234567890123.45", manager_id="\\", sms_consent="false"),
        customer(customer_id="C1", name="王 小明", email="", city="", branch="", manager_id=""),
        customer(customer_id="C4", **AWKWARD),
    ])

    report = import_csv(engine, "customers", second, now=later, batch_size=2)

    assert report.ok and report.upserted == 3, report.problems
    assert count(engine, Customer) == 4
    c1 = get_customer(engine, "C1")
    assert (c1.name, c1.email, c1.city, c1.branch, c1.manager_id) == ("王 小明", None, None, None, None)
    assert as_utc(c1.updated_at) == later
    c2 = get_customer(engine, "C2")
    assert (c2.name, c2.gender, c2.birth_date, c2.birth_mmdd, c2.email, c2.city, c2.branch) == (
        "不再空\\", "F", dt.date(1990, 2, 28), 228, "b@例子.中国", "\\t", "北京分行\n朝阳支行")
    assert (c2.risk_level, c2.aum, c2.manager_id) == ("C5", Decimal("1234567890123.45"), "\\")
    assert consents(engine, "C2")["sms"] == (False, "import:second.csv", later)
    assert consents(engine, "C2")["email"] == (False, "import:first.csv", now)
    c4 = get_customer(engine, "C4")
    assert {k: getattr(c4, k) for k in AWKWARD} == AWKWARD
    assert get_customer(engine, "C3").name == "张三"


def test_upsert_rows_stores_whitespace_and_copy_markers_exactly(engine, now):
    # upsert_rows (the API's writer) stores values as given: no stripping, nothing unescaped.
    rows = [
        {"customer_id": "C1", "name": "\t\n 前后空白 \r\n", "tier": "regular", "branch": "\\",
         "city": "\\.", "manager_id": " ", "email": None, "aum": Decimal("0.01"),
         "rate_sensitive": True, "do_not_contact": None},
        {"customer_id": "C2", "name": "\\\\N\t\\", "tier": "gold", "branch": "\x01\x1f\x7f",
         "city": "\u2028\u00a0", "language": "en"},
    ]
    with engine.begin() as conn:
        assert upsert_rows(conn, "customers", rows, now=now, source="api") == 2

    c1, c2 = get_customer(engine, "C1"), get_customer(engine, "C2")
    assert (c1.name, c1.branch, c1.city, c1.manager_id, c1.email) == (
        "\t\n 前后空白 \r\n", "\\", "\\.", " ", None)
    assert (c1.aum, c1.rate_sensitive, c1.do_not_contact) == (Decimal("0.01"), True, False)
    assert (c2.name, c2.branch, c2.city, c2.language) == ("\\\\N\t\\", "\x01\x1f\x7f", "\u2028\u00a0", "en")


def test_upsert_rows_too_long_value_refused_and_nothing_written_on_postgresql(engine, now):
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: SQLite does not enforce VARCHAR lengths")
    good = {"customer_id": "C1", "name": "张三", "tier": "gold"}

    with pytest.raises(DataError, match="value too long"), engine.begin() as conn:
        upsert_rows(conn, "customers", [good, {**good, "customer_id": "C" * 33}], now=now, source="api")

    assert count(engine, Customer) == 0
    with engine.begin() as conn:  # the connection is usable again
        assert upsert_rows(conn, "customers", [good], now=now, source="api") == 1
    assert get_customer(engine, "C1").name == "张三"


def test_load_demo_data_failed_batch_stops_the_load(engine, today, now, monkeypatch):
    # On PostgreSQL a batch is upserted while the next is staged; the first failure must still
    # stop the load with the batches before it committed and none after it.
    monkeypatch.setattr(loader, "POSTGRESQL_DEMO_BATCH", 1)
    held = [{"customer_id": f"C{i:08d}", "product_code": "FUND-EQ01", "amount": Decimal(1000 + i)}
            for i in range(1, 16)]
    held[7]["product_code"] = "NOPE"  # second batch of five: unknown product
    monkeypatch.setattr(demo, "generate_holdings", lambda customers, seed: iter(held))

    with pytest.raises(IntegrityError):
        load_demo_data(engine, 15, seed=1, today=today, now=now, batch_size=5)

    assert count(engine, Customer) == 15
    with engine.connect() as conn:
        stored = conn.execute(select(Holding.customer_id, Holding.amount)
                              .order_by(Holding.customer_id)).all()
    assert stored == [(h["customer_id"], h["amount"]) for h in held[:5]]


# --------------------------------------------------------------------------- products, deposits, holdings


def test_import_csv_products_imported_and_bad_rows_reported(engine, tmp_path, now):
    path = write_csv(tmp_path / "products.csv", "products", [
        {"product_code": "TD3M", "name": "3个月定期存款", "type": "time_deposit", "risk_level": "R1",
         "rate": "1.10", "min_amount": "50", "launch_date": "2015-01-01"},
        {"product_code": "WM-R2-01", "name": "安心稳健理财", "type": "wealth", "risk_level": "r2",
         "rate": "", "min_amount": "", "launch_date": ""},
        {"product_code": "X1", "name": "坏类型", "type": "Time Deposit", "risk_level": "R1"},
        {"product_code": "X2", "name": "坏风险", "type": "fund", "risk_level": "R6"},
        {"product_code": "X3", "name": "坏利率", "type": "fund", "risk_level": "R3", "rate": "1.23456"},
    ])

    report = import_csv(engine, "products", path, now=now)

    assert located(report) == {(4, "type"), (5, "risk_level"), (6, "rate")}
    assert report.upserted == 2
    with engine.connect() as conn:
        rows = {r.product_code: r for r in conn.execute(select(Product.__table__))}
    assert set(rows) == {"TD3M", "WM-R2-01"}
    assert (rows["TD3M"].rate, rows["TD3M"].min_amount, rows["TD3M"].launch_date) == (
        Decimal("1.10"), Decimal("50"), dt.date(2015, 1, 1))
    assert (rows["WM-R2-01"].risk_level, rows["WM-R2-01"].rate) == ("R2", None)


def deposit(**values: str) -> dict[str, str]:
    row = {"deposit_id": "D1", "customer_id": "C00000001", "product_code": "TD1Y",
           "account_no": "6222 0200 1234 5678", "amount": "50000.00", "rate": "1.45",
           "open_date": "2025-03-10", "maturity_date": "2026-03-10", "auto_renew": "false"}
    row.update(values)
    return row


def test_import_csv_deposits_imported(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    path = write_csv(tmp_path / "deposits.csv", "deposits", [
        deposit(), deposit(deposit_id="D2", product_code="", rate="", open_date="", maturity_date="",
                           auto_renew="1", account_no="6217-0000-0000-0000-123")])

    report = import_csv(engine, "deposits", path, now=now)

    assert report.ok, report.problems
    with engine.connect() as conn:
        rows = {r.deposit_id: r for r in conn.execute(select(Deposit.__table__))}
    assert (rows["D1"].account_no, rows["D1"].amount, rows["D1"].rate, rows["D1"].maturity_date) == (
        "6222020012345678", Decimal("50000.00"), Decimal("1.45"), dt.date(2026, 3, 10))
    assert (rows["D2"].product_code, rows["D2"].account_no, rows["D2"].auto_renew) == (
        None, "6217000000000000123", True)


def test_import_csv_deposits_unknown_customer_and_product_reported(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    path = write_csv(tmp_path / "deposits.csv", "deposits", [
        deposit(),                                                       # line 2: good
        deposit(deposit_id="D2", customer_id="C99999999"),               # line 3
        deposit(deposit_id="D3", product_code="TD9Y"),                   # line 4
        deposit(deposit_id="D4", open_date="2026-03-10", maturity_date="2026-03-09"),  # line 5
        deposit(deposit_id="D5", amount="-1"),                           # line 6
        deposit(deposit_id="D6", customer_id="C88888888", product_code="NOPE"),  # line 7: both
        deposit(deposit_id="D7", account_no="62x2"),                     # line 8
        deposit(deposit_id="D8"),                                        # line 9: good
    ])

    report = import_csv(engine, "deposits", path, now=now, batch_size=3)

    assert not report.ok
    assert located(report) == {(3, "customer_id"), (4, "product_code"), (5, "maturity_date"),
                               (6, "amount"), (7, "customer_id"), (7, "product_code"),
                               (8, "account_no")}
    reasons = {(p.line, p.field): p.reason for p in report.problems}
    assert reasons[(3, "customer_id")] == "unknown customer 'C99999999'"
    assert reasons[(4, "product_code")] == "unknown product_code 'TD9Y'"
    assert (report.rows, report.upserted, report.refused) == (8, 2, 6)
    assert report.rows == report.upserted + report.refused
    with engine.connect() as conn:
        assert set(conn.execute(select(Deposit.deposit_id)).scalars()) == {"D1", "D8"}


def test_import_csv_bad_row_reports_every_problem_at_once_references_last(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    path = write_csv(tmp_path / "deposits.csv", "deposits", [
        deposit(amount="-1", product_code="TD9Y", open_date="2026-03-10", maturity_date="2026-03-01"),
        deposit(deposit_id="D2", customer_id="C404", account_no="x", product_code="NOPE"),
        deposit(deposit_id="D1", product_code="TD9Y"),  # a repeated id, and an unknown product
    ])

    report = import_csv(engine, "deposits", path, now=now)

    assert [(p.line, p.field) for p in report.problems] == [
        (2, "amount"), (2, "maturity_date"), (2, "product_code"),
        (3, "account_no"), (3, "customer_id"), (3, "product_code"),
        (4, "deposit_id"), (4, "product_code")]
    assert (report.rows, report.upserted, report.refused) == (3, 0, 3)
    assert report.problems[2].reason == "unknown product_code 'TD9Y'"
    assert count(engine, Deposit) == 0


def test_import_csv_file_of_bad_rows_has_references_checked_in_batches(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    rows = [deposit(deposit_id=f"D{i}", amount="-1", product_code="TD9Y") for i in range(5)]

    report = import_csv(engine, "deposits", write_csv(tmp_path / "d.csv", "deposits", rows), now=now, batch_size=2)

    assert [(p.line, p.field) for p in report.problems] == [
        (line, field) for line in range(2, 7) for field in ("amount", "product_code")]
    assert (report.rows, report.upserted, report.refused) == (5, 0, 5)


def test_import_csv_holdings_imported_and_unknown_references_reported(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    path = write_csv(tmp_path / "holdings.csv", "holdings", [
        {"customer_id": "C00000001", "product_code": "FUND-EQ01", "amount": "10000"},
        {"customer_id": "C00000001", "product_code": "FUND-EQ99", "amount": "10000"},
        {"customer_id": "C00000002", "product_code": "FUND-EQ01", "amount": "10000"},
        {"customer_id": "C00000001", "product_code": "", "amount": "1"},
        {"customer_id": "C00000001", "product_code": "FUND-EQ01", "amount": "20000.50"},
    ])

    report = import_csv(engine, "holdings", path, now=now)

    # line 6 repeats line 2's customer and product: refused, line 2 kept
    assert located(report) == {(3, "product_code"), (4, "customer_id"), (5, "product_code"), (6, "customer_id")}
    with engine.connect() as conn:
        assert conn.execute(select(Holding.customer_id, Holding.product_code, Holding.amount)).all() == [
            ("C00000001", "FUND-EQ01", Decimal("10000"))]


def test_import_csv_each_kind_has_columns_and_parsers():
    assert KINDS == ("customers", "products", "deposits", "holdings", "conversions", "managers")
    for kind in KINDS:
        row, problems = parse_row(kind, {}, today=dt.date(2026, 3, 10))
        assert row is None and problems and all(p.field in COLUMNS[kind] for p in problems)


def test_import_csv_problems_sorted_by_line_and_capped(engine, tmp_path, now):
    seed_products(engine, now)
    seed_customer(engine, tmp_path, now)
    rows = [deposit(deposit_id=f"D{i}", customer_id="C404" if i % 2 else "C00000001",
                    amount="-1" if i % 3 == 0 else "1") for i in range(1, 13)]
    path = write_csv(tmp_path / "deposits.csv", "deposits", rows)

    full = import_csv(engine, "deposits", path, now=now, batch_size=4)
    capped = import_csv(engine, "deposits", path, now=now, batch_size=4, max_problems=3)

    lines = [p.line for p in full.problems]
    # 8 bad rows, two of them with two problems (a bad amount and an unknown customer)
    assert lines == sorted(lines) and len(lines) == 10 and full.refused == 8
    assert len(capped.problems) == 4 and capped.refused == 8 and capped.problem_count == 10
    assert capped.problems[-1].reason == "7 more problem(s) not listed"


# --------------------------------------------------------------------------- module boundaries


def test_imports_package_imports_no_database_or_framework():
    # In a fresh interpreter: the pure parsing package must not pull SQLAlchemy in, even indirectly.
    code = ("import sys, campaign_engine.imports; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'sqlalchemy', 'flask', 'celery', 'marshmallow', 'durable', 'apscheduler'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_store_does_not_import_demo():
    # The demo loader uses the store; the store never uses the demo generator.
    store = Path(upsert_rows.__code__.co_filename).parent
    for module in store.glob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                names |= {f"{node.module or ''}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
        assert not [name for name in names if "demo" in name.split(".")], module.name
