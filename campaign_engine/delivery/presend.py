"""The contact policy's second look, just before sending (the worker's `before_send` hook).

Between queuing and sending, the rule may have been disabled, consent withdrawn, an address put
on the suppression list, a customer marked do-not-contact, or the sending window closed: such
messages are suppressed with the reason, or rescheduled for the next window.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Callable

from ..policy.quiet_hours import next_send_time
from ..settings import Settings
from ..store import holdbacks, rule_versions, suppression
from ..unsubscribe import unsubscribe_url
from ..vocabulary import SuppressionReason

if TYPE_CHECKING:
    from ..store.db import Engine

Row = dict[str, Any]


def presend_check(db: Engine, settings: Settings, clock: Callable[[], dt.datetime]) -> Callable[[list[Row]], list[Row]]:
    """A `before_send` hook: returns the rows still to send, after recording the others."""

    def check(rows: list[Row]) -> list[Row]:
        if not rows:
            return rows
        now = clock()
        with db.begin() as conn:
            flags = holdbacks.contact_flags(conn, sorted({r["customer_id"] for r in rows}))
            blocked = suppression.blocked(conn, [(r["channel"], r["recipient"]) for r in rows]
                                          + [(suppression.WRONG_NUMBER, r["recipient"]) for r in rows if r["channel"] == "sms"])
            stopped = rule_versions.disabled_rules(conn, {r["rule_id"] for r in rows})
            keep: list[Row] = []
            refused: list[tuple[int, str]] = []
            later: list[tuple[int, dt.datetime]] = []
            for row in rows:
                customer = flags.get(row["customer_id"], {})
                if row["rule_id"] in stopped:  # `rules disable`: the emergency stop reaches the last step too
                    refused.append((row["id"], SuppressionReason.RULE_DISABLED.value))
                elif customer.get("do_not_contact"):
                    refused.append((row["id"], SuppressionReason.DO_NOT_CONTACT.value))
                elif row["channel"] == "sms" and (suppression.WRONG_NUMBER, row["recipient"]) in blocked:
                    refused.append((row["id"], SuppressionReason.WRONG_NUMBER.value))  # a manager's flag
                elif (row["channel"], row["recipient"]) in blocked:
                    refused.append((row["id"], SuppressionReason.SUPPRESSION_LIST.value))
                elif row["category"] == "marketing" and not customer.get(row["channel"]):
                    refused.append((row["id"], SuppressionReason.OPTED_OUT.value))
                else:
                    due = next_send_time(now, settings.quiet_hours.get(row["channel"]), settings.tz)
                    if due > now:
                        later.append((row["id"], due))
                    else:
                        keep.append(row)
            holdbacks.suppress_claimed(conn, refused)
            holdbacks.reschedule_claimed(conn, later)
        return keep

    return check


def unsubscribe_link(settings: Settings) -> Callable[[Row], str | None]:
    """The worker's `unsubscribe_url`: a signed one-click link for marketing email (List-Unsubscribe)."""

    def link(row: Row) -> str | None:
        if row["category"] != "marketing" or row["channel"] != "email":
            return None
        return unsubscribe_url(settings.public_base_url, settings.secret_key, row["customer_id"], "email")

    return link
