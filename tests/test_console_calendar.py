"""The console's calendar screen: the official calendar the rules see a month at a time (2026-02-14,
a Saturday, worked; 春节 2026-02-15..23 off; 2027 not announced, never guessed), and which scheduled
rules fire on each of the next 14 days by the scheduler's own trigger and the run's calendar checks."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from flask import g

from campaign_engine.console.views.calendar import upcoming

PROJECT = Path(__file__).resolve().parent.parent
WORKDAY_RULE = """id: workday-tip
name: 工作日理财提示
category: marketing
priority: 45
trigger: {schedule: "30 10 * * *", subject: customer, workdays_only: true}
active: {from: 2026-03-01, until: 2026-03-17}
conditions:
  customer.tier: gold
channels: [sms]
template: birthday
"""
MONDAYS_RULE = """id: monday-note
name: 周一提醒
category: service
priority: 10
trigger: {schedule: "0 7 * * 1", subject: customer}
conditions:
  customer.tier: diamond
channels: [sms]
template: birthday
"""


@pytest.fixture
def settings(settings, tmp_path):
    """The starter pack (every rule daily at 8 or 9) and two rules of other habits."""
    rules = tmp_path / "rules"
    shutil.copytree(PROJECT / "rules", rules)
    (rules / "workday_tip.yaml").write_text(WORKDAY_RULE, encoding="utf-8")
    (rules / "monday_note.yaml").write_text(MONDAYS_RULE, encoding="utf-8")
    return settings.replace(rules_dir=rules)


def cell(page, day: str):  # type: ignore[no-untyped-def]
    return page.locator(f'td[data-date="{day}"]')


def test_browser_calendar_shows_adjusted_workday_spring_festival_and_2027_unannounced(console, browsing):
    name = console.user("viewer", "qian.viewer")
    page = browsing.page()
    browsing.login(page, name)
    page.goto(browsing.base + "/console/calendar")
    assert "2026年3月" in page.locator("table.month caption").inner_text()
    page.get_by_role("link", name=re.compile("上个月")).click()
    page.wait_for_load_state("networkidle")
    assert "2026年2月" in page.locator("table.month caption").inner_text()
    saturday = cell(page, "2026-02-14")
    assert "adjusted" in (saturday.get_attribute("class") or "") and "班" in saturday.inner_text()
    assert "工作日" in saturday.inner_text()
    for day in ("2026-02-15", "2026-02-17", "2026-02-23"):
        assert "春节" in cell(page, day).inner_text() and "休" in cell(page, day).inner_text()
    assert "holiday" not in (cell(page, "2026-02-24").get_attribute("class") or "")
    assert "春节" in cell(page, "2026-02-17").locator(".lunar").inner_text()  # 正月初一, the lunar festival
    notes = page.locator(".month-notes").inner_text()
    assert "春节: 2026-02-15 – 2026-02-23" in notes and "2026-02-14 周六" in notes and "2026-02-28 周六" in notes
    browsing.shot(page, "february-2026")
    page.goto(browsing.base + "/console/calendar?month=2027-01")
    assert "2027年官方节假日安排尚未公布" in page.locator(".not-announced").inner_text()
    assert "未公布" in cell(page, "2027-01-01").inner_text() and "元旦" not in cell(page, "2027-01-01").inner_text()
    browsing.shot(page, "january-2027")


def fires_of(page: str) -> dict[str, dict[str, str]]:
    """rule id -> {date: what its cell says} from the page's 14-day table (empty cells left out)."""
    found: dict[str, dict[str, str]] = {}
    for rule, cells in re.findall(r'<tr data-rule="([^"]+)">(.*?)</tr>', page, re.S):
        found[rule] = {day: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text)).strip()
                       for day, text in re.findall(r'<td class="fire (?!none)[^"]*" data-date="([^"]+)"[^>]*>(.*?)</td>',
                                                   cells, re.S)}
    return found


def test_next_14_days_follow_the_scheduler_and_the_rules_windows(console, client_for):
    page = client_for("viewer").get("/console/calendar").get_data(as_text=True)
    days = re.findall(r'<th scope="col" class="daycol[^"]*" data-date="([^"]+)"', page)
    assert days == [(dt.date(2026, 3, 10) + dt.timedelta(days=n)).isoformat() for n in range(14)]
    fires = fires_of(page)
    # the starter pack's schedules run every day; the audience is decided at run time
    assert fires["birthday-greeting"] == {day: "09:00 运行" for day in days}
    assert set(fires["holiday-greeting"].values()) == {"08:00 运行"}
    # workdays_only: runs on Friday 13 March, skipped on the weekend, none after its window (17 March)
    tip = fires["workday-tip"]
    assert tip["2026-03-13"] == "10:30 运行" and tip["2026-03-14"] == "10:30 跳过" and tip["2026-03-15"] == "10:30 跳过"
    assert max(tip) == "2026-03-17"
    # a Monday cron: only on Mondays, at its hour
    assert fires["monday-note"] == {"2026-03-16": "07:00 运行", "2026-03-23": "07:00 运行"}
    # rows in the order they fire in a day
    order = list(fires)
    assert order.index("monday-note") < order.index("holiday-greeting") < order.index("birthday-greeting")
    assert "事件触发的规则不按日期运行" in page and "rate-change-notice" in page and "product-launch" in page


def test_days_of_an_unannounced_year_block_rules_that_need_the_official_calendar(console):
    with console.app.test_request_context("/console/calendar"):
        g.services = console.services
        days, rows, _events, _broken = upcoming(dt.date(2026, 12, 25))
    by_day = {d["date"].isoformat(): d for d in days}
    assert by_day["2026-12-28"]["facts"]["announced"] is True
    assert by_day["2026-12-29"]["facts"]["announced"] is False  # waits for 2027's notice
    fires = {row["rule"].id: row["fires"] for row in rows}
    day = dt.date(2026, 12, 29)
    assert fires["birthday-greeting"][day]["state"] == "runs"  # reads no official field: it runs
    assert fires["td-maturity-visit"][day]["state"] == "blocked"  # its manager tasks need business days
    assert fires["td-maturity-visit"][dt.date(2026, 12, 28)]["state"] == "runs"
    assert "2027" in fires["td-maturity-visit"][day]["why"]
    assert "workday-tip" not in fires or not fires["workday-tip"]  # its window ended in March


@pytest.mark.parametrize("query", ["month=2026-13", "month=26-02", "month=1900-01", "month=2100-01",
                                   "month=" + "9" * 300, "month=2026-02-01", "month=%E4%B8%AD"])
def test_bad_months_give_a_message_and_this_month(console, client_for, query):
    answer = client_for("viewer").get("/console/calendar?" + query)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "月份应写作 YYYY-MM" in body and "2026年3月" in body


def test_the_edges_of_the_lunar_range_have_no_link_beyond(console, client_for):
    client = client_for("viewer")
    first = client.get("/console/calendar?month=1901-01").get_data(as_text=True)
    assert 'rel="prev"' not in first and 'rel="next"' in first
    last = client.get("/console/calendar?month=2099-12").get_data(as_text=True)
    assert 'rel="next"' not in last and "2099年12月" in last
