"""Blueprint defaults: request validation answers 400, and secured views document 401/403."""

from __future__ import annotations

from typing import Any, Callable

from flask_smorest import Blueprint
from flask_smorest.arguments import FlaskParser

from .auth import requires
from .errors import ErrorSchema


class _Parser(FlaskParser):
    DEFAULT_VALIDATION_STATUS = 400


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
