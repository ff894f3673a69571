"""The console's manager tasks: a relationship manager's work list (overdue first, today's calls with
their talking points, the outcome form), one task, and a supervisor's overdue list by branch and
manager. A manager sees and closes only their own customers' tasks (another's is 404, the task
unchanged); the outcome goes through the same domain function as the API (refused withdraws the
phone consent); a viewer gets no outcome form and a direct POST is 403; a POST without its CSRF
token is 400. The tasks are planned the real way: large incoming transfers of diamond customers."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from campaign_engine.pipeline import tasks as worklist
from campaign_engine.store.models import AuditEntry, Consent, Task
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.vocabulary import EventType
from factories import NOW, customer, fire_event

SHANGHAI = dt.timezone(dt.timedelta(hours=8))
MONDAY = dt.datetime(2026, 3, 9, 15, 0, tzinfo=SHANGHAI)  # a call planned now is due today (Tue 10:00)
LAST_THURSDAY = dt.datetime(2026, 3, 5, 15, 0, tzinfo=SHANGHAI)  # due Fri 03-06: overdue by NOW


def managers_row(manager_id: str, name: str, branch: str) -> dict[str, Any]:
    return dict(manager_id=manager_id, name=name, branch=branch, mobile="13900000000",
                email=f"{manager_id.lower()}@bank.example", daily_call_capacity=25, daily_visit_capacity=4,
                active=True)


def large_move(customer_id: str, event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "customer_id": customer_id, "account_no": "6222020012345678", "amount": 800000,
            "direction": "in", "occurred_at": "2026-03-05T09:30:00+08:00"}


class Bank:
    """Two managers in two branches, their diamond customers (who take phone marketing: the starter
    call is a marketing call), and the calls large transfers planned."""

    def __init__(self, console: Any) -> None:
        self.console = console
        with console.engine.begin() as conn:
            upsert_rows(conn, "managers", [managers_row("RM0001", "王经理", "北京分行"),
                                           managers_row("RM0002", "刘经理", "上海分行")], now=NOW, source="test")
            upsert_rows(conn, "customers", [
                customer("C1", name="张伟", tier="diamond", aum=Decimal("3000000"), mobile="13812345678",
                         manager_id="RM0001", phone_consent=True),
                customer("C2", name="李娜", gender="F", tier="diamond", mobile="13887654321", manager_id="RM0001",
                         phone_consent=True),
                customer("C3", name="王芳", gender="F", tier="diamond", branch="上海分行", mobile="13811112222",
                         manager_id="RM0002", phone_consent=True),
                customer("C4", name="赵强", tier="diamond", branch="上海分行", mobile="13833334444",
                         manager_id="RM0002", phone_consent=True)], now=NOW, source="test")
        services = console.services
        for customer_id, moment in (("C1", MONDAY), ("C2", LAST_THURSDAY), ("C3", MONDAY), ("C4", LAST_THURSDAY)):
            fire_event(services, EventType.LARGE_TRANSACTION, large_move(customer_id, f"lt-{customer_id}"), now=moment)
        worklist.flag_overdue(services, NOW)  # the scheduler's sweep: C2's and C4's calls are past the SLA
        self.ids = {row.customer_id: row.id for row in self.tasks()}
        assert set(self.ids) == {"C1", "C2", "C3", "C4"}

    def tasks(self) -> list[Any]:
        with self.console.engine.connect() as conn:
            return list(conn.execute(select(Task).order_by(Task.id)))

    def task(self, customer_id: str) -> Any:
        with self.console.engine.connect() as conn:
            return conn.execute(select(Task).where(Task.id == self.ids[customer_id])).one()

    def audit(self, action: str) -> list[Any]:
        with self.console.engine.connect() as conn:
            return list(conn.execute(select(AuditEntry).where(AuditEntry.action == action)))


@pytest.fixture
def bank(console) -> Bank:
    return Bank(console)


def text(response: Any) -> str:
    return response.get_data(as_text=True)


# --------------------------------------------------------------------------- the browser walks

def test_a_manager_lands_on_the_work_list_and_records_an_outcome(browsing, bank, console):
    name = console.user("manager", "wang", manager_id="RM0001")
    page = browsing.page()
    browsing.login(page, name)
    assert page.url.endswith("/console/tasks")  # a manager's landing page
    assert page.get_by_role("heading", name="我的客户跟进任务").is_visible()
    overdue = page.locator("section", has=page.get_by_role("heading", name=re.compile("^已逾期")))
    today = page.locator("section", has=page.get_by_role("heading", name=re.compile("^今日待办")))
    assert overdue.locator("article").count() == 1 and "李娜" in overdue.inner_text()
    card = today.locator("article", has_text="张伟")
    assert today.locator("article").count() == 1
    assert "13812345678" in card.inner_text()  # a manager calls the customer: the number in full
    assert "电联" in card.inner_text() and "2026-03-10 10:00" in card.inner_text()
    assert "入账 ¥800,000.00" in card.inner_text()  # the talking points the rule's task.txt.j2 rendered
    assert "王芳" not in page.content() and "赵强" not in page.content()  # RM0002's customers
    browsing.shot(page, "worklist")

    card.get_by_text("记录联系结果").click()
    card.get_by_label("备注（选填）").fill("客户考虑购买大额存单，下周面谈")
    card.get_by_label("下次联系日期（选填）").fill("2026-03-16")
    card.get_by_role("button", name="有意向").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("status").filter(has_text="已记录：张伟 — 有意向").is_visible()
    done = page.locator("section", has=page.get_by_role("heading", name="刚刚完成"))
    assert "已完成" in done.inner_text() and "有意向" in done.inner_text()
    assert "客户考虑购买大额存单" in done.inner_text() and "2026-03-16" in done.inner_text()
    today = page.locator("section", has=page.get_by_role("heading", name=re.compile("^今日待办")))
    assert "今日没有待办任务" in today.inner_text()
    row = bank.task("C1")
    assert (row.status, row.outcome, row.next_contact_on) == ("done", "interested", dt.date(2026, 3, 16))
    assert row.completed_by == "user:wang"
    browsing.shot(page, "worklist-done")

    phone = browsing.page(width=390, height=844)
    browsing.login(phone, name)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scrolling
    summary = phone.get_by_text("记录联系结果").first
    summary.click()
    button = phone.get_by_role("button", name="未联系上").first
    box = button.bounding_box()
    assert box is not None and box["height"] >= 44 and box["width"] >= 120  # big enough for a thumb
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    browsing.shot(phone, "worklist-phone")


def test_a_supervisor_sees_the_overdue_list_by_branch_and_manager(browsing, bank, console):
    page = browsing.page()
    browsing.login(page, console.user("viewer", "supervisor"))
    page.goto(browsing.base + "/console/tasks")
    assert page.get_by_role("heading", name="逾期任务").is_visible()
    rows = page.locator("table.overdue-table tbody tr")
    assert rows.count() == 2  # C2 (北京) and C4 (上海): overdue; C1 and C3 are due today, not overdue
    assert "李娜" in rows.nth(0).inner_text() and "赵强" in rows.nth(1).inner_text()
    page.get_by_label("网点").fill("上海分行")
    page.get_by_role("button", name="查询").click()
    page.wait_for_load_state("networkidle")
    assert rows.count() == 1 and "赵强" in rows.first.inner_text() and "刘经理" in rows.first.inner_text()
    page.get_by_label("客户经理").select_option("RM0002")
    page.get_by_role("button", name="查询").click()
    page.wait_for_load_state("networkidle")
    assert rows.count() == 1
    browsing.shot(page, "overdue")
    rows.first.get_by_role("link", name="赵强").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name=re.compile("^任务 ")).is_visible()
    assert "138****4444" in page.content() and "13833334444" not in page.content()  # masked for a viewer
    assert page.get_by_role("button", name="有意向").count() == 0  # a viewer closes nothing
    assert "刘经理 RM0002" in page.content() and "上海分行" in page.content()
    browsing.shot(page, "task")

    phone = browsing.page(width=390, height=844)
    browsing.login(phone, "supervisor")
    phone.goto(browsing.base + "/console/lang/en?next=/console/tasks")
    assert phone.get_by_role("heading", name="Overdue tasks").is_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    browsing.shot(phone, "overdue-phone-en")


# --------------------------------------------------------------------------- test-client checks

def test_a_manager_cannot_open_or_close_another_managers_task(client_for, bank):
    wang = client_for("manager", "wang", manager_id="RM0001")
    other = bank.ids["C3"]  # RM0002's customer
    assert wang.get(f"/console/tasks/{other}").status_code == 404
    assert "王芳" not in text(wang.get(f"/console/tasks/{other}"))
    wang.get("/console/tasks")
    response = wang.post(f"/console/tasks/{other}/outcome", {"outcome": "refused", "note": "x"})
    assert response.status_code == 404 and "王芳" not in text(response)
    row = bank.task("C3")
    assert (row.status, row.outcome, row.completed_at) == ("open", None, None)
    assert bank.audit("tasks.outcome") == []
    assert wang.get("/console/tasks/999999").status_code == 404
    own = wang.get(f"/console/tasks/{bank.ids['C1']}")
    assert own.status_code == 200 and "张伟" in text(own) and "13812345678" in text(own)


def test_refused_through_the_console_withdraws_the_phone_consent_as_the_api_does(client_for, bank, console):
    wang = client_for("manager", "wang", manager_id="RM0001")
    wang.get("/console/tasks")
    response = wang.post(f"/console/tasks/{bank.ids['C2']}/outcome", {"outcome": "refused", "note": "不要再打"})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/console/tasks?done={bank.ids['C2']}")
    page = text(wang.get(response.headers["Location"]))
    assert "已记录：李娜 — 拒绝营销" in page and "没有逾期任务" in page
    assert bank.task("C2").outcome == "refused"
    with console.engine.connect() as conn:
        consent = conn.execute(select(Consent).where(Consent.customer_id == "C2", Consent.channel == "phone")).one()
    assert consent.granted is False and consent.source == f"task:{bank.ids['C2']}"
    [entry] = bank.audit("tasks.outcome")
    assert entry.actor == "user:wang" and entry.details["outcome"] == "refused"
    assert [e.actor for e in bank.audit("consent.withdraw")] == ["user:wang"]
    again = wang.post(f"/console/tasks/{bank.ids['C2']}/outcome", {"outcome": "converted"})  # closed already
    assert "该任务已不是待处理状态" in text(wang.get(again.headers["Location"]))
    assert bank.task("C2").outcome == "refused"


def test_a_past_next_contact_date_is_refused_in_the_page(client_for, bank):
    wang = client_for("manager", "wang", manager_id="RM0001")
    wang.get("/console/tasks")
    response = wang.post(f"/console/tasks/{bank.ids['C1']}/outcome",
                         {"outcome": "reached", "next_contact_on": "2026-03-01"})
    assert "下次联系日期须为今天（2026-03-10）或之后" in text(wang.get(response.headers["Location"]))
    assert bank.task("C1").status == "open"
    response = wang.post(f"/console/tasks/{bank.ids['C1']}/outcome", {"outcome": "shouted"})
    assert "请选择一个联系结果" in text(wang.get(response.headers["Location"]))
    assert bank.task("C1").status == "open"


def test_a_viewer_sees_no_outcome_buttons_and_a_direct_post_is_403(client_for, bank):
    viewer = client_for("viewer")
    page = text(viewer.get(f"/console/tasks/{bank.ids['C1']}"))
    assert "张伟" in page and "138****5678" in page and "13812345678" not in page
    assert 'name="outcome"' not in page and "记录联系结果" not in page
    response = viewer.post(f"/console/tasks/{bank.ids['C1']}/outcome", {"outcome": "converted"})
    assert response.status_code == 403
    assert bank.task("C1").status == "open"


def test_an_operator_may_close_a_task_from_its_page(client_for, bank):
    operator = client_for("operator")
    page = text(operator.get(f"/console/tasks/{bank.ids['C4']}"))
    assert 'value="wrong_number"' in page and "138****4444" in page
    response = operator.post(f"/console/tasks/{bank.ids['C4']}/outcome", {"outcome": "wrong_number", "back": "task"})
    assert response.headers["Location"].endswith(f"/console/tasks/{bank.ids['C4']}")
    assert "号码错误" in text(operator.get(response.headers["Location"]))
    assert bank.task("C4").outcome == "wrong_number" and bank.audit("suppression.add")


def test_the_outcome_post_without_its_csrf_token_is_refused(client_for, bank):
    wang = client_for("manager", "wang", manager_id="RM0001")
    response = wang.post(f"/console/tasks/{bank.ids['C1']}/outcome", {"outcome": "interested"}, csrf=False)
    assert response.status_code == 400 and "安全令牌" in text(response)
    assert bank.task("C1").status == "open"


def test_the_supervisor_list_filters_pages_and_shows_only_overdue_tasks(client_for, bank):
    viewer = client_for("viewer")
    page = text(viewer.get("/console/tasks"))
    assert "李娜" in page and "赵强" in page and "张伟" not in page and "王芳" not in page
    assert "赵强" not in text(viewer.get("/console/tasks?branch=北京分行"))
    assert "李娜" not in text(viewer.get("/console/tasks?manager=RM0002"))
    assert "没有符合条件的逾期任务" in text(viewer.get("/console/tasks?manager=__queue__"))
    assert "翻页参数无效" in text(viewer.get("/console/tasks?after=nonsense", follow_redirects=True))


def test_a_manager_without_tasks_or_without_a_manager_id_sees_an_empty_list(client_for, bank):
    nobody = client_for("manager", "nobody", manager_id="RM0009")
    page = text(nobody.get("/console/tasks"))
    assert "没有逾期任务" in page and "今日没有待办任务" in page and "张伟" not in page
    unbound = client_for("manager", "unbound")
    assert "张伟" not in text(unbound.get("/console/tasks"))
