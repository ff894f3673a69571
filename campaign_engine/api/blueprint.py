"""Blueprint defaults: request validation answers 400, the JSON body is the one the edge checked,
and secured views document 401/403."""

from __future__ import annotations

from typing import Any, Callable

import flask
from flask_smorest import Blueprint
from flask_smorest.arguments import FlaskParser
from marshmallow import Schema, missing
from webargs.flaskparser import is_json_request

from .auth import requires
from .errors import ErrorSchema


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400

    def load_json(self, req: flask.Request, schema: Schema) -> Any:
        """The body as api.input_limits parsed and checked it before the view (Flask caches the
        parse): one parse per request, and never a document deeper than the edge allows."""
        if not is_json_request(req) or not req.get_data(cache=True):
            return missing  # no body: the schema's defaults, as webargs does
        return req.get_json(cache=True)


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = _Parser()

    def secured(self, permission: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Require an API key with `permission` (checked before the body is parsed)."""

        def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
            view = self.alt_response(401, schema=ErrorSchema, description="missing or unknown API key")(view)
            view = self.alt_response(403, schema=ErrorSchema, description="the key's role may not do this")(view)
            view = self.alt_response(429, schema=ErrorSchema, description="too many requests for this key")(view)
            view = self.doc(security=[{"bearerAuth": []}])(view)
            return requires(permission)(view)
        return decorate
