"""The console's effect screen and its chart: per goal rule the arms, the success rate and the lift
with its interval drawn as SVG, the report's own "not yet readable" verdict shown as such; no goal
rule or no conversion said in words; bad dates answered with a message. effect_chart is pure."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign_engine.console.effect_chart import Row, axis_range, interval_chart, nice_step
from campaign_engine.pipeline.effect import EffectRequest, effect_report
from campaign_engine.store import conversions
from campaign_engine.store.models import Message
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, TODAY, customer, run_day

PROJECT = Path(__file__).resolve().parent.parent
GOAL_RULE = """id: deposit-drive
name: 存款促活
category: marketing
priority: 40
trigger: {schedule: "0 9 * * *", subject: customer}
conditions:
  customer.tier: gold
channels: [sms]
template: birthday
holdout: {percent: 50}
goal: {type: deposit_open, within_days: 14}
"""


@pytest.fixture
def starter_pack_only() -> None:
    """Asked for by a test: the settings fixture leaves the starter pack alone (no rule has a goal)."""


@pytest.fixture
def settings(settings, tmp_path, request):
    """The starter pack plus one rule with a goal and a holdout (the starter pack alone: no goal)."""
    if "starter_pack_only" in request.fixturenames:
        return settings
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT / "rules", rules)
    (rules / "deposit_drive.yaml").write_text(GOAL_RULE, encoding="utf-8")
    return settings.replace(rules_dir=rules)


def seed(console, n: int = 40, converted: int = 6) -> dict[str, list[str]]:
    """`n` gold customers through one run of deposit-drive; `converted` of each arm open a deposit."""
    ids = [f"G{i:03d}" for i in range(n)]
    with console.engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [customer(c, mobile=f"1390000{i:04d}") for i, c in enumerate(ids)],
                    now=NOW, source="test")
    run_day(console.services, today=TODAY, now=NOW, rule_ids=["deposit-drive"])
    with console.engine.connect() as conn:
        rows = conn.execute(select(Message.customer_id, Message.status).where(Message.rule_id == "deposit-drive")).all()
    arms = {"treated": sorted(c for c, s in rows if s != "held_out"), "holdout": sorted(c for c, s in rows if s == "held_out")}
    batch = [{"conversion_id": f"V-{c}", "customer_id": c, "type": "deposit_open", "product_code": "TD1Y",
              "amount": 50000, "occurred_at": NOW + dt.timedelta(hours=2)}
             for c in arms["treated"][:converted] + arms["holdout"][:converted // 3]]
    with console.engine.begin() as conn:
        conversions.record_batch(conn, batch, source="test", now=NOW)
    return arms


def test_browser_effect_page_shows_the_chart_and_not_yet_readable(console, browsing):
    arms = seed(console)
    assert arms["treated"] and arms["holdout"]
    report = effect_report(console.services, EffectRequest("deposit-drive"), now=NOW)
    assert not report.readable and report.lift is not None  # the engine's verdict: a small, open sample
    name = console.user("viewer", "sun.viewer")
    page = browsing.page()
    browsing.login(page, name)
    page.goto(browsing.base + "/console/effect")
    card = page.locator("section.rule-effect", has_text="deposit-drive")
    assert "尚不可解读" in card.locator(".verdict").inner_text()
    assert report.verdict.reason in card.locator(".verdict").inner_text()
    table = card.locator("table").inner_text()
    assert f"{len(arms['treated'])}" in table and f"{len(arms['holdout'])}" in table
    assert f"{report.treated.rate * 100:.2f}%" in table and f"{report.holdout.rate * 100:.2f}%" in table
    lift = page.locator("svg.interval-chart[aria-label*='提升幅度']")
    assert lift.count() == 1 and "deposit-drive" in lift.inner_html()
    assert f"{report.lift * 100:+.2f} 个百分点" in lift.inner_html()
    assert card.locator("svg.interval-chart").count() == 1  # the two arms' rates
    assert "尚未记录任何转化" not in page.content()
    browsing.shot(page, "not-yet-readable")
    page.goto(browsing.base + "/console/lang/en?next=/console/effect")
    assert "Not yet readable" in page.locator("section.rule-effect .verdict").inner_text()
    assert f"{report.lift * 100:+.2f} pp" in page.locator("svg.interval-chart").first.inner_html()
    browsing.shot(page, "english")


def test_no_conversions_says_so_and_how_they_arrive(console, client_for):
    seed(console, converted=0)
    page = client_for("viewer").get("/console/effect").get_data(as_text=True)
    assert "尚未记录任何转化" in page and "campaign-engine import conversions" in page
    assert "尚不可解读" in page


def test_bad_dates_give_a_message_never_a_500(console, client_for):
    seed(console, n=4)
    client = client_for("viewer")
    for query in ("from=2026-02-30", "to=tomorrow", "from=99999-01-01", "from=2026-03-10&to=2026-03-01",
                  "from=" + "9" * 400):
        answer = client.get("/console/effect?" + query)
        assert answer.status_code == 400, query
        body = answer.get_data(as_text=True)
        assert "<h1>营销效果</h1>" in body and 'class="error"' in body
    ok = client.get("/console/effect?from=2026-03-01&to=2026-03-10")
    assert ok.status_code == 200 and "2026-03-01" in ok.get_data(as_text=True)


def test_starter_pack_without_goals_says_how_to_add_one(starter_pack_only, console, client_for):
    answer = client_for("viewer").get("/console/effect")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "还没有设定目标的上线规则" in page and "goal: {type: deposit_renewal" in page
    assert "尚未记录任何转化" in page and "<svg" not in page


# --------------------------------------------------------------------------- the chart (pure)


def test_nice_steps_and_axis_cover_every_interval_and_zero():
    assert nice_step(10) == 2 and nice_step(1) == 0.2 and nice_step(0.37) == 0.1 and nice_step(0) == 1.0
    low, high, step = axis_range([Row("a", 0.05, 0.02, 0.08), Row("b", -0.01, -0.03, 0.01)])
    assert low <= -3 and high >= 8 and step in (1, 2, 5)
    assert axis_range([]) == (-1.0, 1.0, 0.5)
    assert axis_range([Row("a", 0.03, 0.03, 0.03)], include_zero=False)[0] < 3


def test_interval_chart_draws_points_intervals_zero_and_escapes_text():
    svg = interval_chart([Row("<rule> & co", 0.02, -0.01, 0.05, tone=1, note="尚不可解读"),
                          Row("empty", None)], title='Lift "per rule"', unit=" pp", empty="—", signed=True)
    assert svg.startswith('<svg class="chart interval-chart" role="img" aria-label="Lift &quot;per rule&quot;"')
    assert "<title>Lift &quot;per rule&quot;</title>" in svg
    assert "&lt;rule&gt; &amp; co" in svg and "<rule>" not in svg
    assert svg.count("<circle") == 1 and 'class="zero"' in svg
    assert "+2.00 pp · 尚不可解读" in svg and "—" in svg
    assert "style" not in svg  # colours by class only (the CSP forbids inline styles)
    assert re.search(r'<rect class="c1" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="4"/>', svg)


def test_interval_chart_with_rates_and_no_values():
    svg = interval_chart([Row("treated", 0.15, 0.1, 0.2), Row("holdout", 0.05, 0.01, 0.12, tone=5)],
                         title="rates", unit="%")
    assert "15.00%" in svg and "5.00%" in svg and 'class="c5"' in svg
    nothing = interval_chart([Row("x", None)], title="none")
    assert "<circle" not in nothing and "<svg" in nothing
