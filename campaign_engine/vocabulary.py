"""The bank's and the engine's fixed vocabularies, in one place."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """Value pyramid, top first: 钻石/白金/金/普通/限制."""

    DIAMOND = "diamond"
    PLATINUM = "platinum"
    GOLD = "gold"
    REGULAR = "regular"
    RESTRICTED = "restricted"


# Chinese names accepted wherever a tier is written (rule files, CSV).
TIER_ALIASES = {"钻石": Tier.DIAMOND, "白金": Tier.PLATINUM, "金": Tier.GOLD, "普通": Tier.REGULAR,
                "限制": Tier.RESTRICTED}



def parse_tier(text: str) -> Tier:
    """`gold` or `金` -> Tier.GOLD; ValueError naming the tiers otherwise."""
    value = TIER_ALIASES.get(text.strip()) or next((t for t in Tier if t.value == text.strip().lower()), None)
    if value is None:
        raise ValueError(f"unknown tier {text!r} (tiers: " + ", ".join(
            f"{t.value}/{zh}" for zh, t in TIER_ALIASES.items()) + ")")
    return value


CUSTOMER_RISK_LEVELS = ("C1", "C2", "C3", "C4", "C5")
PRODUCT_RISK_LEVELS = ("R1", "R2", "R3", "R4", "R5")

# The names the State Council's notices give the official public holidays, as config/holidays.yaml
# writes them and `calendar.holiday` compares them. A holiday file naming another one is refused
# (a `中秋` there, or in a rule, would never match the other's `中秋节`); a new name in a future
# notice is added here, with the date it first appears.
HOLIDAY_NAMES = ("元旦", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节",
                 "抗战胜利70周年纪念日")  # the last: 2015-09-03 .. 09-05 only


def risk_rank(level: str | None) -> int | None:
    """C3 -> 3, R5 -> 5; None or an unknown level -> None."""
    if level and len(level) == 2 and level[0] in "CR" and level[1] in "12345":
        return int(level[1])
    return None


class Channel(StrEnum):
    """Where a match goes: a message (sms, email) or a task for the customer's relationship manager
    (call: 电联, visit: 面谈), in a rule's preference order."""

    SMS = "sms"
    EMAIL = "email"
    CALL = "call"
    VISIT = "visit"


MESSAGE_CHANNELS = frozenset({Channel.SMS, Channel.EMAIL})
TASK_CHANNELS = frozenset({Channel.CALL, Channel.VISIT})
PHONE_CONSENT = "phone"  # the consent channel of phone (and visit) marketing by a relationship manager


class Category(StrEnum):
    SERVICE = "service"
    MARKETING = "marketing"


class SubjectType(StrEnum):
    CUSTOMER = "customer"
    DEPOSIT = "deposit"


class EventType(StrEnum):
    RATE_CHANGE = "rate_change"
    PRODUCT_LAUNCH = "product_launch"
    LARGE_TRANSACTION = "large_transaction"


class MessageStatus(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPPRESSED = "suppressed"
    HELD_OUT = "held_out"  # in a holdout or the control group: never sent, takes its cap slot (issue #11)


class OnceMode(StrEnum):
    """`once:` what a rule's idempotency key names: how often one subject may get the rule's message.

    The default follows the trigger: a customer-subject schedule per run date, a deposit-subject
    schedule per deposit maturity (per_occurrence), an event rule per event.
    """

    PER_RUN_DATE = "per_run_date"  # once per subject and run date
    PER_CAMPAIGN = "per_campaign"  # once ever per subject and campaign id, whatever the dates
    PER_EVENT = "per_event"  # once per subject and event id (event rules)
    PER_OCCURRENCE = "per_occurrence"  # once per deposit maturity date (deposit subjects)


class HoldoutGroup(StrEnum):
    """Why a held_out message was held out: the rule's own holdout or the global control group."""

    RULE = "rule"
    CONTROL_GROUP = "control_group"


class ConversionType(StrEnum):
    """What a customer did that a rule's goal may count (conversions: API, CSV, deposit/holding imports)."""

    DEPOSIT_OPEN = "deposit_open"
    DEPOSIT_RENEWAL = "deposit_renewal"
    PRODUCT_PURCHASE = "product_purchase"
    HOLDING_INCREASE = "holding_increase"
    CUSTOM = "custom"


class SuppressionReason(StrEnum):
    """Why a match produced no message; counted per rule in each run."""

    DO_NOT_CONTACT = "do_not_contact"
    NO_CONTACT_ADDRESS = "no_contact_address"
    NO_CONSENT = "no_consent"
    SUITABILITY = "suitability"
    NO_TEMPLATE_FOR_CHANNEL = "no_template_for_channel"
    FREQUENCY_CAP = "frequency_cap"
    SUPPRESSION_LIST = "suppression_list"
    OPTED_OUT = "opted_out"
    REPEAT_WINDOW = "repeat_window"  # `every: Nd`: this rule reached the subject fewer than N days ago
    RULE_DISABLED = "rule_disabled"  # its rule was stopped (`rules disable`) before the message was sent
    MANAGER_CAPACITY = "manager_capacity"  # the manager's call/visit capacity is full up to the horizon
    # a manager closed a task `wrong_number`: the mobile is someone else's, so neither a call nor an SMS
    # goes to it (the `call` suppression row of reason wrong_number) until `suppress remove call` lifts it
    WRONG_NUMBER = "wrong_number"


class Role(StrEnum):
    """The role of an API key; api/auth.py says what each may do."""

    VIEWER = "viewer"
    MARKETER = "marketer"
    OPERATOR = "operator"
    APPROVER = "approver"  # approves (or rejects) rule changes someone else submitted: four eyes
    AUDITOR = "auditor"  # reads everything and the audit log; changes nothing
    MANAGER = "manager"  # a relationship manager (key bound to a manager_id): only their own customers' tasks
    ADMIN = "admin"


class RunKind(StrEnum):
    SCHEDULED = "scheduled"
    EVENT = "event"
    DIGEST = "digest"  # the managers' daily task digest emails (pipeline.tasks), once per manager and day


class RunStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_ERRORS = "completed_with_errors"
    FAILED = "failed"


class ShardStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"  # every rule ran (a rule's own error is in the shard's stats)
    FAILED = "failed"  # the shard itself could not finish after its retries


class DraftStatus(StrEnum):
    """A submitted rule change (store.rule_versions): pending approval, live, or why not."""

    PENDING = "pending"
    LIVE = "live"
    INVALID = "invalid"  # has problems: stored with them, never goes live
    REJECTED = "rejected"
    SUPERSEDED = "superseded"  # a newer draft of the same file (or enable of the same rule) came


class DraftKind(StrEnum):
    PUBLISH = "publish"  # a rule file and its templates
    ENABLE = "enable"  # switch a disabled rule on again (at the version it is live in)


class Approval(StrEnum):
    """The `approval` setting: whether a change needs a second person."""

    REQUIRED = "required"
    OFF = "off"


class TaskStatus(StrEnum):
    """A relationship manager's call or visit task."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # still open `tasks.expire_days` after it was due


class TaskOutcome(StrEnum):
    """What the manager recorded when closing a task."""

    REACHED = "reached"
    NOT_REACHED = "not_reached"
    INTERESTED = "interested"
    DECLINED = "declined"
    REFUSED = "refused"  # refuses phone marketing: the phone consent is withdrawn
    CONVERTED = "converted"
    WRONG_NUMBER = "wrong_number"  # the mobile goes on the suppression list: no call, no SMS
