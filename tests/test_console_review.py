"""The console's review screens: the queue of pending drafts, a draft with its diff and audience
change, approve and reject (four eyes: never its author; the domain refuses and audits a
self-approval, the page says so). Fast test-client tests; the browser walk through editor and
review is in test_console_rules.py."""

from __future__ import annotations

import re

from campaign_engine.store import audit
from test_console_rules import SMS, editor_form, seed


def submit(client, note: str = "金卡客户感谢短信") -> int:
    """Submit the editor's rule as a draft through the console; its id."""
    client.get("/console/rules/new")
    response = client.post("/console/rules/submit", {**editor_form(), "note": note})
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    found = re.search(r"/console/reviews/(\d+)$", response.headers["Location"])
    assert found, response.headers["Location"]
    return int(found.group(1))


def status(console, draft_id: int) -> str:
    return console.services.store.draft(draft_id, texts=False)["status"]


def test_the_queue_lists_pending_drafts_and_a_reader_sees_a_draft_without_decision_controls(console, client_for):
    seed(console)
    draft_id = submit(client_for("marketer", "li-marketing"))
    viewer = client_for("viewer")
    queue = viewer.get("/console/reviews").get_data(as_text=True)
    assert f"/console/reviews/{draft_id}" in queue and "gold-thanks.yaml" in queue and "li-marketing" in queue
    listed = viewer.get("/console/rules").get_data(as_text=True)
    assert "待审批的新规则" in listed and f"/console/reviews/{draft_id}" in listed  # not live yet: below the list
    page = viewer.get(f"/console/reviews/{draft_id}").get_data(as_text=True)
    assert '<span class="add">+id: gold-thanks</span>' in page  # the diff, as + lines
    assert "批准上线" not in page and "驳回" not in page
    assert f'hx-get="/console/reviews/{draft_id}/audience?date=2026-03-10"' in page  # loaded after the page
    assert "新增受众" in viewer.get(f"/console/reviews/{draft_id}/audience").get_data(as_text=True)
    assert "不能审批" in page
    assert viewer.post(f"/console/reviews/{draft_id}/approve", {}).status_code == 403
    assert viewer.post(f"/console/reviews/{draft_id}/reject", {"reason": "no"}).status_code == 403
    assert status(console, draft_id) == "pending"


def test_the_author_sees_no_approve_button_and_their_approval_is_refused_and_audited(console, client_for):
    seed(console)
    admin = client_for("admin", "zhao-admin")  # may approve, but not their own change
    draft_id = submit(admin)
    page = admin.get(f"/console/reviews/{draft_id}").get_data(as_text=True)
    assert "批准上线" not in page and "须由其他审批人处理" in page
    refused = admin.post(f"/console/reviews/{draft_id}/approve", {}, follow_redirects=True)
    assert "已拒绝" in refused.get_data(as_text=True) and "four eyes" in refused.get_data(as_text=True)
    assert status(console, draft_id) == "pending"
    assert "gold-thanks" not in console.services.store.live_state(["gold-thanks"])
    with console.engine.connect() as conn:
        [entry] = audit.list_entries(conn, action="rules.approve_refused")
    assert entry["actor"] == "user:zhao-admin" and entry["target"] == f"draft:{draft_id}"


def test_an_approver_approves_what_they_reviewed_and_the_rule_is_live(console, client_for):
    seed(console)
    draft_id = submit(client_for("marketer", "li-marketing"))
    approver = client_for("approver", "wang-review")
    assert "批准上线" in approver.get(f"/console/reviews/{draft_id}?date=2026-03-10").get_data(as_text=True)
    delta = approver.get(f"/console/reviews/{draft_id}/audience?date=2026-03-10").get_data(as_text=True)
    assert re.search(r'<div class="value">\+1</div><div class="label">新增受众', delta)  # C1 (C2: no consent)
    assert "拦截 · 未授权营销" in delta
    done = approver.post(f"/console/reviews/{draft_id}/approve",
                         {"content_hash": console.services.store.draft(draft_id, texts=False)["content_hash"]},
                         follow_redirects=True)
    assert "已批准上线" in done.get_data(as_text=True)
    assert status(console, draft_id) == "live"
    state = console.services.store.live_state(["gold-thanks"])["gold-thanks"]
    assert (state["author"], state["approver"]) == ("user:li-marketing", "user:wang-review")
    listed = approver.get("/console/rules").get_data(as_text=True)
    assert 'href="/console/rules/gold-thanks">金卡客户感谢</a>' in listed
    again = approver.post(f"/console/reviews/{draft_id}/approve", {}, follow_redirects=True)
    assert "not pending" in again.get_data(as_text=True)  # a decided draft stays decided


def test_a_stale_review_is_refused(console, client_for):
    seed(console)
    draft_id = submit(client_for("marketer"))
    approver = client_for("approver")
    approver.get(f"/console/reviews/{draft_id}")
    refused = approver.post(f"/console/reviews/{draft_id}/approve", {"content_hash": "0" * 64}, follow_redirects=True)
    assert "review it again" in refused.get_data(as_text=True) and status(console, draft_id) == "pending"


def test_reject_needs_a_reason_and_the_author_reads_it(console, client_for):
    seed(console)
    marketer = client_for("marketer", "li-marketing")
    draft_id = submit(marketer)
    approver = client_for("approver", "wang-review")
    approver.get(f"/console/reviews/{draft_id}")
    empty = approver.post(f"/console/reviews/{draft_id}/reject", {"reason": "  "}, follow_redirects=True)
    assert "驳回须写明原因" in empty.get_data(as_text=True) and status(console, draft_id) == "pending"
    approver.post(f"/console/reviews/{draft_id}/reject", {"reason": "请补充退订说明"})
    assert status(console, draft_id) == "rejected"
    page = marketer.get(f"/console/reviews/{draft_id}").get_data(as_text=True)
    assert "已驳回" in page and "请补充退订说明" in page and "wang-review" in page
    assert SMS.split("，")[1] in page  # the diff stays readable after the decision


def test_unknown_drafts_answer_the_404_page_and_posts_need_the_csrf_token(console, client_for):
    approver = client_for("approver")
    for path in ("/console/reviews/999999", "/console/reviews/99999999999999999999999"):
        response = approver.get(path)
        assert response.status_code == 404 and "没有这个页面或记录" in response.get_data(as_text=True)
    assert approver.post("/console/reviews/999999/approve", {}).status_code == 404
    assert approver.post("/console/reviews/1/approve", {}, csrf=False).status_code == 400


def test_an_event_rules_draft_is_compared_on_an_event_payload(console, client_for):
    seed(console)
    admin = client_for("admin")
    edit = admin.get("/console/rules/rate-change-notice/edit").get_data(as_text=True)
    file = re.search(r'id="f-file" name="file" type="text" value="([^"]+)"', edit).group(1)
    source = console.services.store.rule_versions([int(console.services.store.live_state(
        ["rate-change-notice"])["rate-change-notice"]["version_id"])])[0]["source"]
    response = admin.post("/console/rules/submit", {"file": file, "source": source.replace("name: ", "name: 新", 1),
                                                    "rule_id": "rate-change-notice", "note": "改名"})
    draft_id = int(response.headers["Location"].rsplit("/", 1)[1])
    approver = client_for("approver")
    asked = approver.get(f"/console/reviews/{draft_id}/audience").get_data(as_text=True)
    assert "无法计算受众变化" in asked and "event payload" in asked
    bad = approver.get(f"/console/reviews/{draft_id}/audience?event=%7Bnope").get_data(as_text=True)
    assert "不是有效的 JSON" in bad
