"""Contact data (mobile numbers, email addresses): how it is masked, and who sees it unmasked.

Pure: no Flask, no database. The template filter `mask_mobile`, the audit log's details, the
API's responses and the CLI's `messages` output all mask through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from .vocabulary import Role


class ContactData(StrEnum):
    """How contact data leaves the service: as stored, or masked."""

    FULL = "full"
    MASKED = "masked"


class Access(StrEnum):
    """What one request gets to see of contact data."""

    FULL = "full"  # the role needs contact data to do its work (admin)
    MASKED = "masked"
    REVEALED = "revealed"  # full, asked for explicitly with a reason: the caller audits who and why
    REFUSED = "refused"  # asked to reveal by a role that may not

    @property
    def contact_data(self) -> ContactData:
        return ContactData.FULL if self in (Access.FULL, Access.REVEALED) else ContactData.MASKED


# A relationship manager calls their own customers: a manager key reaches only its own tasks (the
# tasks views scope it; it has no other read permission), and sees those customers' numbers.
SEES_CONTACT_DATA = frozenset({Role.ADMIN, Role.MANAGER})
# Operators start runs and answer for their delivery; they may look at a recipient on a stated reason.
MAY_REVEAL = frozenset({Role.OPERATOR, Role.ADMIN})


def contact_access(role: str, *, reveal: bool) -> Access:
    """The policy: admins (and managers, on their own tasks) see contact data; operators when they ask
    to reveal it; nobody else.

    An explicit reveal is REVEALED even for an admin, so that every reveal request leaves a trail.
    """
    if reveal:
        return Access.REVEALED if role in MAY_REVEAL else Access.REFUSED
    return Access.FULL if role in SEES_CONTACT_DATA else Access.MASKED


def mask_mobile(value: object) -> str:
    """Mask a mobile number as `138****5678`; a +86/86 country prefix is dropped."""
    number = "".join(str(value if value is not None else "").split()).replace("-", "")
    if number.startswith("+86"):
        number = number[3:]
    elif number.startswith("86") and len(number) == 13:
        number = number[2:]
    if not number:
        raise ValueError(f"mask_mobile: no mobile number: {value!r}")
    if len(number) < 8:
        return "*" * max(len(number) - 2, 0) + number[-2:]
    return number[:3] + "*" * (len(number) - 7) + number[-4:]


def mask_email(value: str) -> str:
    """Mask an email address as `z***@example.com`; without an `@`, nothing of it is shown."""
    name, at, domain = value.strip().partition("@")
    if not at:
        return "***"
    return f"{name[:1]}***@{domain}"


def mask_contact(value: str | None) -> str | None:
    """A mobile number or an email address (told apart by the `@`), masked; None or blank stays."""
    if value is None or not value.strip():
        return value
    return mask_email(value) if "@" in value else mask_mobile(value)


def shown(row: Mapping[str, Any], fields: Iterable[str], contact_data: ContactData) -> dict[str, Any]:
    """A copy of `row` with its contact data `fields` as `contact_data` says."""
    out = dict(row)
    if contact_data is ContactData.MASKED:
        for name in fields:
            if name in out:
                out[name] = mask_contact(out[name])
    return out
