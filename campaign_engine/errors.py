"""The one exception hierarchy of the engine.

Errors carry context (file, line, rule, field, message id) and never an HTTP
status: entry points map them to whatever their medium needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class CampaignEngineError(Exception):
    """Root of every error the engine raises on purpose."""

    #: True when retrying the same operation later may succeed.
    transient: bool = False


@dataclass(frozen=True)
class Problem:
    """One located problem in an input: which file, line, rule and field, and why."""

    reason: str
    file: str | None = None
    line: int | None = None
    rule: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
        parts = [p for p in (
            where,
            f"rule {self.rule}" if self.rule else "",
            f"field {self.field}" if self.field else "",
        ) if p]
        return f"{', '.join(parts)}: {self.reason}" if parts else self.reason

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in (
            ("file", self.file), ("line", self.line), ("rule", self.rule),
            ("field", self.field), ("reason", self.reason)) if v is not None}


@dataclass
class ValidationFailed(CampaignEngineError):
    """An input (rule file, event payload, CSV, settings) failed validation."""

    problems: list[Problem] = field(default_factory=list)
    what: str = "input"

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = [f"invalid {self.what}: {len(self.problems)} problem(s)"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


class EventPayloadError(ValidationFailed):
    """An event payload is missing fields, has unknown fields or bad values."""


class ConfigError(ValidationFailed):
    """Settings could not be loaded."""


class TemplateError(CampaignEngineError):
    """A template could not be loaded or rendered; fails one message, never a run."""

    def __init__(self, template: str, part: str | None, reason: str, line: int | None = None):
        self.template = template
        self.part = part
        self.reason = reason
        self.line = line
        where = template + (f"/{part}" if part else "") + (f":{line}" if line else "")
        super().__init__(f"template {where}: {reason}")


class NotFound(CampaignEngineError):
    """A named thing (rule, customer, run, message) does not exist."""

    def __init__(self, kind: str, key: object, hint: str | None = None):
        self.kind = kind
        self.key = key
        super().__init__(f"{kind} {key!r} not found" + (f"; {hint}" if hint else ""))


class Conflict(CampaignEngineError):
    """The request contradicts the state it acts on (a draft already decided, a live version that
    changed since a draft was submitted); nothing was changed."""


class StaleDraft(Conflict):
    """A pending draft that can no longer apply (an enable whose rule was published again or
    enabled since): it was marked superseded, nothing else changed. Bad input (CLI status 2)."""


class Refused(CampaignEngineError):
    """Not allowed to this actor whatever the request says (approving one's own change)."""


class EngineError(CampaignEngineError):
    """The rules engine failed to evaluate a batch (a bug or a limit, not bad input)."""


class AlreadyRecorded(CampaignEngineError):
    """A record with this unique key exists already (e.g. a run for an event id that arrived twice
    at once): the store's translation of its integrity error, so callers never see the driver's."""

    def __init__(self, what: str, key: object):
        self.what = what
        self.key = key
        super().__init__(f"{what} {key!r} is already recorded")


class StoreError(CampaignEngineError):
    """The database failed an operation (the store's translation of its driver's error).

    `transient` when another attempt may succeed (a lost connection, a deadlock, a timeout)."""

    def __init__(self, reason: str, *, transient: bool = False):
        self.reason = reason
        self.transient = transient
        super().__init__(f"database error: {reason}")
