"""The Flask service: `create_app()` builds it; nothing happens at import time."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, cast

from flask import Flask, g
from flask.json.provider import DefaultJSONProvider

from .. import logs
from ..clock import utc_now
from ..settings import Settings, load_settings

log = logging.getLogger(__name__)


@dataclass
class AppState:
    """What the views need, built once in create_app."""

    runtime: Any  # campaign_engine.runtime.Runtime
    clock: Callable[[], dt.datetime] = utc_now
    limiter: Any = None  # api.request_limits.RateLimiter
    key_last_touched: dict[int, dt.datetime] = field(default_factory=dict)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for runs executing in this process's background threads (tests, shutdown)."""
        wait_idle = getattr(self.runtime.services.executor, "wait_idle", None)
        if wait_idle is not None:
            wait_idle(timeout)


def install_metrics(app: Flask, runtime: Any) -> None:
    """GET /metrics (Prometheus text format, behind `metrics_token` when set), and every request
    counted by endpoint, method and status with its handling time."""
    import hmac
    import time

    from flask import Response, request

    from .. import metrics

    settings = runtime.services.settings

    def started() -> None:
        g.request_started = time.perf_counter()

    def counted(response: Any) -> Any:
        endpoint = request.endpoint or "unmatched"
        metrics.API_REQUESTS.labels(endpoint, request.method, str(response.status_code)).inc()
        if "request_started" in g:
            metrics.API_LATENCY.labels(endpoint).observe(time.perf_counter() - g.request_started)
        return response

    def scrape() -> Response:
        if settings.metrics_token:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip(), settings.metrics_token):
                return Response("metrics need 'Authorization: Bearer <metrics_token>'\n", status=401,
                                mimetype="text/plain", headers={"WWW-Authenticate": "Bearer"})
        body = metrics.render(runtime.services.db, app.extensions["campaign"].clock)
        return Response(body, mimetype="text/plain", content_type=metrics.CONTENT_TYPE)

    app.before_request(started)
    app.after_request(counted)
    app.add_url_rule("/metrics", "metrics", scrape)


def create_app(settings: Settings | None = None, *, runtime: Any = None,
               clock: Callable[[], dt.datetime] | None = None, config: dict[str, Any] | None = None,
               background_workers: int = 2) -> Flask:
    """Build the app: settings, database, rules, API blueprints, error handlers."""
    from ..bootstrap import open_services
    from ..runtime import Runtime
    from ..console import install_console
    from .errors import CampaignApi, register_error_handlers
    from .input_limits import install_input_limits
    from .request_limits import RateLimiter
    from .views import BLUEPRINTS

    settings = settings or load_settings()
    if "gunicorn" in sys.modules and not logs.configured():  # a `serve` worker: its log lines as configured
        logs.configure(settings.log_format, logging.INFO)
    app = Flask(__name__)
    app.config.update(
        API_TITLE="campaign-engine", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1", OPENAPI_JSON_PATH="openapi.json",
        # Swagger UI shipped in the package (api/static/swagger-ui/README.md; api/templates/swagger_ui.html
        # loads it): the docs page asks no other host for anything. Static files (vendored, versioned paths): a day.
        OPENAPI_SWAGGER_UI_PATH="docs", OPENAPI_SWAGGER_UI_URL="swagger-ui/5.35.0/",
        OPENAPI_SWAGGER_UI_CONFIG={"deepLinking": True, "docExpansion": "list", "defaultModelsExpandDepth": 0,
                                   "displayRequestDuration": True, "filter": True, "tryItOutEnabled": False},
        SEND_FILE_MAX_AGE_DEFAULT=dt.timedelta(days=1),
        MAX_CONTENT_LENGTH=64 * 1024 * 1024, JSON_AS_ASCII=False,
    )
    app.config.update(config or {})
    # Chinese stays readable in responses (app.json is typed JSONProvider; a plain Flask has the default)
    cast(DefaultJSONProvider, app.json).ensure_ascii = False
    api = CampaignApi(app, spec_kwargs={"info": {"description": "Rules-engine-driven marketing campaigns"}})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer"})
    runtime = runtime or Runtime(open_services(settings, background_threads=background_workers))
    app.extensions["campaign"] = AppState(runtime=runtime, clock=clock or utc_now,
                                          limiter=RateLimiter(runtime.services.settings.api_rate_limit))
    # Every request runs on the published rule set as it is now (one single-row read of the
    # generation) and keeps that one snapshot to its end: two workers of one service never answer
    # from different versions, and one request never mixes two.
    def follow_published() -> None:
        runtime.refresh()
        g.services = runtime.services

    app.before_request(follow_published)
    for blueprint in BLUEPRINTS:
        api.register_blueprint(blueprint)
    register_error_handlers(app)
    install_input_limits(app, api)  # deep JSON, NUL, absurd lengths: 400 before any view
    install_console(app, runtime.services.settings)  # the console's pages under /console
    install_metrics(app, runtime)
    return app
