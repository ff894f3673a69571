"""The console's messages screen: a viewer searches the outbox by rule and sees recipients masked as
the API masks them (an admin sees them whole), paging by cursor, and hostile query strings answered
with a page that says what is wrong, never a 500."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, TODAY, customer, deposit, run_day


def seed_bank(console) -> dict:
    """Three customers and two deposits the starter pack reacts to on TODAY, then that day's run."""
    with console.engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [
            customer("C1", birth_date=dt.date(1980, 3, 10), mobile="13800000001", rate_sensitive=True),
            customer("C2", name="李娜", gender="F", tier="platinum", risk_level="C2", aum=Decimal("900000"),
                     mobile="13800000002", birth_date=dt.date(1975, 3, 10)),
            customer("C3", name="王芳", gender="F", tier="regular", risk_level="C4", city="上海",
                     aum=Decimal("10000"), mobile="13800000003", manager_id="RM0002")], now=NOW, source="test")
        upsert_rows(conn, "deposits", [deposit("D1", "C1")], now=NOW, source="test")
    return run_day(console.services, today=TODAY, now=NOW)


def test_browser_viewer_searches_messages_by_rule_and_sees_masked_recipients(console, browsing):
    seed_bank(console)
    name = console.user("viewer", "zhao.viewer")
    page = browsing.page()
    browsing.login(page, name)
    page.goto(browsing.base + "/console/messages")
    page.get_by_label("规则").fill("td-maturity-reminder")
    page.get_by_role("button", name="查询").click()
    page.wait_for_load_state("networkidle")
    rows = page.locator("table.messages tbody tr")
    assert rows.count() == 1  # the deposit reminder of C1's maturing deposit (its first channel, sms)
    text = page.locator("table.messages").inner_text()
    assert "td-maturity-reminder" in text and "birthday" not in text
    assert "138****0001" in text and "13800000001" not in text
    assert page.locator("table.messages th", has_text="规则版本").count() == 1
    assert "v1" in text
    browsing.shot(page, "viewer-by-rule")
    # the customer link leads to the customer's page
    page.locator("table.messages a", has_text="C1").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("h1").inner_text().startswith("张伟")


def test_recipients_are_masked_for_a_viewer_and_whole_for_an_admin(console, client_for):
    seed_bank(console)
    viewer = client_for("viewer").get("/console/messages?customer=C1").get_data(as_text=True)
    assert viewer.count("138****0001") == 2 and "13800000001" not in viewer  # birthday and deposit reminder
    admin = client_for("admin").get("/console/messages?customer=C1").get_data(as_text=True)
    assert admin.count("13800000001") == 2 and "****" not in admin


ROW = '<tr>\n      <td class="nowrap">'


def test_filters_status_channel_and_dates_and_cursor_paging(console, client_for):
    seed_bank(console)  # three sms messages: two birthday greetings and C1's deposit reminder
    client = client_for("marketer")
    assert client.get("/console/messages").get_data(as_text=True).count(ROW) == 3
    assert client.get("/console/messages?channel=sms&status=queued").get_data(as_text=True).count(ROW) == 3
    assert "没有符合条件的消息" in client.get("/console/messages?channel=email").get_data(as_text=True)
    assert "没有符合条件的消息" in client.get("/console/messages?status=sent").get_data(as_text=True)
    assert client.get("/console/messages?rule=birthday-greeting").get_data(as_text=True).count(ROW) == 2
    assert "没有符合条件的消息" in client.get("/console/messages?from=2026-03-11").get_data(as_text=True)
    assert client.get("/console/messages?from=2026-03-10&to=2026-03-10").get_data(as_text=True).count(ROW) == 3
    # a full page links to the next one by cursor, keeping the filters
    page = client.get("/console/messages?channel=sms&limit=2").get_data(as_text=True)
    assert page.count(ROW) == 2
    found = re.search(r'href="([^"]*after=\d+[^"]*)" rel="next"', page)
    assert found and "channel=sms" in found.group(1)
    rest = client.get(found.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert rest.count(ROW) == 1 and 'rel="next"' not in rest
    # url_for's own options in the query string stay out of the next page's link
    odd = client.get("/console/messages?limit=1&_external=1&_scheme=javascript&_anchor=x").get_data(as_text=True)
    link = re.search(r'href="([^"]*)" rel="next"', odd)
    assert link and link.group(1).startswith("/console/messages?") and "_scheme" not in link.group(1)


@pytest.mark.parametrize("query", [
    "from=2026-13-45", "to=yesterday", "from=99999-01-01", "from=2026-03-10&to=2026-03-01", "status=lost",
    "channel=pigeon", "run=abc", "run=99999999999999999999999999", "limit=0", "limit=1000000000000",
    "after=-1", "after=99999999999999999999999", "rule=" + "x" * 500, "customer=" + "y" * 200,
    "from=0001-01-01&to=9999-12-31", "rule=%00%01", "after=%E4%B8%AD"])
def test_hostile_query_strings_give_a_page_with_an_error_not_a_500(console, client_for, query):
    client = client_for("viewer")
    answer = client.get("/console/messages?" + query)
    assert answer.status_code in (200, 400), answer.status_code
    body = answer.get_data(as_text=True)
    assert "Traceback" not in body
    if answer.status_code == 400:  # control characters are refused before any view (the console's 400 page)
        assert "查询条件有误" in body or "请求无效" in body
    else:
        assert "<h1>消息查询</h1>" in body


def test_a_manager_may_not_search_messages(console, client_for):
    assert client_for("manager", manager_id="RM0001").get("/console/messages").status_code == 403


def test_store_message_extras_and_conversions_reads(console):
    from sqlalchemy import select

    from campaign_engine.store import conversions
    from campaign_engine.store.console_data import any_conversions, customer_conversions, message_extras
    from campaign_engine.store.models import Message

    seed_bank(console)
    with console.engine.begin() as conn:
        ids = list(conn.execute(select(Message.id).order_by(Message.id)).scalars())
        extras = message_extras(conn, ids + [10**12])
        assert set(extras) == set(ids) and {e["rule_version"] for e in extras.values()} == {1}
        assert message_extras(conn, []) == {}
        assert not any_conversions(conn) and customer_conversions(conn, "C1") == []
        conversions.record_batch(conn, [
            {"conversion_id": f"V{n}", "customer_id": "C1", "type": "custom", "product_code": None, "amount": None,
             "occurred_at": NOW + dt.timedelta(hours=n)} for n in range(3)], source="test", now=NOW)
        assert any_conversions(conn)
        assert [c["conversion_id"] for c in customer_conversions(conn, "C1", limit=2)] == ["V2", "V1"]
