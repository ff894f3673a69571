"""Demo bank data: deterministic, realistic, and valid for the importer."""

from __future__ import annotations

import ast
import csv
import datetime as dt
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign_engine.demo import generator as demo
from campaign_engine.demo.loader import load_demo_data
from campaign_engine.imports import COLUMNS
from campaign_engine.store.csv_import import import_csv
from campaign_engine.store.models import Consent, Customer, Deposit, Holding, Product, Manager
from campaign_engine.vocabulary import CUSTOMER_RISK_LEVELS, PRODUCT_RISK_LEVELS, Tier, risk_rank

N = 5000


@pytest.fixture(scope="module")
def customers() -> list[dict]:
    return list(demo.generate_customers(N, seed=42, today=dt.date(2026, 3, 10)))


def test_generate_customers_deterministic_for_seed(today):
    first = list(demo.generate_customers(300, seed=7, today=today))

    assert first == list(demo.generate_customers(300, seed=7, today=today))
    assert first != list(demo.generate_customers(300, seed=8, today=today))
    assert first[:100] == list(demo.generate_customers(100, seed=7, today=today))
    assert list(demo.generate_deposits(300, seed=7, today=today)) == list(
        demo.generate_deposits(300, seed=7, today=today))
    assert list(demo.generate_holdings(300, seed=7)) == list(demo.generate_holdings(300, seed=7))


def test_generate_customers_streams():
    stream = demo.generate_customers(10**9, seed=1, today=dt.date(2026, 3, 10))
    assert next(stream)["customer_id"] == "C00000001"
    assert next(stream)["customer_id"] == "C00000002"


def test_generate_customers_tier_pyramid_within_tolerance(customers):
    share = {tier: n / N for tier, n in Counter(c["tier"] for c in customers).items()}

    assert share[Tier.DIAMOND] == pytest.approx(0.005, abs=0.003)
    assert share[Tier.PLATINUM] == pytest.approx(0.02, abs=0.007)
    assert share[Tier.GOLD] == pytest.approx(0.10, abs=0.02)
    assert share[Tier.REGULAR] == pytest.approx(0.80, abs=0.03)
    assert share[Tier.RESTRICTED] == pytest.approx(0.075, abs=0.02)


def test_generate_customers_aum_matches_tier(customers):
    bounds = {"diamond": (6_000_000, None), "platinum": (1_000_000, 6_000_000),
              "gold": (200_000, 1_000_000), "regular": (0, 200_000), "restricted": (0, 200_000)}
    for c in customers:
        low, high = bounds[c["tier"]]
        assert isinstance(c["aum"], Decimal) and c["aum"] >= low
        assert high is None or c["aum"] < high
        assert (c["manager_id"] is not None) == (c["tier"] in ("diamond", "platinum", "gold"))


def test_generate_customers_fields_realistic(customers, today):
    assert [c["customer_id"] for c in customers[:2]] == ["C00000001", "C00000002"]
    assert len({c["customer_id"] for c in customers}) == N
    share = lambda test: sum(1 for c in customers if test(c)) / N  # noqa: E731
    assert share(lambda c: c["mobile"] is not None) == pytest.approx(0.97, abs=0.015)
    assert all(re.fullmatch(r"1[3-9]\d{9}", c["mobile"]) for c in customers if c["mobile"])
    assert share(lambda c: c["email"] is not None) == pytest.approx(0.60, abs=0.03)
    assert share(lambda c: c["risk_level"] is None) == pytest.approx(0.03, abs=0.01)
    assert {c["risk_level"] for c in customers} == {*CUSTOMER_RISK_LEVELS, None}
    assert share(lambda c: c["risk_level"] in ("C1", "C2", "C3")) > 0.6
    assert share(lambda c: c["rate_sensitive"]) == pytest.approx(0.30, abs=0.03)
    assert share(lambda c: c["sms_consent"]) == pytest.approx(0.75, abs=0.03)
    assert share(lambda c: c["email_consent"]) == pytest.approx(0.55, abs=0.03)
    assert share(lambda c: c["do_not_contact"]) == pytest.approx(0.02, abs=0.01)
    assert share(lambda c: c["language"] == "zh") == pytest.approx(0.95, abs=0.015)
    assert {c["gender"] for c in customers} == {"M", "F"}
    assert all(2 <= len(c["name"]) <= 4 for c in customers)
    assert any(c["name"].startswith("欧阳") for c in customers)
    assert Counter(c["name"][0] for c in customers).most_common(1)[0][0] in "王李张"
    assert all(c["branch"].startswith(c["city"] + "分行") and c["branch"].endswith("支行")
               for c in customers)
    births = [c["birth_date"] for c in customers]
    assert all(dt.date(today.year - 91, today.month, today.day) < b
               <= dt.date(today.year - 18, today.month, today.day) for b in births)
    assert any((b.month, b.day) == (2, 29) for b in births)


def test_every_managed_customer_has_a_manager_of_their_own_branch(customers):
    managers = {m["manager_id"]: m for m in demo.generate_managers(N, seed=42)}
    managed = [c for c in customers if c["manager_id"] is not None]

    assert managed and all(managers[c["manager_id"]]["branch"] == c["branch"] for c in managed)
    assert sorted(m["branch"] for m in managers.values()) == sorted(demo._BRANCHES)  # each branch has one
    # the quick start's diamond customer (README): RM0012 of 北京分行丰台支行, active, the demo manager's
    quick = next(c for c in demo.generate_customers(60, seed=42, today=dt.date(2026, 3, 10))
                 if c["customer_id"] == "C00000053")
    assert (quick["tier"], quick["branch"], quick["manager_id"], quick["phone_consent"]) == (
        "diamond", "北京分行丰台支行", "RM0012", True)
    assert managers["RM0012"]["branch"] == "北京分行丰台支行" and managers["RM0012"]["active"]
    from campaign_engine.demo.users import DEMO_USERS
    assert ("demo-manager", "manager", "RM0012") in DEMO_USERS


def test_managers_grow_by_a_round_per_branch_and_customers_keep_theirs():
    per_round = demo.CUSTOMERS_PER_ROUND
    assert [m["manager_id"] for m in demo.generate_managers(0, seed=1)] == []
    assert len(list(demo.generate_managers(per_round, seed=1))) == len(demo._BRANCHES)
    more = list(demo.generate_managers(per_round + 1, seed=1))
    assert len(more) == 2 * len(demo._BRANCHES) and more[len(demo._BRANCHES)]["branch"] == demo._BRANCHES[0]
    # the first managers are the same whatever the number of customers (names, mobiles, who has left)
    assert more[:len(demo._BRANCHES)] == list(demo.generate_managers(10, seed=1))
    assert demo.manager_of(1, demo._BRANCHES[0]) == "RM0001"
    assert demo.manager_of(per_round + 1, demo._BRANCHES[0]) == f"RM{len(demo._BRANCHES) + 1:04d}"


def test_generate_products_catalogue():
    products = demo.generate_products()
    codes = {p["product_code"] for p in products}

    assert {"TD3M", "TD6M", "TD1Y", "TD2Y", "TD3Y", "TD5Y", "FUND-EQ01", "WM-R2-01"} <= codes
    assert len(codes) == len(products) >= 10
    assert all(p["risk_level"] in PRODUCT_RISK_LEVELS for p in products)
    deposits = [p for p in products if p["type"] == "time_deposit"]
    assert all(p["risk_level"] == "R1" and Decimal("1.10") <= p["rate"] <= Decimal("1.85") for p in deposits)
    assert {p["type"] for p in products} == {"time_deposit", "fund", "wealth", "bond"}
    products[0]["name"] = "changed"
    assert demo.generate_products()[0]["name"] != "changed"


def test_generate_deposits_mature_around_today(customers, today):
    deposits = list(demo.generate_deposits(N, seed=42, today=today))
    tiers = {c["customer_id"]: c["tier"] for c in customers}
    terms = {"TD3M": 3, "TD6M": 6, "TD1Y": 12, "TD2Y": 24, "TD3Y": 36, "TD5Y": 60}

    assert len(deposits) / N == pytest.approx(0.8, abs=0.1)
    assert len({d["deposit_id"] for d in deposits}) == len(deposits)
    offsets = Counter((d["maturity_date"] - today).days for d in deposits)
    assert min(offsets) >= -200 and max(offsets) < 200
    assert all(offsets[day] > 0 for day in range(0, 30))  # something matures every day
    for d in deposits:
        assert d["open_date"] < today
        months = terms[d["product_code"]]
        opened, matures = d["open_date"], d["maturity_date"]
        assert (matures.year * 12 + matures.month) - (opened.year * 12 + opened.month) == months
        assert re.fullmatch(r"\d{16}|\d{19}", d["account_no"])
        assert d["amount"] >= 1000
    per_tier = Counter(tiers[d["customer_id"]] for d in deposits)
    tier_count = Counter(tiers.values())
    assert per_tier["diamond"] / tier_count["diamond"] > per_tier["regular"] / tier_count["regular"]


def test_generate_holdings_quarter_of_customers_suitable_products(customers):
    holdings = list(demo.generate_holdings(N, seed=42))
    products = {p["product_code"]: p for p in demo.generate_products()}
    risk = {c["customer_id"]: c["risk_level"] for c in customers}

    holders = {h["customer_id"] for h in holdings}
    assert len(holders) / N == pytest.approx(0.25, abs=0.04)
    assert max(Counter(h["customer_id"] for h in holdings).values()) <= 3
    for h in holdings:
        product = products[h["product_code"]]
        assert product["type"] != "time_deposit"
        assert risk_rank(product["risk_level"]) <= risk_rank(risk[h["customer_id"]])
        assert h["amount"] >= product["min_amount"]


def test_demo_module_is_pure():
    tree = ast.parse(Path(demo.__file__).read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.level == 0}
    assert imported <= {"__future__", "datetime", "random", "bisect", "calendar", "collections",
                        "decimal", "itertools", "typing"}
    calls = {node.func.attr for node in ast.walk(tree)
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)}
    assert not calls & {"now", "today", "utcnow", "open"}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _write(path: Path, kind: str, rows) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS[kind])
        for row in rows:
            writer.writerow([_cell(row[c]) for c in COLUMNS[kind]])
    return path


def test_demo_rows_pass_importer_validation_round_trip(engine, tmp_path, today, now):
    n = 2000
    files = {
        "products": _write(tmp_path / "products.csv", "products", demo.generate_products()),
        "customers": _write(tmp_path / "customers.csv", "customers",
                            demo.generate_customers(n, seed=3, today=today)),
        "deposits": _write(tmp_path / "deposits.csv", "deposits",
                           demo.generate_deposits(n, seed=3, today=today)),
        "holdings": _write(tmp_path / "holdings.csv", "holdings", demo.generate_holdings(n, seed=3)),
    }

    reports = {kind: import_csv(engine, kind, path, now=now, batch_size=700)
               for kind, path in files.items()}

    for kind, report in reports.items():
        assert report.ok, (kind, report.problems[:5])
        assert report.upserted == report.rows > 0
    assert reports["customers"].rows == n
    with engine.connect() as conn:
        imported = {r.customer_id: r for r in conn.execute(select(Customer.__table__))}
    expected = {c["customer_id"]: c for c in demo.generate_customers(n, seed=3, today=today)}
    for customer_id in ("C00000001", "C00000777", f"C{n:08d}"):
        row, source = imported[customer_id], expected[customer_id]
        assert (row.name, row.tier, row.birth_date, row.mobile, row.aum) == (
            source["name"], source["tier"], source["birth_date"], source["mobile"], source["aum"])


def test_load_demo_data_writes_every_kind(engine, today, now):
    counts = load_demo_data(engine, 500, seed=5, today=today, now=now, batch_size=200)

    with engine.connect() as conn:
        stored = {kind: conn.execute(select(func.count()).select_from(model)).scalar_one()
                  for kind, model in (("products", Product), ("managers", Manager), ("customers", Customer),
                                      ("deposits", Deposit), ("holdings", Holding))}
        unmanaged = conn.execute(select(func.count()).select_from(Customer).where(
            Customer.manager_id.is_not(None), Customer.manager_id.not_in(select(Manager.manager_id)))).scalar_one()
        sources = set(conn.execute(select(Consent.source)).scalars())
        consent_rows = conn.execute(select(func.count()).select_from(Consent)).scalar_one()
        birthdays = conn.execute(select(func.count()).select_from(Customer)
                                 .where(Customer.birth_mmdd.is_(None))).scalar_one()
    assert counts == stored
    assert counts["customers"] == 500 and counts["products"] == len(demo.generate_products())
    assert counts["deposits"] > 300 and counts["holdings"] > 50
    assert sources == {"demo-data"} and consent_rows == 1500  # sms, email and phone per customer
    assert counts["managers"] == len(demo._BRANCHES) and unmanaged == 0  # one per branch; every manager_id names one
    assert birthdays == 0
    assert load_demo_data(engine, 500, seed=5, today=today, now=now) == counts  # idempotent
