"""What a request may carry, checked once before any view: query and path values of a sane length
holding only storable text, a JSON body no deeper than 64 levels holding only storable text, and a
body of the media type its operation takes.

Hostile or broken input is refused here, at the edge, as 400 (415 for a body of the wrong type)
with the usual JSON error body, instead of reaching a view and failing there as a RecursionError
(deep JSON) or a database error (PostgreSQL text cannot hold NUL; UTF-8 cannot encode a lone
surrogate). The JSON body is parsed here once; the views' parser takes this parse
(api.blueprint), so no deeper or different document is ever read.
"""

from __future__ import annotations

import re
from typing import Any, Callable, NoReturn

from flask import Flask, request
from flask_smorest import Api
from flask_smorest import abort as _untyped_abort
from flask_smorest.spec.plugins import FlaskPlugin
from werkzeug.exceptions import BadRequest

# flask_smorest ships no types; its abort always raises an HTTPException (answered by api.errors).
abort: Callable[..., NoReturn] = _untyped_abort

MAX_JSON_DEPTH = 64
MAX_PARAMETER_LENGTH = 1000  # characters of a query parameter's name or value, or a path parameter

# NUL, which PostgreSQL text cannot hold, and lone UTF-16 surrogates, which UTF-8 cannot encode.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why `text` cannot be stored as text (a NUL, a lone surrogate), or None when it can."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "contains a NUL character (U+0000), which cannot be stored"
    return f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not text"


def json_problem(document: Any, max_depth: int = MAX_JSON_DEPTH) -> tuple[str, str] | None:
    """(where, why) of a part of a parsed JSON document nested deeper than max_depth or holding
    a key or string that cannot be stored; None when there is none.

    `where` is the dotted path of webargs' field errors ("product.name", "rules.0"), "_" for the
    document itself. Iterative, so a document of any depth is safe to walk.
    """
    if isinstance(document, str):
        reason = unstorable(document)
        return None if reason is None else ("_", reason)
    stack: list[tuple[Any, int, str]] = [(document, 1, "")]
    while stack:
        value, depth, where = stack.pop()
        if isinstance(value, dict):
            items: Any = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        else:
            continue
        if depth > max_depth:
            return where or "_", f"JSON nested deeper than {max_depth} levels"
        for key, item in items:  # a path is built only for what is walked into or refused
            if isinstance(key, str) and _UNSTORABLE.search(key):
                return f"{where}.{key}" if where else key, f"a key {unstorable(key)}"
            if isinstance(item, str):
                if _UNSTORABLE.search(item):
                    return f"{where}.{key}" if where else str(key), unstorable(item) or ""
            elif isinstance(item, (dict, list)):
                stack.append((item, depth + 1, f"{where}.{key}" if where else str(key)))
    return None


def _refuse(status: int, message: str, location: str, name: str, reason: str) -> NoReturn:
    abort(status, message=message, errors={location: {name: [reason]}})


def query_limits(**limits: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let a view's named query parameters be longer than MAX_PARAMETER_LENGTH (a draft's `note`
    sent with a YAML body may have its documented 2,000 characters). Put it next to the `def`:
    the decorators above copy it onto the registered view."""
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        view.query_limits = {**getattr(view, "query_limits", {}), **limits}  # type: ignore[attr-defined]
        return view
    return decorate


def _check_parameter(location: str, name: str, value: str, value_limit: int = MAX_PARAMETER_LENGTH) -> None:
    what = f"{location} parameter"
    for text, label, limit in ((name, f"the name of a {what}", MAX_PARAMETER_LENGTH),
                               (value, f"{what} {name[:40]!r}", value_limit)):
        reason = unstorable(text)
        if reason is None and len(text) > limit:
            reason = f"is longer than {limit} characters ({len(text)})"
        if reason is not None:
            _refuse(400, f"{label} {reason}", location, name[:40], reason)


def _body_types(api: Api) -> dict[tuple[str, str], frozenset[str]]:
    """(OpenAPI path, method) -> the media types of its documented request body."""
    paths = api.spec.to_dict().get("paths", {})
    return {(path, method.upper()): frozenset(operation["requestBody"].get("content", {}))
            for path, operations in paths.items() for method, operation in operations.items()
            if isinstance(operation, dict) and "requestBody" in operation}


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (media_type.startswith("application/")
                                                and media_type.endswith("+json"))


def _check_json_body(types: frozenset[str]) -> None:
    """Refuse a body that is not the JSON its operation takes, or too deep, or unstorable."""
    json_types = {t for t in types if _is_json(t)}
    if not json_types:
        return  # the view reads its own type (CSV, YAML) and refuses others itself
    if not request.is_json:
        if json_types == types and (request.content_length or request.get_data(cache=True)):
            abort(415, message="send the body as JSON, with Content-Type: application/json")
        return
    if not request.get_data(cache=True):
        return  # no body: the operation's defaults
    try:
        document = request.get_json(cache=True)  # cached: the views' parser takes this parse
    except RecursionError:
        _refuse(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "json", "_",
                f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    except BadRequest:  # not JSON, not UTF-8, or a number beyond Python's digit limit
        abort(400, message="the body is not valid JSON", messages={"json": ["Invalid JSON body."]})
    found = json_problem(document)
    if found is not None:
        where, reason = found
        label = "the JSON body" if where == "_" else f"body field {where!r}"
        message = reason if reason.startswith("JSON nested") else f"{label} {reason}"
        _refuse(400, message, "json", where, reason)


def install_input_limits(app: Flask, api: Api) -> None:
    """Check every request before its view (call in create_app once the blueprints are registered)."""
    body_types: dict[tuple[str, str], frozenset[str]] = {}  # read from the OpenAPI document at first use

    def check_request() -> None:
        view = app.view_functions.get(request.endpoint or "")
        longer: dict[str, int] = getattr(view, "query_limits", None) or {}
        for name, value in request.args.items(multi=True):
            _check_parameter("query", name, value, longer.get(name, MAX_PARAMETER_LENGTH))
        for name, value in (request.view_args or {}).items():
            if isinstance(value, str):
                _check_parameter("path", name, value)
        if request.url_rule is None:
            return  # no such route: answered 404/405 by the routing
        if not body_types:
            body_types.update(_body_types(api))
        types = body_types.get((FlaskPlugin.flaskpath2openapi(request.url_rule.rule), request.method))
        if types:
            _check_json_body(types)

    app.before_request(check_request)
