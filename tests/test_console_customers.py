"""The console's customers screen: find a customer, their profile, consents, contact history, tasks and
conversions; an admin withdraws a consent with its source (the API's domain calls: queued marketing
suppressed, the audit entry with the console user); a viewer sees no control, gets 403 posting, and
sees contact data masked; an unknown customer is the 404 page."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from campaign_engine.store import conversions
from campaign_engine.store.models import AuditEntry, Message
from factories import NOW
from test_console_messages import seed_bank


def audit_entries(console, action: str) -> list[tuple[str, str | None, dict | None]]:
    with console.engine.connect() as conn:
        return [(r.actor, r.target, r.details) for r in conn.execute(
            select(AuditEntry.actor, AuditEntry.target, AuditEntry.details).where(AuditEntry.action == action))]


def statuses(console, customer_id: str) -> dict[str, str]:
    with console.engine.connect() as conn:
        return {r.rule_id: r.status for r in conn.execute(
            select(Message.rule_id, Message.status).where(Message.customer_id == customer_id))}


def test_browser_admin_withdraws_sms_consent_with_a_source(console, browsing):
    seed_bank(console)
    with console.engine.begin() as conn:
        conversions.record_batch(conn, [{"conversion_id": "V1", "customer_id": "C1", "type": "deposit_renewal",
                                         "product_code": "TD1Y", "amount": 80000, "occurred_at": NOW}],
                                 source="test", now=NOW)
    name = console.user("admin", "chen.admin")
    page = browsing.page()
    browsing.login(page, name)
    page.goto(browsing.base + "/console/customers")
    assert page.locator("table tbody tr").count() == 3
    browsing.shot(page, "list")
    page.get_by_label("客户号", exact=True).fill("C1")
    page.get_by_role("button", name="打开客户").click()
    page.wait_for_load_state("networkidle")
    assert page.url.endswith("/console/customers/C1")
    profile = page.locator("section", has=page.locator("#profile-h")).inner_text()
    assert "金" in profile and "C3" in profile and "北京分行" in profile and "RM0001" in profile
    assert "13800000001" in profile  # an admin sees contact data
    assert page.locator("table.messages tbody tr").count() == 2  # contact history
    assert "定期续存" in page.locator("section", has=page.locator("#conv-h")).inner_text()
    browsing.shot(page, "customer-before")
    sms_row = page.locator("#consents tbody tr", has_text="短信")
    sms_row.get_by_label("来源/依据").fill("网点0101 客户书面申请")
    sms_row.get_by_role("button", name="撤回授权").click()
    page.wait_for_load_state("networkidle")
    assert "已撤回短信营销授权，拦截待发送的营销消息 1 条" in page.locator(".flash").inner_text()
    sms_row = page.locator("#consents tbody tr", has_text="短信")
    assert "已撤回" in sms_row.inner_text() and "网点0101 客户书面申请" in sms_row.inner_text()
    assert sms_row.get_by_role("button", name="登记授权").count() == 1
    browsing.shot(page, "consent-withdrawn")
    assert audit_entries(console, "consent.withdraw") == [
        ("user:chen.admin", "C1:sms", {"source": "网点0101 客户书面申请", "suppressed_messages": 1})]
    # the queued birthday greeting (marketing) is suppressed; the deposit reminder (service) stays
    assert statuses(console, "C1") == {"birthday-greeting": "suppressed", "td-maturity-reminder": "queued"}
    page.locator("a", has_text="English").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Marketing consent").count() == 1
    browsing.shot(page, "customer-english")


def test_a_viewer_sees_no_consent_control_masked_contact_data_and_gets_403_posting(console, client_for):
    seed_bank(console)
    viewer = client_for("viewer")
    page = viewer.get("/console/customers/C1").get_data(as_text=True)
    assert "撤回授权" not in page and "/consents/" not in page
    assert "138****0001" in page and "13800000001" not in page and "c***@example.com" in page
    assert "c1@example.com" not in page
    answer = viewer.post("/console/customers/C1/consents/sms", {"granted": "0", "source": "nope"})
    assert answer.status_code == 403
    assert "您的角色无权执行此操作" in answer.get_data(as_text=True)
    assert audit_entries(console, "consent.withdraw") == []
    assert statuses(console, "C1")["birthday-greeting"] == "queued"
    # the browse list masks the same way
    listing = viewer.get("/console/customers").get_data(as_text=True)
    assert "138****0002" in listing and "13800000002" not in listing


def test_consent_change_needs_the_csrf_token_a_source_and_a_choice(console, client_for):
    seed_bank(console)
    admin = client_for("admin", "li.admin")
    admin.get("/console/customers/C2")
    assert admin.post("/console/customers/C2/consents/email", {"granted": "0", "source": "x"},
                      csrf=False).status_code == 400
    empty = admin.post("/console/customers/C2/consents/email", {"granted": "0", "source": "  "})
    assert empty.status_code == 400 and "请填写来源/依据" in empty.get_data(as_text=True)
    odd = admin.post("/console/customers/C2/consents/email", {"granted": "maybe", "source": "branch"})
    assert odd.status_code == 400 and "请选择登记或撤回授权" in odd.get_data(as_text=True)
    long = admin.post("/console/customers/C2/consents/email", {"granted": "0", "source": "x" * 101})
    assert long.status_code == 400
    assert audit_entries(console, "consent.withdraw") == []
    assert admin.post("/console/customers/NOPE/consents/email", {"granted": "0", "source": "a"}).status_code == 404
    assert admin.post("/console/customers/C2/consents/fax", {"granted": "0", "source": "a"}).status_code in (404, 405)
    # phone consent: withdrawn, then granted again, each audited
    done = admin.post("/console/customers/C2/consents/phone", {"granted": "0", "source": "call centre"})
    assert done.status_code == 302
    page = admin.get(done.headers["Location"].split("#")[0]).get_data(as_text=True)
    assert "已撤回电话营销授权" in page
    admin.post("/console/customers/C2/consents/phone", {"granted": "1", "source": "branch form"})
    assert [a[1] for a in audit_entries(console, "consent.withdraw")] == ["C2:phone"]
    assert audit_entries(console, "consent.grant") == [("user:li.admin", "C2:phone", {"source": "branch form"})]


def test_find_by_id_unknown_customer_and_hostile_queries(console, client_for):
    seed_bank(console)
    client = client_for("viewer")
    found = client.get("/console/customers?q=C2")
    assert found.status_code == 302 and found.headers["Location"].endswith("/console/customers/C2")
    missing = client.get("/console/customers?q=C404")
    assert missing.status_code == 200 and "没有客户号为 C404 的客户" in missing.get_data(as_text=True)
    unknown = client.get("/console/customers/C404")
    assert unknown.status_code == 404 and "没有这个页面或记录" in unknown.get_data(as_text=True)
    for query in ("q=" + "x" * 500, "tier=emperor", "after=" + "z" * 300, "branch=" + "b" * 1000,
                  "manager=%E4%B8%AD" * 40):
        answer = client.get("/console/customers?" + query)
        assert answer.status_code in (200, 400), query
        assert "<h1>客户</h1>" in answer.get_data(as_text=True)
    assert "<h1>客户</h1>" in client.get("/console/customers?tier=emperor").get_data(as_text=True)
    assert "请选择列表中的客户等级" in client.get("/console/customers?tier=emperor").get_data(as_text=True)
    for query in ("after=abc", "after=99999999999999999999999", "limit=-5", "customer_id=C2&_external=1"):
        answer = client.get("/console/customers/C1?" + query)
        assert answer.status_code == 200 and "张伟" in answer.get_data(as_text=True)


def test_browse_filters_by_tier_and_pages(console, client_for):
    seed_bank(console)
    client = client_for("marketer")
    gold = client.get("/console/customers?tier=gold").get_data(as_text=True)
    assert re.findall(r'<th scope="row"><a href="/console/customers/(\w+)"', gold) == ["C1"]
    everyone = client.get("/console/customers").get_data(as_text=True)
    assert re.findall(r'<th scope="row"><a href="/console/customers/(\w+)"', everyone) == ["C1", "C2", "C3"]


@pytest.mark.parametrize("role", ["manager"])
def test_roles_without_read_may_not_open_customers(console, client_for, role):
    client = client_for(role, manager_id="RM0001")
    assert client.get("/console/customers").status_code == 403
    assert client.get("/console/customers/C1").status_code == 403


def test_a_customers_manager_tasks_show_on_their_page(console, client_for):
    from decimal import Decimal

    from campaign_engine.store.upsert import upsert_rows
    from factories import PRODUCTS, TODAY, customer, deposit, run_day

    with console.engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [customer("C9", tier="diamond", aum=Decimal("5000000"))], now=NOW,
                    source="test")
        upsert_rows(conn, "deposits", [deposit("D9", "C9", amount=Decimal("1200000"))], now=NOW, source="test")
    run_day(console.services, today=TODAY, now=NOW, rule_ids=["td-maturity-visit"])
    page = client_for("viewer").get("/console/customers/C9").get_data(as_text=True)
    tasks = page[page.index('id="tasks-h"'):page.index('id="conv-h"')]
    assert "td-maturity-visit" in tasks and "面谈" in tasks and "待处理" in tasks
    assert "该客户没有客户经理任务" not in page
