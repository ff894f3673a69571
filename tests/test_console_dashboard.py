"""The dashboard: today's and tomorrow's scheduled rules with the last run's matched count as the
estimate, the last runs, 14 days of messages by status and opt-outs by channel (charts), and the
failed messages needing attention; every part says so in words when it is empty. And the
aggregate queries behind it (store/console_stats.py)."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update

from campaign_engine.store import audit, console_stats, fires
from campaign_engine.store.models import Message
from factories import NOW
from test_console_runs import seed_bank, start_run

DAY = dt.timedelta(days=1)


def _text(response) -> str:
    return response.get_data(as_text=True)


def _day_totals(page: str, chart: int) -> list[int]:
    """The stacked bars' totals (data-total per day) of the page's n-th chart."""
    svgs = re.findall(r'<svg class="chart".*?</svg>', page, re.S)
    return [int(n) for n in re.findall(r'data-total="(\d+)"', svgs[chart])]


def test_empty_dashboard_says_so_in_words_and_lists_todays_rules(console, client_for):
    viewer = client_for("viewer")
    response = viewer.get("/console/")
    page = _text(response)
    assert response.status_code == 200
    assert "今明两天的定时规则" in page and "birthday-greeting" in page and "今天 09:00" in page and "明天 09:00" in page
    assert "尚无运行记录" in page  # no estimate before any run, said so
    assert "预计人数（上次运行）" in page  # what the number is
    assert "近 14 天没有生成任何消息" in page and "近 14 天没有客户退订" in page
    assert "还没有任何运行记录" in page and "目前没有发送失败的消息" in page
    assert "<svg" not in page  # no empty chart


def test_manager_lands_on_their_work_list_not_the_dashboard(console, client_for):
    manager = client_for("manager", manager_id="RM0001")
    response = manager.client.get("/console/")
    assert response.status_code == 302 and not response.headers["Location"].endswith("/console/")


def test_dashboard_charts_messages_and_opt_outs_and_shows_failures(console, client_for):
    seed_bank(console)
    operator = client_for("operator")
    run_id = start_run(console, operator)
    with console.engine.begin() as conn:
        ids = list(conn.execute(select(Message.id).where(Message.run_id == run_id).order_by(Message.id)).scalars())
        assert len(ids) >= 2
        conn.execute(update(Message).where(Message.id == ids[0])
                     .values(status="failed", error="网关拒绝", created_at=NOW - 3 * DAY))
        audit.record(conn, actor="key:webhook", action="consent.withdraw", target="C1:sms", now=NOW - DAY, details={})
        audit.record(conn, actor="key:webhook", action="consent.withdraw", target="C2:email", now=NOW, details={})
        audit.record(conn, actor="key:webhook", action="consent.withdraw", target="C3:sms", now=NOW, details={})
        audit.record(conn, actor="key:x", action="consent.grant", target="C3:sms", now=NOW, details={})
    page = _text(operator.get("/console/"))
    messages = _day_totals(page, 0)
    assert len(messages) == 14
    assert messages[-1] == len(ids) - 1 and messages[-4] == 1 and sum(messages) == len(ids)
    assert _day_totals(page, 1)[-2:] == [1, 2] and sum(_day_totals(page, 1)) == 3
    assert "已拦截" not in re.findall(r'<ul class="legend">.*?</ul>', page, re.S)[0]  # only statuses present
    assert "网关拒绝" in page and f'href="/console/runs/{run_id}#failed"' in page
    assert f"上次运行 #{run_id}" in page  # the estimate names the run it comes from
    assert f'href="/console/runs/{run_id}"' in page  # the last runs


def test_console_stats_buckets_by_local_day_and_reads_only_the_window(console):
    engine = console.engine
    bounds = [NOW - 2 * DAY, NOW - DAY, NOW, NOW + DAY]
    with engine.begin() as conn:
        audit.record(conn, actor="a", action="consent.withdraw", target="C1:sms", now=NOW - 3 * DAY)  # before
        audit.record(conn, actor="a", action="consent.withdraw", target="C1:phone", now=NOW - 2 * DAY)
        audit.record(conn, actor="a", action="consent.withdraw", target="C2:email", now=NOW + dt.timedelta(hours=2))
        audit.record(conn, actor="a", action="consent.withdraw", target="C2:email", now=NOW + 2 * DAY)  # after
    with engine.connect() as conn:
        assert console_stats.opt_outs_per_day(conn, bounds, ["sms", "email", "phone"]) == {
            "sms": [0, 0, 0], "email": [0, 0, 1], "phone": [1, 0, 0]}
        assert console_stats.opt_outs_per_day(conn, [NOW + 3 * DAY, NOW + 4 * DAY], ["sms"]) == {"sms": [0]}
        assert console_stats.messages_by_status_per_day(conn, bounds)["queued"] == [0, 0, 0]
        assert console_stats.last_matched(conn, []) == {} and console_stats.run_totals(conn, []) == {}
        assert console_stats.failed_messages_count(conn, NOW - DAY) == 0


def test_console_stats_last_matched_run_totals_and_fires(console, client_for):
    seed_bank(console)
    run_id = start_run(console, client_for("operator"))
    with console.engine.begin() as conn:
        fire = fires.claim_fire(conn, rule_id="birthday-greeting", run_date=dt.date(2026, 3, 11), owner="t", now=NOW)
        assert fire is not None
    with console.engine.connect() as conn:
        last = console_stats.last_matched(conn, ["birthday-greeting", "no-such-rule"])
        assert last == {"birthday-greeting": {"run_id": run_id, "date": dt.date(2026, 3, 10), "candidates": 1,
                                              "matched": 1}}
        totals = console_stats.run_totals(conn, [run_id])[run_id]
        assert totals["matched"] >= 2 and totals["queued"] + totals["scheduled"] >= 2 and totals["failed"] == 0
        by_status = console_stats.messages_by_status_per_day(conn, [NOW - DAY, NOW, NOW + DAY])
        assert sum(n for days in by_status.values() for n in days[1:]) == totals["queued"] + totals["scheduled"]
        assert console_stats.fires_on(conn, ["birthday-greeting"], [dt.date(2026, 3, 10), dt.date(2026, 3, 11)]) == {
            ("birthday-greeting", dt.date(2026, 3, 11)): None}
