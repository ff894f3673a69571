"""Pure: the contact policy applied to every match before a message is written.

Owns consent, suitability and the suppression decision (contact), marketing frequency
caps (caps) and quiet hours, the sending windows (quiet_hours).

Pure core: may import the standard library and campaign_engine.vocabulary. Never a web,
database, queue, scheduler or network library, or an entry point: what the policy needs
to know (earlier messages, the suppression list) is passed in (tests/test_architecture.py).
"""

from .contact import ConsentRecord, Contact, Decision, decide_contact

__all__ = ["ConsentRecord", "Contact", "Decision", "decide_contact"]
