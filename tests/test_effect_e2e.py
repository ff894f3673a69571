"""End to end (issue #11): a run with a holdout, the messages delivered, conversions through the
API, a CSV import and a deposit import, then the effect report (API and CLI) against numbers
computed here by hand from the outbox and the planted conversions."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign_engine.api import create_app
from campaign_engine.cli import main
from campaign_engine.delivery.factory import build_delivery_worker
from campaign_engine.imports import COLUMNS
from campaign_engine.store import apikeys
from campaign_engine.store.models import AuditEntry, Conversion
from factories import NOW, TODAY, customer, deposit, rule_yaml, run_day

Z = 1.959963984540054
RULE = "deposit-drive"
IDS = [f"C{i:05d}" for i in range(1, 1401)]
SENT_AT = NOW + dt.timedelta(minutes=5)
LOCAL = "+08:00"


def ids(first: int, last: int) -> list[str]:
    return [f"C{i:05d}" for i in range(first, last + 1)]


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def write_csv(path: Path, kind: str, rows: list[dict[str, Any]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS[kind])
        for row in rows:
            writer.writerow(["" if row.get(c) is None else str(row[c]) for c in COLUMNS[kind]])
    return path


def wilson(x: int, n: int) -> tuple[float, float]:
    p = x / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


@pytest.fixture
def bank(world, tmp_path):
    channels = {"sms": {"type": "file", "path": str(tmp_path / "sms.jsonl")},
                "email": {"type": "file", "path": str(tmp_path / "email.jsonl")}}
    world.settings = world.settings.replace(channels=channels, send_rates={"sms": 0.0, "email": 0.0})
    world.rule("drive.yaml", rule_yaml(RULE, "  customer.tier: gold\n", channels="[sms]", extra=(
        "holdout: {percent: 50}\ngoal: {type: deposit_open, within_days: 14}\n")))
    clock = Clock(NOW)
    world.publish()
    app = create_app(world.settings, clock=clock, background_workers=1)
    with world.engine.begin() as conn:
        keys = {role: apikeys.create_key(conn, name=f"{role}-key", role=role, now=NOW)[1]
                for role in ("viewer", "operator")}
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": world.settings.database_url,
           "CAMPAIGN_ENGINE_RULES_DIR": str(world.settings.rules_dir),
           "CAMPAIGN_ENGINE_TEMPLATES_DIR": str(world.settings.templates_dir)}
    runner = CliRunner()

    def cli(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args), env=env, catch_exceptions=False)

    def call(method: str, path: str, role: str, **kw: Any):  # type: ignore[no-untyped-def]
        return app.test_client().open(path, method=method, headers={"Authorization": f"Bearer {keys[role]}"}, **kw)

    yield world, clock, call, cli
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def test_effect_end_to_end_run_deliver_convert_and_report(bank, tmp_path):
    world, clock, call, cli = bank
    world.add("customers", *(customer(c, mobile=f"139{i:08d}") for i, c in enumerate(IDS)))
    world.add("deposits", deposit("BOOK1", "C01400"))  # the bank's book, loaded before measuring starts

    # 1. the run: half held out (the rule's salt), recorded with their due time, never sent
    report = run_day(world.services(), today=TODAY, now=NOW)
    counts = next(r for r in report["rules"] if r["rule"] == RULE)
    held = {m.customer_id for m in world.messages(rule_id=RULE, status="held_out")}
    assert counts["held_out"] == len(held) == 681 and counts["queued"] == 719

    # 2. delivery: 50 customers opt out before it, so their treated messages are suppressed (still treated)
    world.add("customers", *(customer(c, sms_consent=False, mobile=f"139{IDS.index(c):08d}")
                             for c in ids(1351, 1400)))
    worker = build_delivery_worker(world.settings, world.engine, clock=lambda: SENT_AT)
    try:
        while worker.worker.run_once().get("claimed", 0):
            pass
    finally:
        worker.close()
    statuses = {m.customer_id: m.status for m in world.messages(rule_id=RULE)}
    sent = {c for c, s in statuses.items() if s == "sent"}
    treated = set(statuses) - held
    assert {statuses[c] for c in treated - sent} == {"suppressed"} and sent
    assert all(m.sent_at == SENT_AT for m in world.messages(rule_id=RULE, status="sent"))

    # 3. conversions through the API (operator): idempotent, audited
    clock.now = NOW + dt.timedelta(days=25)
    api_batch = ([{"conversion_id": f"api-{c}", "customer_id": c, "type": "deposit_open", "product_code": "TD1Y",
                   "amount": 1000, "occurred_at": f"2026-03-11T10:00:00{LOCAL}"} for c in ids(1, 100)]
                 + [{"conversion_id": f"api-{c}", "customer_id": c, "type": "deposit_open", "amount": "700.00",
                     "occurred_at": "2026-03-11 10:00"} for c in ids(1351, 1360)])  # naive: Shanghai time
    answer = call("POST", "/api/v1/conversions", "operator", json={"conversions": api_batch})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json() == {"received": 110, "recorded": 110, "already_recorded": 0}
    again = call("POST", "/api/v1/conversions", "operator", json={"conversions": api_batch})
    assert again.get_json() == {"received": 110, "recorded": 0, "already_recorded": 110}
    with world.engine.connect() as conn:
        audit = conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.details)
                             .where(AuditEntry.action == "conversions.record")).all()
    assert [(a.action, a.details["recorded"]) for a in audit] == [("conversions.record", 110),
                                                                   ("conversions.record", 0)]
    assert all(a.actor.startswith("key:operator-key#") for a in audit)

    # 4. conversions through the CSV import (the CLI)
    csv_rows = ([{"conversion_id": f"csv-{c}", "customer_id": c, "type": "deposit_open", "amount": "2000",
                  "occurred_at": f"2026-03-13T09:00:00{LOCAL}"} for c in ids(101, 200)]
                + [{"conversion_id": "csv-second", "customer_id": "C00001", "type": "deposit_open",
                    "amount": "9999", "occurred_at": f"2026-03-12T09:00:00{LOCAL}"}]  # a second: not counted
                + [{"conversion_id": f"late-{c}", "customer_id": c, "type": "deposit_open", "amount": "5",
                    "occurred_at": "2026-03-30"} for c in ids(201, 250)]  # after the 14 days
                + [{"conversion_id": f"early-{c}", "customer_id": c, "type": "deposit_open", "amount": "5",
                    "occurred_at": f"2026-03-10T08:00:00{LOCAL}"} for c in ids(251, 260)]  # before the message
                + [{"conversion_id": f"other-{c}", "customer_id": c, "type": "product_purchase",
                    "product_code": "FUND-EQ01", "amount": "5",
                    "occurred_at": f"2026-03-12T09:00:00{LOCAL}"} for c in ids(261, 270)])  # not the goal
    result = cli("import", "conversions", str(write_csv(tmp_path / "conversions.csv", "conversions", csv_rows)))
    assert result.exit_code == 0, result.output

    # 5. the daily deposit import: new deposits are deposit_open conversions (the end of their open day)
    daily = ([deposit(f"NEW-{c}", c, amount=Decimal("50000"), open_date=dt.date(2026, 3, 14),
                      maturity_date=dt.date(2027, 3, 14)) for c in ids(301, 350)]
             + [deposit("NEW-LATE", "C00351", open_date=dt.date(2026, 3, 30), maturity_date=dt.date(2027, 3, 30))])
    result = cli("import", "deposits", str(write_csv(tmp_path / "deposits.csv", "deposits", daily)))
    assert result.exit_code == 0, result.output
    with world.engine.connect() as conn:
        derived = conn.execute(select(Conversion.customer_id).where(Conversion.conversion_id.like("auto:%"))).all()
    assert len(derived) == 51

    # 6. the numbers by hand: each contact converts at most once, with its first conversion's amount
    amount = {**{c: 1000 for c in ids(1, 100)}, **{c: 700 for c in ids(1351, 1360)},
              **{c: 2000 for c in ids(101, 200)}, **{c: 50000 for c in ids(301, 350)}}

    def arm(members: set[str]) -> tuple[int, int, int]:
        return len(members), len(members & set(amount)), sum(amount[c] for c in members & set(amount))

    (n1, x1, a1), (n2, x2, a2) = arm(treated), arm(held)
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = wilson(x1, n1), wilson(x2, n2)
    pooled = (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    contacted, contacted_x, _ = arm(sent)
    expected = {
        "rule": RULE, "from": "2026-03-10", "to": "2026-03-10", "window_days": 14, "readable": True, "reason": None,
        "treated": {"n": n1, "conversions": x1, "rate": p1, "ci": [l1, u1], "amount": float(a1)},
        "holdout": {"n": n2, "conversions": x2, "rate": p2, "ci": [l2, u2], "amount": float(a2)},
        "lift": {"absolute": p1 - p2, "ci": [p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
                                             p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)],
                 "relative": (p1 - p2) / p2, "p_value": math.erfc(abs(z) / math.sqrt(2))},
        "incremental": {"conversions": n1 * (p1 - p2), "amount": round(a1 - n1 * a2 / n2, 2)},
        "success_rate": contacted_x / contacted,
    }
    assert (n1, n2) == (719, 681) and x1 + x2 == 260 and contacted < n1

    # 7. the report, through the API (a viewer) and the CLI, once every window has closed
    clock.now = NOW + dt.timedelta(days=30)
    got = call("GET", f"/api/v1/rules/{RULE}/effect?from=2026-03-10&to=2026-03-10", "viewer")
    assert got.status_code == 200, got.get_data(as_text=True)
    assert_same(got.get_json(), expected)
    printed = cli("effect", "--rule", RULE, "--from", "2026-03-10", "--to", "2026-03-10", "--json")
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.output) == got.get_json()
    text = cli("effect", "--rule", RULE, "--from", "2026-03-10", "--to", "2026-03-10").output
    assert "readable: yes" in text and f"n={n1}" in text and "精准营销成功率" in text

    # 8. before the windows close it says so, and when they do
    clock.now = NOW + dt.timedelta(days=3)
    early = call("GET", f"/api/v1/rules/{RULE}/effect", "viewer").get_json()
    assert early["readable"] is False and early["from"] == "2026-03-10" and early["to"] == "2026-03-13"
    assert early["reason"] == ("not yet readable: 1,400 contacts' conversion windows are still open "
                               "(the last closes on 2026-03-24)")


def assert_same(got: dict[str, Any], expected: dict[str, Any]) -> None:
    """The same keys everywhere and the same values (floats to 1e-9): pytest.approx does not nest."""
    def walk(a: Any, b: Any, path: str) -> None:
        if isinstance(b, dict):
            assert isinstance(a, dict) and set(a) == set(b), path
            for key in b:
                walk(a[key], b[key], f"{path}.{key}")
        elif isinstance(b, list):
            assert isinstance(a, list) and len(a) == len(b), path
            for i, (x, y) in enumerate(zip(a, b)):
                walk(x, y, f"{path}[{i}]")
        elif isinstance(b, float):
            assert a == pytest.approx(b, rel=1e-9, abs=1e-12), path
        else:
            assert a == b, path
    walk(got, expected, "report")
