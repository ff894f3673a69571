"""Lunar birthdays (农历生日): the customer field, its indexed key, candidate selection through the
index, the starter greeting rule, imports, the API and the migration of existing customers."""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections import Counter

import pytest
from factories import customer, rule_yaml, run_day
from sqlalchemy import create_engine, select, text

from campaign_engine.demo import generator as demo
from campaign_engine.facts.derived import age, days_to_lunar_birthday, lunar_birth_mmdd
from campaign_engine.imports import COLUMNS
from campaign_engine.rulebook import parse_rule_text
from campaign_engine.selection.plan import plan_candidates
from campaign_engine.settings import PROJECT_ROOT
from campaign_engine.store.candidates import _base_query, select_candidates
from campaign_engine.store.csv_import import import_csv
from campaign_engine.store.models import Customer

D = dt.date
UTC = dt.timezone.utc
BORN = D(1954, 11, 25)  # 甲午年十一月初一 (冬月初一)
# 冬月初一 in the next two lunar years, and the solar birthday between them
GREETED_ON = (D(2026, 12, 9), D(2027, 11, 28))


def morning(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(2, 0), tzinfo=UTC)  # 10:00 in Shanghai


def starter(world, *names: str) -> None:
    """The starter pack's rule files and templates of `names` in the world's folders."""
    for name in names:
        shutil.copy(PROJECT_ROOT / "rules" / f"{name}.yaml", world.settings.rules_dir)
        shutil.copytree(PROJECT_ROOT / "templates" / name, world.settings.templates_dir / name)


def parse(text_: str):
    rules, problems = parse_rule_text(text_, "r.yaml")
    assert problems == [], problems
    return rules[0]


# --------------------------------------------------------------------------- the greeting

def test_lunar_birthday_greeting_on_the_11th_month_1st_two_years_running(world):
    starter(world, "lunar_birthday", "birthday")
    world.add("customers", customer("C1", birth_date=BORN, birthday_calendar="lunar"),
              customer("C2", birth_date=BORN))  # same day, solar: greeted on 11-25 instead
    services = world.services()
    for day in GREETED_ON:
        assert days_to_lunar_birthday(BORN, day) == 0
        report = run_day(services, today=day, now=morning(day))
        stats = {r["rule"]: r for r in report["rules"]}
        assert report["status"] == "completed", report
        assert (stats["lunar-birthday-greeting"]["candidates"], stats["lunar-birthday-greeting"]["queued"]) == (1, 1)
        assert stats["birthday-greeting"]["matched"] == 0
    sms = [m for m in world.messages(rule_id="lunar-birthday-greeting") if m.channel == "sms"]
    assert [m.customer_id for m in sms] == ["C1", "C1"]
    assert all("今天是农历冬月初一" in m.body for m in sms)
    solar = run_day(services, today=D(2027, 11, 25), now=morning(D(2027, 11, 25)))
    assert {r["rule"]: r["queued"] for r in solar["rules"]} == {"birthday-greeting": 1,
                                                                "lunar-birthday-greeting": 0}
    assert [m.customer_id for m in world.messages(rule_id="birthday-greeting") if m.channel == "sms"] == ["C2"]


def test_lunar_birthday_on_day_30_is_greeted_on_the_29th_of_a_short_month(world):
    starter(world, "lunar_birthday")
    born = D(1987, 1, 28)  # 腊月三十 1986
    world.add("customers", customer("C1", birth_date=born, birthday_calendar="lunar"))
    day = D(2026, 2, 16)  # 腊月廿九, 除夕: the 12th month of 2025 has 29 days
    report = run_day(world.services(), today=day, now=morning(day))
    assert report["rules"][0]["queued"] == 1
    [sms] = [m for m in world.messages() if m.channel == "sms"]
    assert "今天是农历腊月廿九" in sms.body


# --------------------------------------------------------------------------- selection

def test_plan_selects_lunar_birthdays_through_the_lunar_key_window():
    rule = parse(rule_yaml("r", "  all:\n    - customer.birthday_calendar: lunar\n"
                                "    - customer.days_to_lunar_birthday: 0\n"))
    plan = plan_candidates(rule, D(2026, 12, 9), {"calendar": {}})
    assert plan.lunar_birth_mmdd == {1101} and plan.birth_mmdd is None
    assert [(p.field, p.operand) for p in plan.where] == [("customer.birthday_calendar", "lunar")]
    week = parse(rule_yaml("r", "  customer.days_to_lunar_birthday: {between: [0, 6]}\n"))
    assert plan_candidates(week, D(2026, 12, 9), {"calendar": {}}).lunar_birth_mmdd == {
        1101, 1102, 1103, 1104, 1105, 1106, 1107}
    short = parse(rule_yaml("r", "  customer.days_to_lunar_birthday: 0\n"))
    assert plan_candidates(short, D(2026, 2, 16), {"calendar": {}}).lunar_birth_mmdd == {1229, 1230}


LUNAR_RULE = ("  all:\n    - customer.birthday_calendar: lunar\n"
              "    - customer.days_to_lunar_birthday: {between: [0, 10]}\n")


@pytest.fixture
def demo_world(world):
    """4,000 demo customers (about 5 % celebrating their lunar birthday) with the lunar rule."""
    world.rule("r.yaml", rule_yaml("lunar", LUNAR_RULE))
    world.add("customers", *demo.generate_customers(4000, seed=3, today=D(2026, 3, 10)))
    return world


@pytest.mark.parametrize("day", [D(2026, 12, 9), D(2026, 2, 16), D(2026, 3, 10), D(2027, 8, 1)])
def test_lunar_candidates_are_exactly_the_lunar_customers_a_brute_force_finds(demo_world, day):
    services = demo_world.services()
    rule = services.rulebook.rules["lunar"]
    plan = plan_candidates(rule, day, {"calendar": {}})
    read = [c.customer["customer_id"] for batch in select_candidates(demo_world.engine, plan, 500) for c in batch]
    with demo_world.engine.connect() as conn:
        everyone = conn.execute(select(Customer.customer_id, Customer.birth_date, Customer.birthday_calendar)).all()
    brute = sorted(cid for cid, birth, kind in everyone
                   if kind == "lunar" and 0 <= days_to_lunar_birthday(birth, day) <= 10)
    assert read == brute and brute  # no lunar customer missed, no solar one read
    report = run_day(services, today=day, now=morning(day), dry_run=True)
    assert (report["rules"][0]["candidates"], report["rules"][0]["matched"]) == (len(brute), len(brute))


def test_lunar_candidate_query_reads_the_lunar_birth_mmdd_index(demo_world):
    rule = demo_world.services().rulebook.rules["lunar"]
    query, key = _base_query(plan_candidates(rule, D(2026, 12, 9), {"calendar": {}}))
    with demo_world.engine.connect() as conn:
        compiled = query.order_by(*key).compile(conn, compile_kwargs={"literal_binds": True})
        if conn.dialect.name == "sqlite":
            plan = " ".join(str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}")))
        else:  # a 4,000-row table would be scanned: ask whether the index serves the query
            conn.execute(text("SET LOCAL enable_seqscan = off"))
            plan = " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
    assert "ix_customers_lunar_birth_mmdd" in plan, plan


# --------------------------------------------------------------------------- the stored key

def test_upsert_fills_lunar_birth_mmdd_and_keeps_birthday_calendar_when_a_row_lacks_it(world):
    world.add("customers", customer("C1", birth_date=BORN, birthday_calendar="lunar"),
              customer("C2", birth_date=None))
    world.add("customers", customer("C1", birth_date=BORN, name="王芳"))  # a source without the column
    with world.engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(select(Customer.__table__))}
    assert (rows["C1"].lunar_birth_mmdd, rows["C1"].birth_mmdd, rows["C1"].birthday_calendar, rows["C1"].name) == (
        1101, 1125, "lunar", "王芳")
    assert (rows["C2"].lunar_birth_mmdd, rows["C2"].birthday_calendar) == (None, "solar")


def _csv(path, columns, rows):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(c, "") for c in columns])
    return path


def _text_row(customer_id: str, **values: str) -> dict[str, str]:
    row = {"customer_id": customer_id, "name": "王芳", "gender": "F", "birth_date": "1954-11-25",
           "tier": "gold", "aum": "1000", "sms_consent": "true", "email_consent": "false", "language": "zh"}
    row.update(values)
    return row


def test_csv_import_reads_birthday_calendar_and_a_file_without_the_column_keeps_it(engine, tmp_path):
    now = morning(D(2026, 3, 10))
    report = import_csv(engine, "customers", _csv(tmp_path / "a.csv", COLUMNS["customers"], [
        _text_row("C1", birthday_calendar="农历"), _text_row("C2", birthday_calendar="lunar"),
        _text_row("C3"), _text_row("C4", birthday_calendar="moon")]), now=now)
    assert (report.upserted, [(p.line, p.field) for p in report.problems]) == (3, [(5, "birthday_calendar")])
    assert "unknown birthday calendar 'moon', expected solar or lunar" in report.problems[0].reason
    older = [c for c in COLUMNS["customers"] if c != "birthday_calendar"]  # a file from before the column
    report = import_csv(engine, "customers", _csv(tmp_path / "b.csv", older, [
        _text_row("C1", name="王芳芳"), _text_row("C5")]), now=now)
    assert report.ok and report.upserted == 2
    with engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(select(Customer.__table__))}
    assert {cid: r.birthday_calendar for cid, r in rows.items()} == {
        "C1": "lunar", "C2": "lunar", "C3": "solar", "C5": "solar"}
    assert rows["C1"].name == "王芳芳" and rows["C5"].lunar_birth_mmdd == 1101


def test_api_customer_birthday_calendar_field(world):
    from campaign_engine.api import create_app
    from campaign_engine.store import apikeys

    with world.engine.begin() as conn:
        _, key = apikeys.create_key(conn, name="admin", role="admin", now=morning(D(2026, 3, 10)))
    world.publish()
    app = create_app(world.settings, clock=lambda: morning(D(2026, 3, 10)))
    try:
        client = app.test_client()
        auth = {"Authorization": f"Bearer {key}"}
        body = {"name": "王芳", "tier": "gold", "birth_date": "1954-11-25", "birthday_calendar": "lunar"}
        put = client.put("/api/v1/customers/C1", json=body, headers=auth)
        assert put.status_code == 200, put.get_json()
        assert put.get_json()["birthday_calendar"] == "lunar" and "lunar_birth_mmdd" not in put.get_json()
        bad = client.put("/api/v1/customers/C1", json={**body, "birthday_calendar": "moon"}, headers=auth)
        assert bad.status_code == 400 and "birthday_calendar" in bad.get_json()["error"]["details"]["fields"]
        default = client.put("/api/v1/customers/C2", json={"name": "李强", "tier": "gold"}, headers=auth)
        assert default.get_json()["birthday_calendar"] == "solar"
    finally:
        app.extensions["campaign"].runtime.close()
    with world.engine.connect() as conn:
        assert conn.execute(select(Customer.lunar_birth_mmdd).where(Customer.customer_id == "C1")).scalar() == 1101


def test_migration_fills_lunar_birth_mmdd_of_existing_customers_in_batches(tmp_path):
    from campaign_engine.store.db import upgrade_database

    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade_database(url, "0005")
    engine = create_engine(url)
    births = [BORN + dt.timedelta(days=37 * i) for i in range(120)] + [None]
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customers (customer_id, name, birth_date, birth_mmdd, tier, aum, "
                          "rate_sensitive, do_not_contact, language, updated_at) VALUES (:id, '张伟', :birth, "
                          "NULL, 'gold', 0, 0, 0, 'zh', '2026-01-01 00:00:00')"),
                     [{"id": f"C{i:04d}", "birth": b} for i, b in enumerate(births)])
    engine.dispose()
    upgrade_database(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT birth_date, lunar_birth_mmdd, birthday_calendar FROM customers "
                                 "ORDER BY customer_id")).all()
    engine.dispose()
    expected = [lunar_birth_mmdd(b) for b in births]
    assert [r[1] for r in rows] == expected and expected[0] == 1101 and expected[-1] is None
    assert {r[2] for r in rows} == {"solar"}


def test_fill_lunar_birth_mmdd_batches_and_runs_again_harmlessly(engine):
    import importlib.util

    spec = importlib.util.spec_from_file_location("m0006", PROJECT_ROOT / "migrations" / "versions" /
                                                  "0006_lunar_birthdays.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with engine.begin() as conn:
        conn.execute(Customer.__table__.insert(), [
            {"customer_id": f"C{i:03d}", "name": "张伟", "birth_date": BORN + dt.timedelta(days=i), "tier": "gold",
             "aum": 0, "rate_sensitive": False, "do_not_contact": False, "language": "zh",
             "updated_at": morning(D(2026, 1, 1))} for i in range(25)])
        assert module.fill_lunar_birth_mmdd(conn, batch=7) == 25
        assert module.fill_lunar_birth_mmdd(conn, batch=7) == 0
        stored = conn.execute(select(Customer.birth_date, Customer.lunar_birth_mmdd)).all()
    assert all(m == lunar_birth_mmdd(b) for b, m in stored)


# --------------------------------------------------------------------------- demo data and validation

def test_demo_data_gives_about_15_percent_of_customers_over_55_a_lunar_birthday():
    today = D(2026, 3, 10)
    customers = list(demo.generate_customers(20_000, seed=42, today=today))
    older = Counter(c["birthday_calendar"] for c in customers if age(c["birth_date"], today) > 55)
    younger = Counter(c["birthday_calendar"] for c in customers if age(c["birth_date"], today) <= 55)
    assert older["lunar"] / sum(older.values()) == pytest.approx(0.15, abs=0.015)
    assert younger == Counter(solar=sum(younger.values()))
    assert customers == list(demo.generate_customers(20_000, seed=42, today=today))  # deterministic


@pytest.mark.parametrize(("condition", "reason"), [
    ("customer.birthday_calendar: lunr", "'lunr' is not one of solar, lunar (did you mean 'lunar'?)"),
    ("calendar.festival: 中秋节", "'中秋节' is not one of 除夕, 春节, 元宵, 清明, 端午, 七夕, 中秋, 重阳, 冬至, 腊八 "
                                  "(did you mean '中秋'?)"),
    ("calendar.solar_term: 冬至日", "(did you mean '冬至'?)"),
])
def test_enumerated_calendar_fields_are_checked_with_did_you_mean(condition, reason):
    _, problems = parse_rule_text(rule_yaml("r", f"  {condition}\n"), "r.yaml")
    assert len(problems) == 1 and reason in problems[0].reason, problems
