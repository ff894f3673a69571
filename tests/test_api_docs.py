"""The API docs page works on a network without internet: everything it loads comes from this server."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import campaign_engine.api
from campaign_engine.api import create_app
from factories import NOW, publish_rules

STATIC = Path(campaign_engine.api.__file__).parent / "static"
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
# What the page's Content-Security-Policy may allow besides this server: data: images (the icons in
# Swagger UI's style sheet). No inline script or style, no blob: or eval.
LOCAL_SOURCES = {"'self'", "'none'", "data:"}


class Page(HTMLParser):
    """Every attribute of every element, the inline styles, and the page's CSP."""

    def __init__(self) -> None:
        super().__init__()
        self.attributes: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.styles: list[str] = []
        self.csp: str | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        self.attributes += [(tag, name, value) for name, value in values.items()]
        self.styles += [values["style"]] if "style" in values else []
        if tag == "meta" and values.get("http-equiv", "").lower() == "content-security-policy":
            self.csp = values.get("content")
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)


def is_local(url: str) -> bool:
    """A URL the browser resolves against this server (or inline data), never another host."""
    parts = urlsplit(url.strip())
    return (not parts.netloc and parts.scheme in ("", "data", "blob")) and not url.strip().startswith("//")


@pytest.fixture
def client(settings):  # type: ignore[no-untyped-def]
    publish_rules(settings)
    app = create_app(settings, clock=lambda: NOW)
    yield app.test_client()
    state = app.extensions["campaign"]
    state.wait(30)
    state.runtime.close()


def read_page(client) -> Page:  # type: ignore[no-untyped-def]
    resp = client.get("/api/v1/docs")  # no API key
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = Page()
    page.feed(resp.get_data(as_text=True))
    return page


def test_api_docs_page_references_no_other_host(client):
    page = read_page(client)
    external = [(tag, name, value) for tag, name, value in page.attributes
                if "://" in value or value.strip().startswith("//")]
    assert external == []
    css = [url for style in page.styles for match in CSS_URL.finditer(style) for url in match.groups() if url]
    assert all(is_local(url) for url in css), css


def test_api_docs_page_policy_lets_the_browser_load_only_from_this_server(client):
    """What the scripts do is the browser's to enforce (tests/test_api_docs_browser.py checks it in one)."""
    csp = read_page(client).csp
    assert csp is not None
    directives = {d.split()[0]: set(d.split()[1:]) for d in csp.split(";") if d.strip()}
    assert directives["default-src"] == {"'self'"}
    assert {"script-src", "style-src", "img-src", "font-src", "connect-src", "worker-src"} <= set(directives)
    assert directives["script-src"] == {"'self'"} and directives["style-src"] == {"'self'"}
    assert directives["connect-src"] == {"'self'"}
    assert all(sources <= LOCAL_SOURCES for sources in directives.values()), directives


def test_api_docs_assets_answer_from_the_app_without_a_key_and_are_cached(client):
    page = read_page(client)
    assets = [value for tag, name, value in page.attributes
              if name in ("src", "href", "data-spec-url") and not value.startswith("data:")]
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets) and "/api/v1/openapi.json" in assets
    for url in assets:
        resp = client.get(url)
        assert resp.status_code == 200, url
        if url.startswith("/static/"):
            assert resp.cache_control.public and resp.cache_control.max_age >= 3600, resp.headers
            assert resp.headers.get("ETag"), url  # revalidated after it expires
            if resp.mimetype == "text/css":
                urls = [u for m in CSS_URL.finditer(resp.get_data(as_text=True)) for u in m.groups() if u]
                assert all(is_local(u) for u in urls), (url, urls)
        resp.close()


def test_api_docs_scripts_are_vendored_with_their_licence_and_load_no_remote_styles_or_fonts(client):
    page = read_page(client)
    scripts = [value for tag, name, value in page.attributes if tag == "script" and name == "src"]
    sheets = [value for tag, name, value in page.attributes if tag == "link" and name == "href" and value.endswith(".css")]
    vendored = [STATIC / url.removeprefix("/static/") for url in scripts + sheets if "/swagger-ui/" in url]
    assert len(vendored) == 2  # the bundle and its style sheet
    for file in vendored + [STATIC / url.removeprefix("/static/") for url in scripts + sheets]:
        assert file.is_file(), file
        text = file.read_text(encoding="utf-8")
        remote_css = [u for m in CSS_URL.finditer(text) for u in m.groups() if u and not is_local(u)]
        assert remote_css == [] and "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text
    folder = vendored[0].parent
    assert (folder / "LICENSE").is_file() and (folder / "NOTICE").is_file()
    assert folder.name in (folder.parent / "README.md").read_text(encoding="utf-8")  # how it came, how to upgrade


def test_api_docs_page_has_no_inline_script_and_starts_without_the_validator(client):
    body = client.get("/api/v1/docs").get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", body) == []
    assert "<style" not in body and " style=" not in body
    starter = (STATIC / "docs" / "docs.js").read_text(encoding="utf-8")
    assert "validatorUrl = null" in starter  # the badge would ask validator.swagger.io
