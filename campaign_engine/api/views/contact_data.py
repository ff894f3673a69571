"""Contact data in responses: the `reveal=contact` parameters, the 403, the audit of a reveal.

The policy itself (who sees what, how it is masked) is campaign_engine.masking.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

import marshmallow as ma
from flask import g

from ...masking import Access, contact_access, shown
from ..auth import abort
from .common import record

MESSAGE_CONTACT_FIELDS = ("recipient",)
CUSTOMER_CONTACT_FIELDS = ("mobile", "email")


def _plain_text(value: str) -> None:
    if not value.strip() or any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ma.ValidationError("say why, in plain text on one line")


class RevealArgs(ma.Schema):
    reveal = ma.fields.String(validate=ma.validate.OneOf(["contact"]), metadata={
        "description": "`contact`: answer mobile numbers, email addresses and recipients unmasked. Operators and "
                       "admins only (others: 403); needs a `reason`; written to the audit log with the key"})
    reason = ma.fields.String(validate=[ma.validate.Length(min=1, max=200), _plain_text], metadata={
        "description": "why contact data is revealed (with `reveal=contact`), e.g. 'complaint 2026-0311-17'"})

    @ma.validates_schema
    def _reason_goes_with_reveal(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("reveal") and not data.get("reason"):
            raise ma.ValidationError("reveal=contact needs a reason", "reason")
        if data.get("reason") and not data.get("reveal"):
            raise ma.ValidationError("a reason goes with reveal=contact", "reason")


def access(args: Mapping[str, Any]) -> Access:
    """What this request may see of contact data; 403 for a reveal its role may not ask for."""
    role = getattr(g, "role", "")
    decided = contact_access(role, reveal=args.get("reveal") == "contact")
    if decided is Access.REFUSED:
        abort(403, message=f"role {role} may not reveal contact data (operators and admins may, with a reason)")
    return decided


def present(rows: Iterable[Mapping[str, Any]], fields: Iterable[str], decided: Access, args: Mapping[str, Any],
            *, target: str, key: str) -> list[dict[str, Any]]:
    """Rows as answered: masked, or full; a reveal is audited (who, why, which rows by `key`) before it
    is answered, so a reveal that cannot be recorded is not answered."""
    fields = tuple(fields)
    out = [shown(row, fields, decided.contact_data) for row in rows]
    if decided is Access.REVEALED:
        record("contact.reveal", target, {"reason": args["reason"], "revealed": [row[key] for row in out]})
    return out
