"""Fixtures for the console's tests: the app on the test database served on a real port, users per
role, a Flask test client that signs in and posts forms with their CSRF token, and a real browser
(Playwright driving Debian's Chromium) whose pages fail the test when they ask any other host for
anything, log a console error, or show an untranslated catalogue key.

Browser tests need /usr/bin/chromium (or CAMPAIGN_ENGINE_CHROMIUM): `.ci/run` installs it with a CJK
font. Without it they are skipped, saying so, unless CAMPAIGN_ENGINE_REQUIRE_BROWSER=1 (CI sets it),
which turns the skip into a failure. Screenshots go to test-artefacts/console/.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from campaign_engine.api import create_app
from campaign_engine.console.i18n import MISSING_MARK
from campaign_engine.store import users
from factories import NOW, publish_rules

CHROMIUM = os.environ.get("CAMPAIGN_ENGINE_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("CAMPAIGN_ENGINE_REQUIRE_BROWSER") == "1"
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "console"
PASSWORD = "correct horse battery"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


class _MissingKeys(logging.Handler):
    """Collects the catalogue keys a render asked for and did not find (console/i18n.py logs them)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.keys.append(record.getMessage())


class ConsoleApp:
    """The app on the test database (starter pack published), served on 127.0.0.1 on a free port."""

    def __init__(self, app: Any, engine: Any, settings: Any) -> None:
        self.app = app
        self.engine = engine
        self.settings = settings
        self._server: Any = None
        self.url = ""

    @property
    def state(self) -> Any:
        return self.app.extensions["campaign"]

    @property
    def services(self) -> Any:
        return self.state.runtime.services

    def user(self, role: str, name: str | None = None, *, manager_id: str | None = None) -> str:
        name = name or f"{role}-user"
        with self.engine.begin() as conn:
            users.create_user(conn, name=name, password=PASSWORD, role=role, manager_id=manager_id, now=NOW)
        return name

    def serve(self) -> str:
        if not self._server:
            self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
            self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self.url

    def close(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        try:
            self.state.wait(30)
        finally:
            self.state.runtime.close()


class ConsoleClient:
    """A Flask test client that signs in and posts forms with the CSRF token the page carried."""

    def __init__(self, app: Any) -> None:
        self.client = app.test_client()
        self.token = ""

    def get(self, path: str, **kw: Any) -> Any:
        response = self.client.get(path, **kw)
        found = CSRF_FIELD.search(response.get_data(as_text=True))
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kw: Any) -> Any:
        data = dict(data or {})
        if csrf:
            if not self.token:
                self.get("/console/login")
            data.setdefault("csrf_token", self.token)
        return self.client.post(path, data=data, **kw)

    def login(self, name: str, password: str = PASSWORD) -> Any:
        self.get("/console/login")
        response = self.post("/console/login", {"username": name, "password": password})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        self.get(response.headers["Location"])
        return response


@pytest.fixture
def console(settings, engine) -> Iterator[ConsoleApp]:
    """The console app (starter pack published, approval required as `serve` has it)."""
    publish_rules(settings)
    app = create_app(settings, clock=lambda: NOW)
    built = ConsoleApp(app, engine, settings)
    yield built
    built.close()


@pytest.fixture
def client_for(console) -> Any:
    """client_for(role) -> a ConsoleClient signed in as a new user of that role."""

    def build(role: str, name: str | None = None, manager_id: str | None = None) -> ConsoleClient:
        client = ConsoleClient(console.app)
        client.login(console.user(role, name, manager_id=manager_id))
        return client
    return build


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = (f"no Chromium at {CHROMIUM}: `apt-get install -y chromium fonts-wqy-microhei` "
                   "(.ci/run does) to run the console's browser tests")
        if REQUIRE_BROWSER:
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield chromium
        chromium.close()


class Browsing:
    """Pages in one browser context on the served console, every request and console message watched."""

    def __init__(self, browser: Any, console: ConsoleApp, test_name: str) -> None:
        self.console = console
        self.base = console.serve()
        self.test_name = re.sub(r"[^A-Za-z0-9_-]+", "_", test_name)
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.contexts: list[Any] = []
        self.error_documents: set[str] = set()  # pages a test asked for that answer 4xx (a 404 page)
        self.missing = _MissingKeys()
        logging.getLogger("campaign_engine.console.i18n").addHandler(self.missing)
        self.browser = browser

    def page(self, *, width: int = 1280, height: int = 900, locale: str = "zh-CN") -> Any:
        context = self.browser.new_context(viewport={"width": width, "height": height}, locale=locale,
                                           timezone_id="Asia/Shanghai")
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        page = context.new_page()
        own = urlsplit(self.base).netloc
        page.on("request", lambda r: self.foreign.append(r.url)
                if urlsplit(r.url).scheme not in ("data", "blob") and urlsplit(r.url).netloc != own else None)
        page.on("response", lambda r: self.error_documents.add(r.url)
                if r.request.resource_type == "document" and r.status >= 400 else None)
        page.on("console", self._console_message)
        page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        return page

    def _console_message(self, message: Any) -> None:
        if message.type != "error":
            return
        # Chromium logs a page that answered 404 or 403 as a failed load: that page is what the
        # test asked for (the console's own error page), not a broken resource on a good page.
        if message.text.startswith("Failed to load resource") and message.location.get("url") in self.error_documents:
            return
        self.errors.append(f"{message.type}: {message.text} ({message.location.get('url')})")

    def login(self, page: Any, name: str, password: str = PASSWORD) -> None:
        page.goto(self.base + "/console/login")
        page.get_by_label(re.compile("用户名|User name")).fill(name)
        page.get_by_label(re.compile("密码|Password")).fill(password)
        page.get_by_role("button", name=re.compile("^(登录|Sign in)$")).click()
        page.wait_for_load_state("networkidle")

    def shot(self, page: Any, name: str, *, full_page: bool = True) -> Path:
        """Save a screenshot (and check the page shows no untranslated key)."""
        self.check(page)
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTEFACTS / f"{self.test_name}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    def check(self, page: Any) -> None:
        text = page.content()
        assert MISSING_MARK.format("")[0] not in text, f"untranslated key on {page.url}"
        assert "Traceback" not in text

    def close(self) -> None:
        logging.getLogger("campaign_engine.console.i18n").removeHandler(self.missing)
        for context in self.contexts:
            context.close()
        assert not self.foreign, f"requests to other hosts: {self.foreign}"
        assert not self.errors, f"browser console errors: {self.errors}"
        assert not self.missing.keys, f"untranslated keys: {self.missing.keys}"


@pytest.fixture
def browsing(browser, console, request) -> Iterator[Browsing]:
    """browsing.page() -> a watched page; browsing.login(page, name); browsing.shot(page, name)."""
    session = Browsing(browser, console, request.node.name)
    yield session
    session.close()
