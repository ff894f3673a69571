"""Pure: the contact policy applied to every match before a message is written."""

from .contact import ConsentRecord, Contact, Decision, decide_contact

__all__ = ["ConsentRecord", "Contact", "Decision", "decide_contact"]
