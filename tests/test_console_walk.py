"""Every role signs in to the console in a real browser and walks every screen its navigation bar
offers: each page renders in Chinese (and in English after the switch), makes no request to any
other host, logs no console error and shows no untranslated key (the `browsing` fixture fails the
test otherwise). A screenshot of each page goes to test-artefacts/console/."""

from __future__ import annotations

import re

import pytest

from campaign_engine.store.upsert import upsert_rows
from factories import NOW, PRODUCTS, customer

ROLES = ("viewer", "marketer", "operator", "approver", "auditor", "admin")


def _seed(console) -> None:
    with console.engine.begin() as conn:
        upsert_rows(conn, "products", [dict(p) for p in PRODUCTS], now=NOW, source="test")
        upsert_rows(conn, "managers", [{"manager_id": "RM0001", "name": "周强", "branch": "北京分行",
                                        "mobile": "13900000001", "email": "rm1@bank.example",
                                        "daily_call_capacity": 25, "daily_visit_capacity": 4, "active": True}],
                    now=NOW, source="test")
        upsert_rows(conn, "customers", [customer("C1", manager_id="RM0001")], now=NOW, source="test")


@pytest.mark.parametrize("role", ROLES)
def test_each_role_walks_every_screen_of_its_navigation(browsing, console, role):
    _seed(console)
    name = console.user(role)
    page = browsing.page()
    browsing.login(page, name)
    links = page.locator("nav[aria-label] a")
    targets = [(links.nth(i).inner_text(), links.nth(i).get_attribute("href")) for i in range(links.count())]
    assert targets, "a signed-in user has a navigation bar"
    assert all(href.startswith("/console") for _, href in targets)
    for label, href in targets:
        response = page.goto(browsing.base + href)
        assert response.status == 200, (label, href)
        assert page.locator("h1").count() >= 1, href
        browsing.shot(page, re.sub(r"\W+", "_", href.strip("/")) or "home")
    page.goto(browsing.base + "/console/lang/en?next=" + targets[0][1])
    assert page.locator("nav[aria-label] a").first.inner_text() != targets[0][0]  # the words changed
    browsing.shot(page, "english")


def test_a_manager_sees_only_the_task_screen(browsing, console):
    _seed(console)
    name = console.user("manager", "rm-zhou", manager_id="RM0001")
    page = browsing.page(width=390, height=844)
    browsing.login(page, name)
    assert page.url.endswith("/console/tasks")
    assert [a.get_attribute("href") for a in page.locator("nav[aria-label] a").all()] == ["/console/tasks"]
    assert page.goto(browsing.base + "/console/runs").status == 403
    browsing.shot(page, "manager-forbidden")
