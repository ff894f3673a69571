"""The console's rules screens: the list (status, version, author, next run, last run's funnel), a
rule's page (history, emergency stop, enable through approval) and the editor (live validation,
preview and explanation of the text being edited, submit as a draft).

The browser walk goes end to end: a marketer writes a new rule with a misspelt field, sees the
problem at its line as they type, fixes it, previews it for 2026-03-10, submits it; an approver
reviews the diff and the audience change and approves; the rule is live in the list."""

from __future__ import annotations

import datetime as dt
import re

from campaign_engine.pipeline import ScheduledRunRequest, start_run
from campaign_engine.store import audit, console_rules
from campaign_engine.store import runs as run_store
from campaign_engine.store.models import apscheduler_jobs
from campaign_engine.store.upsert import upsert_rows
from campaign_engine.vocabulary import RunStatus
from factories import NOW, PRODUCTS, TODAY, customer

RULE = """id: gold-thanks
name: 金卡客户感谢
category: marketing
priority: 40
trigger:
  schedule: "0 10 * * *"
  subject: customer
conditions:
  all:
    - customer.tierr: gold
channels: [sms]
template: gold-thanks
"""
FIXED = RULE.replace("customer.tierr", "customer.tier")
SMS = "{{ customer.name | salutation(customer.gender) }}，感谢您多年来选择我行金卡服务。"


def seed(console) -> None:
    """Products and four customers: two gold (one without SMS consent), one platinum, one regular
    whose birthday is today."""
    with console.engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "customers", [
            customer("C1", mobile="13800000001"),
            customer("C2", name="李娜", gender="F", mobile="13800000002", sms_consent=False, email_consent=False),
            customer("C3", tier="platinum", mobile="13800000003"),
            customer("C4", tier="regular", birth_date=dt.date(1980, 3, 10), mobile="13800000004"),
        ], now=NOW, source="test")


def editor_form(source: str = FIXED, **extra: str) -> dict[str, str]:
    return {"file": "gold-thanks.yaml", "source": source, "part:sms.txt.j2": SMS, **extra}


def text(response) -> str:
    return re.sub(r"\s+", " ", response.get_data(as_text=True))


# --------------------------------------------------------------------------- the browser walk

def test_a_marketer_writes_a_rule_and_an_approver_puts_it_live(browsing, console):
    seed(console)
    marketer = console.user("marketer", "li-marketing")
    approver = console.user("approver", "wang-review")

    page = browsing.page()
    browsing.login(page, marketer)
    page.goto(browsing.base + "/console/rules")
    page.get_by_role("link", name="新建规则").click()
    page.wait_for_load_state("networkidle")
    page.locator("#f-file").fill("gold-thanks.yaml")
    page.get_by_label("sms.txt.j2 的内容").fill(SMS)
    page.locator("#f-source").fill(RULE)  # typed with the misspelt field: checked as it is typed
    check = page.locator("#check-result")
    check.get_by_text("did you mean 'customer.tier'").wait_for()
    problem = check.locator("ol.problem-list li").first
    assert "第 10 行" in problem.inner_text()  # at its line, with the line's text
    assert "- customer.tierr: gold" in problem.locator("pre").inner_text()
    browsing.shot(page, "editor-error")

    page.locator("#f-source").fill(FIXED)
    check.get_by_text("未发现问题").wait_for()

    page.locator("#f-date").fill("2026-03-10")
    page.get_by_role("button", name="预览", exact=True).click()
    result = page.locator("#preview-result")
    result.locator(".kpi").first.wait_for()
    kpis = {k.locator(".label").inner_text(): k.locator(".value").inner_text() for k in result.locator(".kpi").all()}
    assert kpis["命中"] == "2" and kpis["将立即发送"] == "1" and kpis["被拦截"] == "1"
    assert "未授权营销" in result.inner_text()  # C2: the suppression reason, as its label
    assert "张先生，感谢您多年来选择我行金卡服务" in result.inner_text()  # a sample message, rendered
    browsing.shot(page, "preview")

    page.locator("#f-customer").fill("C3")
    page.get_by_role("button", name="解释").click()
    page.locator("#explain-result .tree").wait_for()
    assert "customer.tier eq gold (value: platinum)" in page.locator("#explain-result").inner_text()
    assert "未命中" in page.locator("#explain-result").inner_text()

    page.locator("#f-note").fill("金卡客户感谢短信（新规则）")
    page.get_by_role("button", name="提交审批").click()
    page.wait_for_load_state("networkidle")
    assert re.search(r"/console/reviews/\d+$", page.url)
    assert "待审批" in page.locator(".flash.success").inner_text()
    assert page.get_by_role("button", name="批准上线").count() == 0  # not to its author
    review_url = page.url

    second = browsing.page()
    browsing.login(second, approver)
    second.goto(browsing.base + "/console/reviews")
    second.get_by_role("link", name=re.compile(r"草稿 #\d+")).first.click()
    second.wait_for_load_state("networkidle")
    assert second.url == review_url
    assert "+    - customer.tier: gold" in second.locator("pre.diff .add").all_inner_texts()
    assert second.locator(".kpi.add .value").inner_text() == "+1"  # C1 enters the audience (C2: no consent)
    browsing.shot(second, "review")
    second.on("dialog", lambda dialog: dialog.accept())
    second.get_by_role("button", name="批准上线").click()
    second.wait_for_load_state("networkidle")
    assert "已批准上线" in second.locator(".flash.success").inner_text()

    second.goto(browsing.base + "/console/rules")
    live = second.locator("tr", has_text="gold-thanks")
    assert "已上线" in live.inner_text() and "v1" in live.inner_text()
    browsing.shot(second, "list")
    second.goto(browsing.base + "/console/lang/en?next=/console/rules/gold-thanks")
    assert second.locator("h1").inner_text().startswith("金卡客户感谢")
    assert "Version history" in second.content()
    browsing.shot(second, "detail-english")


# --------------------------------------------------------------------------- the list and a rule

def test_the_list_shows_status_version_author_next_run_and_the_last_runs_funnel(console, client_for):
    seed(console)
    start_run(console.services, ScheduledRunRequest(TODAY, ("birthday-greeting",)), now=NOW, wait=True)
    console.state.wait(30)
    tomorrow = dt.datetime(2026, 3, 11, 1, 0, tzinfo=dt.timezone.utc)  # as the scheduler stores its next fire
    with console.engine.begin() as conn:
        conn.execute(apscheduler_jobs.insert().values(id="rule:birthday-greeting",
                                                      next_run_time=tomorrow.timestamp(), job_state=b""))
    page = text(client_for("viewer").get("/console/rules"))
    row = re.search(r'<tr> <th scope="row" class="rule-name"> <a href="/console/rules/birthday-greeting">.*?</tr>', page)
    assert row, page[:2000]
    cells = re.findall(r'<td class="num">([^<]*)', row.group(0))
    assert cells[:4] == ["v1", "1", "1", "1"]  # version; candidates, matched, queued (C4's birthday)
    assert "2026-03-11 09:00" in row.group(0)  # the next run, on the bank's clock
    assert "fixture" in row.group(0)  # the author (publish_rules' cli:fixture)
    assert "已上线" in row.group(0) and "0 9 * * *" in row.group(0)
    assert "新建规则" not in page  # a viewer writes no rule


def test_last_run_stats_reads_each_rules_latest_real_run(console):
    with console.engine.begin() as conn:
        ids = []
        for dry, n in ((False, 5), (False, 7), (True, 99)):
            run_id = run_store.insert_run(conn, kind="scheduled", run_date=TODAY, dry_run=dry, now=NOW,
                                          rule_ids=["a"])
            run_store.record_totals(conn, run_id, status=RunStatus.COMPLETED, error=None, now=NOW, stats=[
                {"rule_id": "a", "candidates": n, "matched": 2, "queued": 1, "scheduled": 0, "held_out": 0,
                 "duplicates": 0, "failed": 0, "suppressed": {"no_consent": 1}, "error": None, "seconds": 0.1}])
            ids.append(run_id)
        found = console_rules.last_run_stats(conn, ["a", "b"])
    assert set(found) == {"a"}
    assert (found["a"]["run_id"], found["a"]["candidates"], found["a"]["suppressed_total"]) == (ids[1], 7, 1)


def test_a_viewer_sees_no_edit_controls_and_is_refused_every_change(console, client_for):
    viewer = client_for("viewer")
    page = viewer.get("/console/rules/birthday-greeting").get_data(as_text=True)
    assert "版本历史" in page and "v1" in page
    assert "/edit" not in page and "立即停用" not in page
    assert viewer.get("/console/rules/new").status_code == 403
    assert viewer.get("/console/rules/birthday-greeting/edit").status_code == 403
    for path in ("/console/rules/check", "/console/rules/preview", "/console/rules/explain", "/console/rules/submit",
                 "/console/rules/birthday-greeting/disable", "/console/rules/birthday-greeting/enable"):
        assert viewer.post(path, {**editor_form(), "note": "x", "reason": "x"}).status_code == 403, path
    assert console.services.store.drafts(status="pending") == []
    assert console.services.store.live_state(["birthday-greeting"])["birthday-greeting"]["enabled"]


def test_unknown_rules_answer_the_404_page(console, client_for):
    marketer = client_for("marketer")
    for path in ("/console/rules/no-such-rule", "/console/rules/no-such-rule/edit"):
        response = marketer.get(path)
        assert response.status_code == 404 and "没有这个页面或记录" in response.get_data(as_text=True)
    assert marketer.post("/console/rules/no-such-rule/disable", {"reason": "x"}).status_code == 404


def test_the_emergency_stop_needs_a_reason_is_audited_and_enabling_goes_through_approval(console, client_for):
    marketer = client_for("marketer", "li-marketing")
    refused = marketer.post("/console/rules/birthday-greeting/disable", {"reason": " "}, follow_redirects=True)
    assert "未能停用" in refused.get_data(as_text=True)
    assert marketer.post("/console/rules/birthday-greeting/disable", {}, csrf=False).status_code == 400  # no token
    stopped = marketer.post("/console/rules/birthday-greeting/disable", {"reason": "模板有错别字"},
                            follow_redirects=True)
    page = stopped.get_data(as_text=True)
    assert "已停用" in page and "申请重新启用" in page
    with console.engine.connect() as conn:
        [entry] = audit.list_entries(conn, action="rules.disable")
    assert entry["actor"] == "user:li-marketing" and entry["details"]["reason"] == "模板有错别字"
    listed = text(marketer.get("/console/rules"))
    assert re.search(r'birthday-greeting">生日祝福</a>.*?已停用', listed)

    asked = marketer.post("/console/rules/birthday-greeting/enable", {"note": "已修正"}, follow_redirects=True)
    assert re.search(r"/console/reviews/\d+", asked.request.path) and "待审批" in asked.get_data(as_text=True)
    draft_id = int(asked.request.path.rsplit("/", 1)[1])
    listed = text(marketer.get("/console/rules"))
    assert re.search(rf'birthday-greeting">生日祝福</a>.*?已停用.*?/console/reviews/{draft_id}">草稿 #{draft_id} 待审批', listed)
    approver = client_for("approver")
    approver.get(f"/console/reviews/{draft_id}")
    approver.post(f"/console/reviews/{draft_id}/approve", {})
    assert console.services.store.live_state(["birthday-greeting"])["birthday-greeting"]["enabled"]


def test_the_editor_opens_a_live_rule_with_its_file_and_templates(console, client_for):
    page = client_for("marketer").get("/console/rules/birthday-greeting/edit").get_data(as_text=True)
    assert 'value="birthday.yaml"' in page and "id: birthday-greeting" in page
    assert "值此生日之际，我行谨祝您生日快乐" in page  # its sms.txt.j2, in its text area
    assert 'name="part:email.html.j2"' in page and "customer.days_to_birthday" in page  # the catalogue
    assert "FUND-EQ01" not in page  # no products loaded: none listed


def test_live_validation_shows_each_problem_with_its_line_and_a_bad_file_name(console, client_for):
    marketer = client_for("marketer")
    bad = text(marketer.post("/console/rules/check", editor_form(RULE)))
    assert "发现 1 个问题" in bad and "did you mean &#39;customer.tier&#39;" in bad
    assert '<span class="lineno">10</span> - customer.tierr: gold' in bad
    named = text(marketer.post("/console/rules/check", editor_form(file="../escape.yaml")))
    assert "a rule file name is a relative path" in named


def test_preview_and_explain_run_the_text_in_the_editor_not_the_live_version(console, client_for):
    seed(console)
    marketer = client_for("marketer")
    changed = marketer.get("/console/rules/birthday-greeting/edit")  # the form, as the page has it
    assert changed.status_code == 200
    source = console.services.store.rule_versions(
        [int(console.services.store.live_state(["birthday-greeting"])["birthday-greeting"]["version_id"])])[0]["source"]
    wider = source.replace("    - customer.days_to_birthday: 0\n", "")  # every solar-birthday customer
    form = {"file": "birthday.yaml", "source": wider, "rule_id": "birthday-greeting", "date": "2026-03-10"}
    counts = text(marketer.post("/console/rules/preview", form))
    assert re.search(r'<div class="value">4</div><div class="label">命中', counts)  # live: 1 (C4's birthday)
    explained = text(marketer.post("/console/rules/explain", {**form, "customer_id": "C1"}))
    assert "命中" in explained and "days_to_birthday" not in explained
    missing = text(marketer.post("/console/rules/explain", {**form, "customer_id": "C404"}))
    assert "没有客户 C404" in missing
    broken = text(marketer.post("/console/rules/preview", {**form, "source": RULE, "file": "gold-thanks.yaml"}))
    assert "请先修正规则中的问题" in broken and "customer.tierr" in broken
    not_json = text(marketer.post("/console/rules/preview", {**form, "event": "{nope"}))
    assert "不是有效的 JSON" in not_json


def test_submit_needs_a_note_and_an_invalid_rule_stays_a_draft_with_its_problems(console, client_for):
    marketer = client_for("marketer")
    no_note = marketer.post("/console/rules/submit", editor_form())
    assert no_note.status_code == 422 and "say what the change does" in no_note.get_data(as_text=True)
    assert console.services.store.drafts() == [d for d in console.services.store.drafts() if d["file"] != "gold-thanks.yaml"]
    invalid = marketer.post("/console/rules/submit", {**editor_form(RULE), "note": "试试"})
    page = invalid.get_data(as_text=True)
    assert invalid.status_code == 422 and "有错误，未上线" in page and "customer.tierr" in page
    assert SMS.replace("|", "|") in page.replace("&#39;", "'")  # the texts are kept for fixing
    [draft] = [d for d in console.services.store.drafts() if d["file"] == "gold-thanks.yaml"]
    assert draft["status"] == "invalid" and draft["author"] == "user:marketer-user"
