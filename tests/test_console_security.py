"""The console's sign-in and its habits: CSRF on every form, roles on every path, sessions that a
login renews and that logout, a disabled account or a new password end, login attempts limited,
contact data and errors never leaked, and the CLI that manages users."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from campaign_engine.cli import main
from campaign_engine.store.models import AuditEntry, ConsoleSession, User
from console_harness import PASSWORD, ConsoleClient

PAGES_FOR_READERS = ("/console/", "/console/rules", "/console/runs", "/console/messages", "/console/customers",
                     "/console/effect", "/console/calendar", "/console/tasks")


def _audit(console, action: str) -> list[tuple[str, str | None]]:
    with console.engine.connect() as conn:
        return [(r.actor, r.target) for r in conn.execute(
            select(AuditEntry.actor, AuditEntry.target).where(AuditEntry.action == action).order_by(AuditEntry.id))]


def _post_routes(app) -> list[str]:
    """Every console URL that takes a POST, with placeholder values for its parameters."""
    from werkzeug.routing import AnyConverter, IntegerConverter

    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith("console.") and "POST" in (rule.methods or ()):
                values = {name: 1 if isinstance(conv, IntegerConverter) else
                          sorted(conv.items)[0] if isinstance(conv, AnyConverter) else "x"
                          for name, conv in rule._converters.items()}
                urls.append(rule.build(values, append_unknown=False)[1])
    return urls


def test_login_page_signs_in_with_username_and_password_and_audits(console):
    name = console.user("marketer", "wang.li")
    client = ConsoleClient(console.app)
    page = client.get("/console/login").get_data(as_text=True)
    assert 'name="username"' in page and 'name="password"' in page and 'name="csrf_token"' in page
    assert '<label for="username">' in page and '<label for="password">' in page
    wrong = client.post("/console/login", {"username": name, "password": "not it at all"})
    assert wrong.status_code == 401 and "用户名或密码不正确" in wrong.get_data(as_text=True)
    ok = client.post("/console/login", {"username": name, "password": PASSWORD})
    assert ok.status_code == 302 and ok.headers["Location"] == "/console/"
    dashboard = client.get("/console/")
    assert dashboard.status_code == 200 and "wang.li" in dashboard.get_data(as_text=True)
    assert _audit(console, "console.login") == [("user:wang.li", None)]


def test_a_page_asks_for_sign_in_and_returns_to_it_but_never_to_another_host(console):
    name = console.user("viewer")
    client = ConsoleClient(console.app)
    answer = client.get("/console/runs?page=2")
    assert answer.status_code == 302 and answer.headers["Location"].startswith("/console/login?next=")
    client.get(answer.headers["Location"])
    back = client.post("/console/login", {"username": name, "password": PASSWORD, "next": "/console/runs?page=2"})
    assert back.headers["Location"] == "/console/runs?page=2"
    for hostile in ("//evil.example/console", "https://evil.example/", "/api/v1/customers", "javascript:alert(1)"):
        other = ConsoleClient(console.app)
        other.get("/console/login")
        answer = other.post("/console/login", {"username": name, "password": PASSWORD, "next": hostile})
        assert answer.headers["Location"] == "/console/", hostile


def test_session_is_renewed_at_login_so_a_planted_cookie_gains_nothing(console):
    name = console.user("admin")
    client = ConsoleClient(console.app)
    client.get("/console/login")
    before = client.client.get_cookie("campaign_console").value
    client.post("/console/login", {"username": name, "password": PASSWORD})
    after = client.client.get_cookie("campaign_console").value
    assert before != after
    planted = console.app.test_client()  # the attacker kept the pre-login cookie
    planted.set_cookie("campaign_console", before)
    assert planted.get("/console/").status_code == 302  # still signed out
    assert client.get("/console/").status_code == 200
    # the CSRF token of the pre-login page is not valid after login either
    assert client.client.post("/console/logout", data={"csrf_token": "stale"}).status_code == 400


def test_logout_ends_the_session_on_the_server_not_only_in_the_browser(console):
    name = console.user("admin")
    client = ConsoleClient(console.app)
    client.login(name)
    cookie = client.client.get_cookie("campaign_console").value
    client.post("/console/logout")
    replay = console.app.test_client()
    replay.set_cookie("campaign_console", cookie)
    assert replay.get("/console/").status_code == 302
    with console.engine.connect() as conn:
        assert all(r.revoked_at is not None for r in conn.execute(select(ConsoleSession.revoked_at)))


def test_disabling_a_user_or_changing_the_password_ends_their_open_sessions(console, settings):
    for name in ("leaver", "rotated"):
        console.user("marketer", name)
    leaver, rotated = ConsoleClient(console.app), ConsoleClient(console.app)
    leaver.login("leaver")
    rotated.login("rotated")
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url}
    runner = CliRunner()
    result = runner.invoke(main, ["user", "disable", "leaver"], env=env)
    assert result.exit_code == 0, result.output
    assert leaver.get("/console/").status_code == 302
    result = runner.invoke(main, ["user", "password", "rotated", "--password-stdin"], env=env,
                           input="a brand new secret\n")
    assert result.exit_code == 0, result.output
    assert rotated.get("/console/").status_code == 302
    again = ConsoleClient(console.app)
    again.get("/console/login")
    assert again.post("/console/login", {"username": "leaver", "password": PASSWORD}).status_code == 401
    again.login("rotated", "a brand new secret")


def test_login_attempts_are_limited_per_name_even_with_the_right_password_then(console):
    name = console.user("admin")
    client = ConsoleClient(console.app)
    client.get("/console/login")
    for _ in range(5):
        assert client.post("/console/login", {"username": name, "password": "guess guess"}).status_code == 401
    blocked = client.post("/console/login", {"username": name, "password": PASSWORD})
    assert blocked.status_code == 429 and "15 分钟" in blocked.get_data(as_text=True)
    assert _audit(console, "console.login_blocked") == [(f"user:{name}", None)]
    other = console.user("viewer")  # another name from the same place is not blocked yet
    ConsoleClient(console.app).login(other)


def test_cookies_are_httponly_samesite_and_secure_over_https(console):
    name = console.user("admin")
    plain = ConsoleClient(console.app)
    plain.get("/console/login")
    answer = plain.post("/console/login", {"username": name, "password": PASSWORD})
    header = answer.headers["Set-Cookie"]
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    secure = console.app.test_client()
    page = secure.get("/console/login", base_url="https://bank.example").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    answer = secure.post("/console/login", base_url="https://bank.example",
                         data={"username": name, "password": PASSWORD, "csrf_token": token},
                         headers={"Referer": "https://bank.example/console/login"})
    assert answer.status_code == 302 and "Secure" in answer.headers["Set-Cookie"]


def test_every_console_form_post_without_its_csrf_token_is_refused(console, client_for):
    client = client_for("admin")
    routes = _post_routes(console.app)
    assert len(routes) >= 3  # login, logout and the screens' actions
    for url in routes:
        answer = client.post(url, {"note": "x", "reason": "x"}, csrf=False)
        assert answer.status_code == 400, url
        assert "安全令牌" in answer.get_data(as_text=True), url
    assert client.get("/console/").status_code == 200  # still signed in: nothing happened


def test_a_viewer_sees_no_edit_controls_and_a_direct_post_is_refused(console, client_for):
    viewer = client_for("viewer")
    for path in PAGES_FOR_READERS:
        page = viewer.get(path)
        if page.status_code == 404:  # a screen not installed in this build
            continue
        assert page.status_code == 200, path
        forms = re.findall(r'<form[^>]*method="post"[^>]*action="([^"]+)"', page.get_data(as_text=True))
        assert [f for f in forms if f != "/console/logout"] == [], path
    for url in _post_routes(console.app):
        if url in ("/console/login", "/console/logout") or url.endswith(("/check", "/preview", "/explain")):
            continue  # signing in and out; validating or previewing text changes nothing
        answer = viewer.post(url, {"note": "x", "reason": "x"})
        assert answer.status_code in (403, 404), url  # 404: a task or record the viewer may not see at all
        assert "Traceback" not in answer.get_data(as_text=True)


def test_pages_say_what_the_browser_may_load_and_refuse_framing(console, client_for):
    page = client_for("viewer").get("/console/")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    api = console.app.test_client().get("/api/v1/health")
    assert "X-Frame-Options" not in api.headers  # the API's answers are its own


def test_errors_are_console_pages_and_hostile_input_never_a_500(console, client_for):
    client = client_for("marketer")
    for path in ("/console/no-such-screen", "/console/runs/999999999", "/console/customers/%00",
                 "/console/messages?date_from=not-a-date&limit=99999999999999999999",
                 "/console/rules/" + "x" * 5000, "/console/runs?cursor=%27%3B%20DROP%20TABLE"):
        answer = client.get(path)
        text = answer.get_data(as_text=True)
        assert answer.status_code < 500, (path, answer.status_code)
        assert answer.mimetype == "text/html" and "Traceback" not in text, path
        if answer.status_code >= 400:
            assert "精准营销控制台" in text, path  # the console's own error page, not JSON
    for legacy in ("/", "/admin", "/dashboard"):
        assert console.app.test_client().get(legacy).headers["Location"] == "/console/"


def test_the_english_switch_changes_the_words_and_keeps_the_page(console, client_for):
    client = client_for("viewer")
    assert "总览" in client.get("/console/").get_data(as_text=True)
    switched = client.get("/console/lang/en?next=/console/")
    assert switched.headers["Location"] == "/console/"
    page = client.get("/console/").get_data(as_text=True)
    assert "Dashboard" in page and 'lang="en"' in page


# --------------------------------------------------------------------------- `campaign-engine user`


@pytest.fixture
def user_cli(settings, engine):
    runner = CliRunner()
    env = {"CAMPAIGN_ENGINE_DATABASE_URL": settings.database_url}

    def invoke(*args: str, input: str | None = None):  # noqa: A002
        return runner.invoke(main, list(args), env=env, input=input)
    return invoke


def test_user_create_stores_only_a_salted_hash_and_refuses_weak_or_duplicate(user_cli, engine):
    made = user_cli("user", "create", "li.na", "--role", "approver", "--password-stdin", input="s3cret enough\n")
    assert made.exit_code == 0 and "li.na (approver) created" in made.output
    with engine.connect() as conn:
        stored = conn.execute(select(User.password_hash, User.role, User.disabled)).one()
    assert stored.role == "approver" and not stored.disabled
    assert "s3cret" not in stored.password_hash and stored.password_hash.startswith("scrypt:")
    again = user_cli("user", "create", "li.na", "--role", "viewer", "--password-stdin", input="another one!\n")
    assert again.exit_code == 1 and "exists already" in again.output
    weak = user_cli("user", "create", "zhao", "--role", "viewer", "--password-stdin", input="short\n")
    assert weak.exit_code == 2 and "at least 10 characters" in weak.output
    odd = user_cli("user", "create", "bad name!", "--role", "viewer", "--password-stdin", input="long enough pw\n")
    assert odd.exit_code == 2 and "NAME" in odd.output


def test_a_manager_user_is_bound_to_a_known_manager(user_cli, engine):
    from campaign_engine.store.upsert import upsert_rows
    from factories import NOW

    unbound = user_cli("user", "create", "rm1", "--role", "manager", "--password-stdin", input="long enough pw\n")
    assert unbound.exit_code == 2 and "--manager-id" in unbound.output
    unknown = user_cli("user", "create", "rm1", "--role", "manager", "--manager-id", "RM9999", "--password-stdin",
                       input="long enough pw\n")
    assert unknown.exit_code == 2 and "RM9999" in unknown.output
    with engine.begin() as conn:
        upsert_rows(conn, "managers", [{"manager_id": "RM0001", "name": "周强", "branch": "北京分行",
                                        "mobile": None, "email": None, "daily_call_capacity": 25,
                                        "daily_visit_capacity": 4, "active": True}], now=NOW, source="test")
    bound = user_cli("user", "create", "rm1", "--role", "manager", "--manager-id", "RM0001", "--password-stdin",
                     input="long enough pw\n")
    assert bound.exit_code == 0, bound.output
    wrong = user_cli("user", "create", "ops", "--role", "operator", "--manager-id", "RM0001", "--password-stdin",
                     input="long enough pw\n")
    assert wrong.exit_code == 2
    listed = user_cli("user", "list")
    assert "rm1 manager (RM0001) enabled, never signed in" in listed.output
    assert user_cli("user", "disable", "rm1").exit_code == 0
    assert user_cli("user", "disable", "rm1").exit_code == 2  # not an enabled user any more
    assert user_cli("user", "enable", "rm1").exit_code == 0
    with engine.connect() as conn:
        actions = [r.action for r in conn.execute(select(AuditEntry.action).order_by(AuditEntry.id))]
    assert actions == ["user.create", "user.disable", "user.enable"]


def test_one_person_is_one_person_through_the_api_and_the_console_for_four_eyes(console, client_for):
    """alice submits with her API key; signed in to the console as alice (an approver), she still
    may not approve her own change."""
    from campaign_engine.pipeline import publishing
    from campaign_engine.store import apikeys
    from factories import NOW

    with console.engine.begin() as conn:
        key_id, _ = apikeys.create_key(conn, name="alice", role="marketer", now=NOW)
    source = (console.settings.rules_dir / "rate_change.yaml").read_text(encoding="utf-8").replace(
        "rate-change-notice", "rate-change-copy")
    draft = publishing.submit(console.services, publishing.Submission(
        file="rate_change_copy.yaml", source=source, templates={}, note="a copy", author=f"key:alice#{key_id}"),
        now=NOW)
    assert draft["status"] == "pending"
    alice = client_for("approver", "alice")
    page = alice.get(f"/console/reviews/{draft['id']}").get_data(as_text=True)
    assert f'action="/console/reviews/{draft["id"]}/approve"' not in page
    alice.post(f"/console/reviews/{draft['id']}/approve", {"content_hash": draft["content_hash"]})
    assert publishing.draft_view(console.services, draft["id"])["status"] == "pending"
    refused = [a for a in _audit(console, "rules.approve_refused")]
    assert refused == [("user:alice", f"draft:{draft['id']}")]


def test_behind_a_trusted_proxy_the_client_address_and_https_are_the_forwarded_ones(settings, engine):
    from campaign_engine.api import create_app
    from factories import NOW, publish_rules

    publish_rules(settings)
    app = create_app(settings.replace(trusted_proxies=1), clock=lambda: NOW)
    try:
        from campaign_engine.store import users

        with engine.begin() as conn:
            users.create_user(conn, name="ops", password=PASSWORD, role="admin", manager_id=None, now=NOW)
        forwarded = {"X-Forwarded-For": "10.1.2.3", "X-Forwarded-Proto": "https"}
        client = app.test_client()
        first = client.get("/console/login", headers=forwarded)
        assert "Secure" in first.headers["Set-Cookie"]  # HTTPS as the proxy said
        page = first.get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        for _ in range(5):  # another client's failures, from behind the same proxy
            client.post("/console/login", data={"username": "ops", "password": "wrong one", "csrf_token": token},
                        headers={"X-Forwarded-For": "10.9.9.9", "X-Forwarded-Proto": "https",
                                 "Referer": "https://localhost/console/login"})
        with engine.connect() as conn:
            assert users.failed_logins(conn, username="x", address="10.9.9.9", since=NOW)[1] == 5
        with engine.connect() as conn:  # the proxy's own address counted nothing
            assert users.failed_logins(conn, username="x", address="127.0.0.1", since=NOW)[1] == 0
        other = client.post("/console/login", data={"username": "ops", "password": PASSWORD, "csrf_token": token},
                            headers={**forwarded, "Referer": "https://localhost/console/login"})
        assert other.status_code == 429  # the name is blocked whoever asks: 5 failures for it
    finally:
        app.extensions["campaign"].runtime.close()
