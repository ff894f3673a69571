"""JSON errors everywhere: `{"error": {"code", "message", "details"}}`; one table maps domain errors to statuses."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from flask import Flask, Response, jsonify
from flask_smorest import Api
from werkzeug.exceptions import HTTPException

from ..errors import CampaignEngineError, Conflict, NotFound, Refused, StoreError, TemplateError, ValidationFailed
from ..facts.official import CalendarNotAnnounced
from ..pipeline import EventConflict
from ..pipeline.calendar_checks import OfficialCalendarUnknown
from ..console import console_http_error, error_page, is_console_request

log = logging.getLogger(__name__)

CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "payload_too_large",
         415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited",
         500: "internal_error", 503: "unavailable"}

# Domain error -> HTTP status, most specific first.
STATUS_OF: list[tuple[type[Exception], int]] = [
    (NotFound, 404),
    (EventConflict, 409),
    (Conflict, 409),
    (Refused, 403),
    (ValidationFailed, 400),
    (TemplateError, 422),
    (CalendarNotAnnounced, 422),  # the official calendar for that year is not in the holiday file yet
    (OfficialCalendarUnknown, 422),  # a rule needs that calendar: preview says so, runs record it per rule
    (StoreError, 503),  # the database failed: try again later
    (CampaignEngineError, 500),
]


class ErrorDetailSchema(ma.Schema):
    code = ma.fields.String(required=True)
    message = ma.fields.String(required=True)
    details = ma.fields.Dict(required=True)


class ErrorSchema(ma.Schema):
    error = ma.fields.Nested(ErrorDetailSchema, required=True)


def error_response(status: int, message: str, details: dict[str, Any] | None = None) -> tuple[Response, int]:
    body = {"error": {"code": CODES.get(status, "error"), "message": message, "details": details or {}}}
    return jsonify(body), status


def _field_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """webargs/marshmallow messages -> {"body.field.sub": [reasons]}."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            out.update(_field_errors(value, "" if key == "json" else name) if key == "json"
                       else _field_errors(value, name))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "_"] = list(messages)
    else:
        out[prefix or "_"] = [str(messages)]
    return out


class CampaignApi(Api):
    """flask-smorest Api whose errors (and their OpenAPI description) use our error body."""

    ERROR_SCHEMA = ErrorSchema

    def handle_http_exception(self, error: HTTPException):  # type: ignore[override]
        if is_console_request():  # the console answers with its own pages, the API with JSON
            return console_http_error(error)
        status = error.code or 500
        data = getattr(error, "data", None) or {}
        details: dict[str, Any] = {}
        if "messages" in data or "errors" in data:
            details["fields"] = _field_errors(data.get("errors") or data.get("messages"))
        if data.get("details"):
            details.update(data["details"])
        message = data.get("message") or (error.description if status != 500 else "internal error")
        if status == 400 and "fields" in details and not data.get("message"):
            message = "the request is invalid: see details.fields"
        response, code = error_response(status, str(message), details)
        for name, value in error.get_headers():  # e.g. Allow on 405
            if name.lower() != "content-type":
                response.headers[name] = value
        for name, value in (data.get("headers") or {}).items():
            response.headers[name] = value
        return response, code


def _domain_error(exc: CampaignEngineError):  # type: ignore[no-untyped-def]
    status = next(code for kind, code in STATUS_OF if isinstance(exc, kind))
    details: dict[str, Any] = {}
    if isinstance(exc, ValidationFailed):
        details["problems"] = [p.as_dict() for p in exc.problems]
        fields: dict[str, list[str]] = {}
        for p in exc.problems:
            fields.setdefault(p.field or "_", []).append(p.reason)
        details["fields"] = fields
    if isinstance(exc, EventConflict):
        details["run_id"] = exc.run_id
    if status == 500:
        log.exception("domain error answered 500")
        return error_page(500) if is_console_request() else error_response(500, "internal error")
    if is_console_request():  # a console view lets no domain error through: this is a bug, said plainly
        log.error("console: domain error reached the error handler: %s", exc)
        return error_page(status)
    return error_response(status, str(exc).splitlines()[0] if isinstance(exc, ValidationFailed) else str(exc),
                          details)


def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
    if isinstance(exc, HTTPException):
        raise exc
    log.exception("unexpected error")
    return error_page(500) if is_console_request() else error_response(500, "internal error")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(CampaignEngineError, _domain_error)
    app.register_error_handler(Exception, _unexpected)
