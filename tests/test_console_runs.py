"""The runs screen: the list, starting a run (operators), a run's funnel and per-rule counts, shard
progress polling, failed messages and their retry (operators, audited); viewers see no controls
and are refused a direct POST; unknown runs answer the console's 404 page. A browser walk: an
operator starts a run for 2026-03-10 on seeded data and reads its page, then the dashboard."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from sqlalchemy import select, update

from campaign_engine.store import audit
from campaign_engine.store.models import AuditEntry, Message
from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, customer, deposit


def seed_bank(console) -> None:
    """As tests/test_api.py's Api.seed_bank: customers and deposits the starter pack reacts to on TODAY
    (C1's birthday, C1's deposit maturing in 5 days; C2 platinum, C3 regular in 上海)."""
    rows = {
        "products": PRODUCTS,
        "customers": [customer("C1", birth_date=dt.date(1980, 3, 10), mobile="13800000001", rate_sensitive=True),
                      customer("C2", name="李娜", gender="F", tier="platinum", risk_level="C2", aum=Decimal("900000"),
                               mobile="13800000002", rate_sensitive=True),
                      customer("C3", name="王芳", gender="F", tier="regular", risk_level="C4", city="上海",
                               aum=Decimal("10000"), mobile="13800000003", manager_id="RM0002")],
        "deposits": [deposit("D1", "C1"), deposit("D2", "C2", maturity_date=dt.date(2026, 9, 1), auto_renew=True)],
    }
    with console.engine.begin() as conn:
        for kind, items in rows.items():
            upsert_rows(conn, kind, [dict(r) for r in items], now=NOW, source="test")


def start_run(console, client) -> int:
    """An operator starts the scheduled rules for 2026-03-10; the run's id, once it has finished."""
    response = client.post("/console/runs", {"date": "2026-03-10"})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    found = re.search(r"/console/runs/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    console.state.wait(30)
    return int(found.group(1))


def _messages(console, run_id: int) -> list:
    with console.engine.connect() as conn:
        return list(conn.execute(select(Message.id, Message.status, Message.rule_id, Message.error)
                                 .where(Message.run_id == run_id).order_by(Message.id)))


def _audit(console, action: str) -> list:
    with console.engine.connect() as conn:
        return list(conn.execute(select(AuditEntry.actor, AuditEntry.target, AuditEntry.details)
                                 .where(AuditEntry.action == action).order_by(AuditEntry.id)))


def _text(response) -> str:
    return response.get_data(as_text=True)


def test_operator_starts_a_run_and_reads_its_funnel_and_per_rule_counts(console, client_for):
    seed_bank(console)
    operator = client_for("operator")
    page = _text(operator.get("/console/runs"))
    assert "立即执行定时规则" in page and 'name="date"' in page and 'value="2026-03-10"' in page
    assert "还没有任何运行记录" in page  # the empty state in words
    run_id = start_run(console, operator)
    assert _audit(console, "run") == [("user:operator-user", f"run:{run_id}",
                                        {"date": "2026-03-10", "rules": _audit(console, "run")[0][2]["rules"]})]
    messages = _messages(console, run_id)
    assert messages, "the starter pack reacts to the seeded bank"
    page = _text(operator.get(f"/console/runs/{run_id}"))
    assert f"运行 #{run_id}" in page and "已完成" in page
    assert '<svg class="chart funnel"' in page and "候选客户" in page and "命中条件" in page
    rules = {m.rule_id for m in messages}
    for rule in rules:  # each rule that wrote a message has its row in the per-rule table
        assert f"<code>{rule}</code>" in page
    assert "这次运行没有发送失败的消息" in page
    assert "hx-trigger" not in page  # finished: no polling
    listing = _text(operator.get("/console/runs"))
    assert f'href="/console/runs/{run_id}"' in listing and "定时" in listing


def test_viewer_sees_no_controls_and_a_direct_post_is_refused(console, client_for):
    seed_bank(console)
    run_id = start_run(console, client_for("operator"))
    with console.engine.begin() as conn:
        first = conn.execute(select(Message.id).where(Message.run_id == run_id).order_by(Message.id)).scalar()
        conn.execute(update(Message).where(Message.id == first).values(status="failed", error="provider refused"))
    viewer = client_for("viewer")
    listing = _text(viewer.get("/console/runs"))
    assert "立即执行定时规则" not in listing and 'action="/console/runs"' not in listing.replace('method="get" action="/console/runs"', "")
    page = _text(viewer.get(f"/console/runs/{run_id}"))
    assert "provider refused" in page  # the failure and its reason are there to read
    assert "/retry" not in page and "重试" not in page
    assert viewer.post("/console/runs", {"date": "2026-03-10"}).status_code == 403
    assert viewer.post(f"/console/runs/{run_id}/retry", {"message_id": str(first)}).status_code == 403
    assert _audit(console, "messages.retry") == []
    assert [m.status for m in _messages(console, run_id) if m.id == first] == ["failed"]


def test_operator_retry_requeues_a_failed_message_and_is_audited(console, client_for):
    seed_bank(console)
    operator = client_for("operator")
    run_id = start_run(console, operator)
    with console.engine.begin() as conn:
        first = conn.execute(select(Message.id).where(Message.run_id == run_id, Message.status.in_(
            ("queued", "scheduled"))).order_by(Message.id)).scalar()
        conn.execute(update(Message).where(Message.id == first).values(status="failed", error="gateway down"))
    page = _text(operator.get(f"/console/runs/{run_id}"))
    assert "gateway down" in page and "重试本次运行的全部失败消息" in page and f'value="{first}"' in page
    response = operator.post(f"/console/runs/{run_id}/retry", {"message_id": str(first)})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/console/runs/{run_id}#failed")
    status = [m.status for m in _messages(console, run_id) if m.id == first]
    assert status[0] in ("queued", "scheduled")
    entries = _audit(console, "messages.retry")
    assert len(entries) == 1 and entries[0].actor == "user:operator-user"
    assert entries[0].details["message_ids"] == [first] and entries[0].details["retried"] == 1
    page = _text(operator.get(f"/console/runs/{run_id}"))
    assert "已重新排队 1 条消息" in page and "gateway down" not in page


def test_retry_without_the_csrf_token_is_refused(console, client_for):
    seed_bank(console)
    operator = client_for("operator")
    run_id = start_run(console, operator)
    assert operator.post(f"/console/runs/{run_id}/retry", {}, csrf=False).status_code == 400
    assert operator.post("/console/runs", {"date": "2026-03-10"}, csrf=False).status_code == 400


def test_unknown_run_answers_the_404_page_and_bad_input_is_said_in_words(console, client_for):
    operator = client_for("operator")
    for path in ("/console/runs/999999", "/console/runs/999999/progress", f"/console/runs/{2**64}"):
        response = operator.get(path)
        assert response.status_code == 404 and "没有这个页面或记录" in _text(response)
    assert operator.post("/console/runs/999999/retry", {}).status_code == 404
    response = operator.post("/console/runs", {"date": "10/03/2026"})
    assert response.status_code == 302
    assert "日期“10/03/2026”无效" in _text(operator.get(response.headers["Location"]))
    response = operator.post("/console/runs", {"date": "2026-03-10", "rules": "no-such-rule"})
    page = _text(operator.get(response.headers["Location"]))
    assert "无法开始运行" in page and "no-such-rule" in page
    assert operator.get("/console/runs?after=abc").status_code == 400
    assert operator.get("/console/runs?kind=nonsense").status_code == 400
    assert "没有符合条件的运行" in _text(operator.get("/console/runs?status=failed"))


def test_progress_partial_polls_while_running_and_refreshes_when_finished(console, client_for):
    from campaign_engine.store import runs as run_store

    viewer = client_for("viewer")
    with console.engine.begin() as conn:  # a run still running: its shards half done
        run_id = run_store.insert_run(conn, kind="scheduled", run_date=dt.date(2026, 3, 10), dry_run=False,
                                      now=NOW, rule_ids=["birthday-greeting"])
        run_store.add_shards(conn, run_id, [(None, "C5"), ("C5", None)])
        run_store.finish_shard(conn, run_id, 0, status=run_store.ShardStatus.COMPLETED, stats=[], error=None, now=NOW)
    page = _text(viewer.get(f"/console/runs/{run_id}"))
    assert f'hx-get="/console/runs/{run_id}/progress"' in page and 'hx-trigger="every 2s"' in page
    assert "分片进度：1 / 2" in page and "运行进行中，结束后显示统计" in page
    partial = viewer.get(f"/console/runs/{run_id}/progress", headers={"HX-Request": "true"})
    assert 'hx-trigger="every 2s"' in _text(partial) and "HX-Refresh" not in partial.headers
    with console.engine.begin() as conn:
        run_store.finish_shard(conn, run_id, 1, status=run_store.ShardStatus.COMPLETED, stats=[], error=None, now=NOW)
        run_store.record_totals(conn, run_id, status=run_store.RunStatus.COMPLETED, stats=[], error=None, now=NOW)
    partial = viewer.get(f"/console/runs/{run_id}/progress", headers={"HX-Request": "true"})
    assert partial.headers.get("HX-Refresh") == "true" and "hx-trigger" not in _text(partial)
    assert "这次运行没有执行任何规则" in _text(viewer.get(f"/console/runs/{run_id}"))


def test_runs_list_pages_by_id(console, client_for):
    from campaign_engine.console.views import runs as runs_view
    from campaign_engine.store import runs as run_store

    with console.engine.begin() as conn:
        ids = [run_store.insert_run(conn, kind="scheduled", run_date=dt.date(2026, 3, 10), dry_run=False, now=NOW)
               for _ in range(runs_view.PAGE + 2)]
    viewer = client_for("viewer")
    first = _text(viewer.get("/console/runs"))
    assert f'href="/console/runs/{ids[-1]}"' in first and f'href="/console/runs/{ids[0]}"' not in first
    found = re.search(r'href="(/console/runs\?after=\d+)" rel="next"', first.replace("&amp;", "&"))
    assert found
    second = _text(viewer.get(found.group(1)))
    assert f'href="/console/runs/{ids[0]}"' in second and f'href="/console/runs/{ids[-1]}"' not in second
    assert 'rel="next"' not in second


def test_browser_walk_operator_runs_then_reads_the_run_and_the_dashboard(console, browsing):
    seed_bank(console)
    with console.engine.begin() as conn:  # two more birthdays today the contact policy stops
        upsert_rows(conn, "customers", [customer("C4", name="陈静", gender="F", birth_date=dt.date(1990, 3, 10),
                                                 mobile="13800000004", sms_consent=False, email_consent=False),
                                        customer("C5", name="刘洋", birth_date=dt.date(1975, 3, 10),
                                                 mobile="13800000005", do_not_contact=True)], now=NOW, source="test")
    name = console.user("operator", "zhao.ops")
    page = browsing.page()
    browsing.login(page, name)
    page.goto(browsing.base + "/console/runs")
    page.get_by_label(re.compile("业务日期")).fill("2026-03-10")
    browsing.shot(page, "runs-list-empty")
    page.get_by_role("button", name="开始运行").click()
    page.wait_for_url(re.compile(r"/console/runs/\d+$"))
    console.state.wait(30)
    with console.engine.begin() as conn:  # a delivery that failed for good
        first = conn.execute(select(Message.id).where(Message.status == "queued").order_by(Message.id)).scalar()
        conn.execute(update(Message).where(Message.id == first).values(status="failed",
                                                                       error="短信网关拒绝：号码停机"))
    page.reload()
    page.wait_for_load_state("networkidle")
    assert page.locator("svg.chart.funnel").is_visible()
    assert page.get_by_text("短信网关拒绝：号码停机").is_visible()
    assert page.get_by_role("heading", name="各规则统计").is_visible()
    assert page.locator("table.per-rule tbody tr").count() >= 1
    browsing.shot(page, "run")
    page.get_by_role("button", name=f"重试消息 #{first}").click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_text("已重新排队 1 条消息").is_visible()
    assert page.get_by_text("这次运行没有发送失败的消息").is_visible()
    page.get_by_role("link", name="← 运行记录").click()
    assert page.locator("table.runs tbody tr").count() == 1
    browsing.shot(page, "runs-list")
    with console.engine.begin() as conn:  # another failure, and customers who opted out this week
        second = conn.execute(select(Message.id).where(Message.status == "queued").order_by(Message.id.desc())).scalar()
        conn.execute(update(Message).where(Message.id == second).values(status="failed", error="运营商退回：号码不存在"))
        for days, target in ((0, "C2:sms"), (1, "C3:sms"), (1, "C3:email"), (4, "C2:phone")):
            audit.record(conn, actor="key:webhook", action="consent.withdraw", target=target,
                         now=NOW - dt.timedelta(days=days), details={})
    page.get_by_role("link", name="总览").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("svg.chart").first.is_visible()
    assert page.locator("table.runs tbody tr").count() == 1
    assert page.get_by_text("运营商退回：号码不存在").is_visible()
    assert page.locator("svg.chart").count() == 2
    browsing.shot(page, "dashboard")
    page.goto(browsing.base + "/console/lang/en?next=/console/")
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Scheduled rules today and tomorrow").is_visible()
    browsing.shot(page, "dashboard-en")
    page.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    page.wait_for_load_state("networkidle")
    assert page.get_by_role("heading", name="Funnel").is_visible()
    browsing.shot(page, "run-en")
