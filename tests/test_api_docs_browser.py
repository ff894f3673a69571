"""The API docs page (/api/v1/docs, Swagger UI vendored in the package) in a real browser: it renders
the operations, opens one, asks no other host for anything and logs no console error (the `browsing`
fixture fails the test on either)."""

from __future__ import annotations

import re


def test_api_docs_render_offline_in_a_browser_with_no_console_error(browsing):
    page = browsing.page()
    page.goto(browsing.base + "/api/v1/docs")
    page.locator(".opblock").first.wait_for()
    assert page.locator(".opblock").count() > 40  # every operation of the API
    for path in ("/api/v1/runs", "/api/v1/tasks/{task_id}/outcome", "/api/v1/customers"):
        assert page.locator(".opblock-summary-path", has_text=re.compile("^" + re.escape(path) + "$")).first.is_visible()
    assert page.get_by_role("heading", name=re.compile("campaign-engine")).is_visible()
    browsing.shot(page, "docs")

    outcome = page.locator(".opblock-post", has=page.locator(".opblock-summary-path",
                                                             has_text=re.compile(r"^/api/v1/tasks/\{task_id\}/outcome$")))
    outcome.locator(".opblock-summary").click()
    outcome.locator(".opblock-body").wait_for()
    assert outcome.get_by_text("the task is not open (any more)").is_visible()  # its 409 response
    assert outcome.locator(".body-param__example, .microlight").first.is_visible()  # the example body
    assert page.url.endswith("#/tasks/post_api_v1_tasks__task_id__outcome")  # a link to this operation
    outcome.scroll_into_view_if_needed()
    page.wait_for_load_state("networkidle")
    browsing.shot(page, "docs-operation", full_page=False)
