"""The console: server-rendered pages for marketing staff, approvers, operators and relationship
managers, in the same Flask app as the API, under /console (Jinja2 templates, vendored htmx, no
request to any other host). Its pages call the same domain functions as the API and the CLI."""

from __future__ import annotations

from typing import Any

from flask import Flask, g, redirect, render_template, request, url_for
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import HTTPException

from .auth import SESSION_LIFETIME


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie session, marked Secure whenever the request came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config.get("SESSION_COOKIE_SECURE")) or request.is_secure


def is_console_request() -> bool:
    return request.path == "/console" or request.path.startswith("/console/")


def error_page(status: int, message_key: str | None = None) -> tuple[str, int]:
    """An error as a console page (never a stack trace): 403, 404, 400 (a form's CSRF token), 500."""
    from .blueprint import t

    if "user" not in g:  # a URL no console view matched: who is signed in still shows in the bar
        from . import auth

        try:
            auth.load_user()
        except Exception:  # noqa: BLE001 (an error page must render even when the database is down)
            g.user = None
    key = message_key or (f"error.{status}" if status in (400, 401, 403, 404, 405, 429, 500) else "error.other")
    return render_template("console/error.html", status=status, message=t(key)), status


def install_console(app: Flask, settings: Any) -> None:
    from . import views  # noqa: F401  (the screens register their routes on the blueprint)
    from .blueprint import bp, csrf

    app.secret_key = settings.secret_key
    app.config.update(SESSION_COOKIE_NAME="campaign_console", SESSION_COOKIE_HTTPONLY=True,
                      SESSION_COOKIE_SAMESITE="Lax", PERMANENT_SESSION_LIFETIME=SESSION_LIFETIME,
                      WTF_CSRF_CHECK_DEFAULT=False,  # the API is key-authenticated: the console checks its own
                      WTF_CSRF_TIME_LIMIT=None)  # a token lives as long as the session
    app.session_interface = _SessionInterface()
    if settings.trusted_proxies:  # behind a proxy: the client's address and scheme as it forwards them
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies,  # type: ignore[method-assign]
                                x_proto=settings.trusted_proxies)
    csrf.init_app(app)
    app.register_blueprint(bp)

    def home() -> Any:  # what a new user tries first
        return redirect(url_for("console.dashboard"))

    for path in ("/", "/admin", "/dashboard"):
        app.add_url_rule(path, f"console_home{path.replace('/', '_')}", home)
    app.after_request(_security_headers)


# The browser may load and send to this server only: no script, style, font or image from any other
# host, no inline script, no framing (clickjacking), forms post only here.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
                           "base-uri 'self'; object-src 'none'")


def _security_headers(response: Any) -> Any:
    if is_console_request():
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.mimetype == "text/html":
            response.headers.setdefault("Cache-Control", "no-store")  # pages hold customer data
    return response


def console_http_error(error: HTTPException) -> tuple[str, int]:
    from flask_wtf.csrf import CSRFError

    if isinstance(error, CSRFError):
        return error_page(400, "error.csrf")
    return error_page(error.code or 500)
