"""Rule files (YAML) -> validated Rule objects; every problem names file, line, rule and field.

A file holds one rule (a mapping), several (a list, or `---` separated documents).
A broken rule is reported and left out; the other rules of the file and of the
rule folder still load.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from ..errors import Problem, TemplateError
from ..rendering.environment import TemplateSet, build_environment, load_template_set
from ..effect.assignment import holdout_slots
from ..vocabulary import Category, Channel, ConversionType, EventType, OnceMode, SubjectType
from .conditions import parse_conditions
from .cron import parse_crontab
from .fields import fields_in_scope
from .model import Goal, Holdout, Rule, Trigger, iter_predicates
from .samples import template_problems
from .suggestions import did_you_mean

RULE_ID = r"^[a-z0-9][a-z0-9-]{0,63}$"
TEMPLATE_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _cron(value: str) -> None:
    try:
        parse_crontab(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class TriggerSchema(_Strict):
    schedule = fields.String(validate=_cron)
    event = fields.String(validate=validate.OneOf([e.value for e in EventType]))
    subject = fields.String(load_default=SubjectType.CUSTOMER.value,
                            validate=validate.OneOf([s.value for s in SubjectType]))
    # skip official non-working days (weekends not worked, holidays); needs the year's calendar
    workdays_only = fields.Boolean(load_default=False, truthy={True}, falsy={False})

    @validates_schema
    def _one_kind(self, data: Mapping[str, Any], **_: Any) -> None:
        if ("schedule" in data) == ("event" in data):
            raise ValidationError("give exactly one of schedule or event", "schedule")
        if data.get("workdays_only") and "event" in data:
            raise ValidationError("workdays_only is for schedules: an event is handled when it arrives",
                                  "workdays_only")
        if data.get("event") == EventType.LARGE_TRANSACTION and data["subject"] != "customer":
            raise ValidationError("large_transaction concerns one customer: subject must be customer",
                                  "subject")


def _holdout_percent(value: float) -> None:
    if not 1 <= value <= 50:
        raise ValidationError("a holdout is 1 to 50 percent of the rule's customers")
    try:
        holdout_slots(value)
    except ValueError:
        raise ValidationError("a holdout percent has at most two decimals (steps of 0.01)") from None


CONTROL_GROUP_SALT_PREFIX = "control_group:"  # the global control group's salts (settings.ControlGroup)


class HoldoutSchema(_Strict):
    percent = fields.Float(required=True, allow_nan=False, validate=_holdout_percent)
    salt = fields.String(load_default=None, validate=[
        validate.Length(min=1, max=64),
        validate.Regexp(rf"^(?!{CONTROL_GROUP_SALT_PREFIX})", error="that prefix is the control group's")])

    @post_load
    def _holdout(self, data: dict[str, Any], **_: Any) -> Holdout:
        return Holdout(percent=data["percent"], salt=data["salt"])


class GoalSchema(_Strict):
    type = fields.String(required=True, validate=validate.OneOf([t.value for t in ConversionType]))
    product_type = fields.String(load_default=None, validate=validate.Regexp(
        r"^[a-z_]{1,32}$", error="a product type is a word of a-z and _"))
    product_code = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    min_amount = fields.Decimal(load_default=None, allow_nan=False, validate=validate.Range(min=0))
    within_days = fields.Integer(load_default=14, strict=True, validate=validate.Range(min=1, max=90))

    @post_load
    def _goal(self, data: dict[str, Any], **_: Any) -> Goal:
        return Goal(type=ConversionType(data["type"]), within_days=data["within_days"],
                    product_type=data["product_type"], product_code=data["product_code"],
                    min_amount=data["min_amount"])


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _local_date(value: str) -> None:
    """A date of the campaign window: YYYY-MM-DD (rule YAML leaves dates as text, see `_yaml`)."""
    if not _ISO_DATE.match(value):
        raise ValidationError(f"expected a date YYYY-MM-DD, got {value!r}")
    try:
        dt.date.fromisoformat(value)
    except ValueError as exc:
        raise ValidationError(f"{value} is not a date: {exc}") from None


class ActiveSchema(_Strict):
    """`active: {from, until}`: inclusive dates in the configured time zone; either may be omitted."""

    from_ = fields.String(data_key="from", load_default=None, validate=_local_date)
    until = fields.String(load_default=None, validate=_local_date)

    @validates_schema
    def _ordered(self, data: Mapping[str, Any], **_: Any) -> None:
        if data.get("from_") is None and data.get("until") is None:
            raise ValidationError("give from, until or both (YYYY-MM-DD, inclusive)")
        if data.get("from_") and data.get("until") and data["from_"] > data["until"]:
            raise ValidationError(f"until {data['until']} is before from {data['from_']}", "until")

    @post_load
    def _dates(self, data: dict[str, Any], **_: Any) -> dict[str, dt.date | None]:
        return {key: dt.date.fromisoformat(data[name]) if data.get(name) else None
                for key, name in (("from", "from_"), ("until", "until"))}


EVERY_MAX_DAYS = 3660  # about ten years


def _every(value: Any) -> None:
    found = re.fullmatch(r"([0-9]{1,4})d", value) if isinstance(value, str) else None
    if found is None or not 1 <= int(found.group(1)) <= EVERY_MAX_DAYS:
        raise ValidationError(f"every is a number of days, 1d to {EVERY_MAX_DAYS}d (e.g. 30d), got {value!r}")


class RuleSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(
        RULE_ID, error="ids are lower-case letters, digits and '-', at most 64"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default=None)
    enabled = fields.Boolean(load_default=True, truthy={True}, falsy={False})
    category = fields.String(required=True, validate=validate.OneOf([c.value for c in Category]))
    priority = fields.Integer(load_default=50, strict=True, validate=validate.Range(min=0, max=1000))
    trigger = fields.Nested(TriggerSchema, required=True)
    conditions = fields.Raw(required=True)
    channels = fields.List(fields.String(validate=validate.OneOf([c.value for c in Channel])),
                           required=True, validate=validate.Length(min=1))
    template = fields.String(required=True, validate=validate.Regexp(
        TEMPLATE_NAME, error="a template name is letters, digits, '_' and '-'"))
    product = fields.String(load_default=None, validate=validate.Length(min=1, max=32))
    holdout = fields.Nested(HoldoutSchema, load_default=None)
    goal = fields.Nested(GoalSchema, load_default=None)
    active = fields.Nested(ActiveSchema, load_default=None)
    once = fields.String(load_default=None, validate=validate.OneOf([m.value for m in OnceMode]))
    every = fields.Raw(load_default=None, validate=_every)
    campaign = fields.String(load_default=None, validate=validate.Regexp(
        RULE_ID, error="a campaign id is lower-case letters, digits and '-', at most 64"))

    @validates_schema
    def _unique_channels(self, data: Mapping[str, Any], **_: Any) -> None:
        channels = data.get("channels") or []
        if len(set(channels)) != len(channels):
            raise ValidationError("a channel is listed twice", "channels")


def _line_of(node: Any, path: Iterable[Any]) -> int | None:
    """1-based line of the deepest node of `path` that the YAML source locates."""
    line = None
    for key in path:
        try:
            if isinstance(node, CommentedMap) and key in node:
                line = node.lc.key(key)[0] + 1
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(key, int) and key < len(node):
                line = node.lc.item(key)[0] + 1
                node = node[key]
            else:
                break
        except (AttributeError, KeyError, TypeError):
            break
    return line


def _flatten_messages(messages: Any, path: tuple[Any, ...] = ()) -> Iterable[tuple[tuple[Any, ...], str]]:
    if isinstance(messages, dict):
        for key, value in messages.items():
            yield from _flatten_messages(value, path if key == "_schema" else path + (key,))
    elif isinstance(messages, list) and messages and all(isinstance(m, str) for m in messages):
        for message in messages:
            yield path, message
    else:
        yield path, str(messages)


def _field_name(path: tuple[Any, ...]) -> str | None:
    return ".".join(str(p) for p in path) or None


_UNKNOWN_KEY = "Unknown field."


def _suggest_key(path: tuple[Any, ...], message: str) -> str:
    """marshmallow's `Unknown field.` for a mistyped key, with the nearest key of its mapping."""
    if message != _UNKNOWN_KEY or not path or not isinstance(path[-1], str):
        return message
    schema = {(): RuleSchema, ("trigger",): TriggerSchema, ("holdout",): HoldoutSchema,
              ("goal",): GoalSchema, ("active",): ActiveSchema}.get(path[:-1])
    # the keys a file writes: a field's data_key where it has one (`from`, not `from_`)
    hint = did_you_mean(path[-1], [f.data_key or name for name, f in schema().fields.items()]) if schema else ""
    return f"Unknown field{hint}." if hint else message


def _key_lines(raw: Mapping[str, Any], rule: Rule) -> dict[tuple[Any, ...], int]:
    """Lines of the rule's top-level keys, of the keys inside goal/holdout/trigger, and of each
    predicate's key path."""
    lines = {}
    nested = [(key, sub) for key in ("goal", "holdout", "trigger", "active") if isinstance(raw.get(key), Mapping)
              for sub in raw[key]]
    for path in [(key,) for key in raw] + nested + [p.path for p in iter_predicates(rule.conditions)]:
        line = _line_of(raw, path)
        if line is not None:
            lines[path] = line
    return lines


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts and lists (marshmallow wants plain data)."""
    if isinstance(node, Mapping):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _repeat_problems(raw: Mapping[str, Any], data: Mapping[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """What `once`, `every` and `campaign` may not say together or for the rule's trigger (each key
    alone is checked by RuleSchema; a key that failed there, or an unclear trigger, is not judged)."""
    out: list[tuple[tuple[str, ...], str]] = []
    once, every, campaign = data.get("once"), data.get("every"), data.get("campaign")
    if once and every:
        out.append((("every",), "give once or every, not both: every already says how often"))
    trigger = data.get("trigger") or {}
    kind = ("event" if "event" in trigger else "schedule") if ("event" in trigger) != ("schedule" in trigger) \
        else None
    if once == OnceMode.PER_EVENT and kind == "schedule":
        out.append((("once",), "per_event is for event rules: a scheduled rule runs for a date "
                               "(per_run_date, per_campaign, per_occurrence for deposits, or every)"))
    if once == OnceMode.PER_RUN_DATE and kind == "event":
        out.append((("once",), "per_run_date is for scheduled rules: an event rule is once per event "
                               "(per_event), per_campaign, or every"))
    if once == OnceMode.PER_OCCURRENCE and trigger.get("subject", SubjectType.DEPOSIT) != SubjectType.DEPOSIT:
        out.append((("once",), "per_occurrence is once per deposit maturity: it needs subject: deposit"))
    if campaign and once != OnceMode.PER_CAMPAIGN and ("once" in data or "once" not in raw):
        default = (OnceMode.PER_EVENT if kind == "event" else OnceMode.PER_OCCURRENCE
                   if trigger.get("subject") == SubjectType.DEPOSIT else OnceMode.PER_RUN_DATE)
        out.append((("campaign",), "campaign names what once: per_campaign counts under, but the rule "
                                   + (f"says once: {once}" if once else "says every" if every
                                      else f"has no once (its default: {default.value})")))
    return out


def parse_rule(raw: Any, file: str, start_line: int) -> tuple[Rule | None, list[Problem]]:
    """Validate one rule mapping from a rule file."""
    rule_id = raw.get("id") if isinstance(raw, Mapping) and isinstance(raw.get("id"), str) else None

    def problem(path: tuple[Any, ...], reason: str) -> Problem:
        return Problem(reason, file=file, line=_line_of(raw, path) or start_line, rule=rule_id,
                       field=_field_name(path))

    if not isinstance(raw, Mapping):
        return None, [Problem("a rule is a mapping of id, name, trigger, conditions, ...",
                              file=file, line=start_line)]
    problems: list[Problem] = []
    try:
        data = RuleSchema().load(_plain(raw))
    except ValidationError as exc:
        problems = [problem(path, _suggest_key(path, msg)) for path, msg in _flatten_messages(exc.messages)]
        data = exc.valid_data or {}
    problems += [problem(path, reason) for path, reason in _repeat_problems(raw, data)]
    if "trigger" not in data or "conditions" not in raw:
        return None, problems
    trigger = Trigger(subject=SubjectType(data["trigger"].get("subject", SubjectType.CUSTOMER)),
                      schedule=data["trigger"].get("schedule"),
                      event=EventType(data["trigger"]["event"]) if data["trigger"].get("event") else None,
                      workdays_only=bool(data["trigger"].get("workdays_only")))
    node, cond_problems = parse_conditions(raw["conditions"], fields_in_scope(trigger.subject, trigger.event))
    problems += [problem(p.path, p.reason) for p in cond_problems]
    if problems or node is None:
        return None, problems or [problem(("conditions",), "empty conditions")]
    rule = Rule(
        id=data["id"], name=data["name"], enabled=data["enabled"], category=Category(data["category"]),
        priority=data["priority"], trigger=trigger, conditions=node,
        channels=tuple(Channel(c) for c in data["channels"]), template=data["template"],
        product=data["product"], file=file, line=start_line,
        holdout=data["holdout"], goal=data["goal"], definition_hash=definition_hash(raw),
        active_from=(data["active"] or {}).get("from"), active_until=(data["active"] or {}).get("until"),
        once=OnceMode(data["once"]) if data["once"] else None,
        every_days=int(data["every"][:-1]) if data["every"] else None, campaign=data["campaign"],
    )
    return replace(rule, lines=_key_lines(raw, rule)), []


def definition_hash(raw: Any) -> str:
    """sha256 of a rule mapping as canonical JSON: equal for equal rules whatever the comments and layout."""
    body = json.dumps(_plain(raw), ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _yaml() -> YAML:
    """Round-trip YAML (keeps line numbers) that leaves dates as text.

    Operand checks then parse dates themselves, so `2026-02-30` is a located problem
    rather than an exception while the document is built.
    """
    yaml = YAML(typ="rt")
    yaml.constructor.add_constructor("tag:yaml.org,2002:timestamp",
                                     lambda constructor, node: constructor.construct_scalar(node))
    return yaml


# What a rule file may not hold: NUL (PostgreSQL text cannot store it) and lone surrogates (UTF-8
# cannot encode them), raw or escaped in a quoted scalar ("\0", "\ud800"); nesting deeper than
# MAX_DEPTH, which no rule needs and which would overflow the recursive checks below; and aliases
# that expand to more than MAX_NODES nodes (`b: &b [*a, *a, ...]`, ten levels of nine: billions of
# nodes from a few hundred bytes), which every later walk (marshmallow, conditions, hashes) would
# expand. Such a text is refused as a whole (`refusal`): no rule of it is read.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_DEPTH = 64
MAX_NODES = 100_000  # a rule file's nodes with every alias expanded (the starter pack's largest: about 60)


def _unstorable(text: str) -> str | None:
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return ("contains a NUL character (U+0000), which cannot be stored" if found.group() == "\x00"
            else f"contains a lone surrogate (U+{ord(found.group()):04X}), which is not text")


def _hostile(documents: list[Any], file: str) -> Problem | None:
    """The first unstorable key or string, nesting deeper than MAX_DEPTH, an alias inside itself or
    more than MAX_NODES nodes once aliases are expanded, located.

    Iterative, and linear in the document's distinct nodes: an alias is the same container object
    as its anchor, so each container is walked once and its expanded size and depth are memoized by
    identity (a bomb's billions of expanded nodes are counted, never visited)."""
    done: dict[int, tuple[int, int]] = {}  # id(container) -> (nodes when expanded, depth below it)
    open_: set[int] = set()  # containers being walked: the path from the document down
    shared = False  # a container was reached a second time: the document uses aliases
    total = 0
    for doc in documents:
        root_line = doc.lc.line + 1 if hasattr(doc, "lc") else 1
        if not isinstance(doc, (CommentedMap, CommentedSeq)):
            if isinstance(doc, str) and _unstorable(doc):
                return Problem(f"a value {_unstorable(doc)}", file=file, line=root_line)
            continue
        stack: list[tuple[Any, int, bool]] = [(doc, root_line, False)]
        while stack:
            node, line, leaving = stack.pop()
            if leaving:
                open_.discard(id(node))
                children = node.values() if isinstance(node, CommentedMap) else node
                size = 1 + (len(node) if isinstance(node, CommentedMap) else 0)  # itself and its keys
                depth = 1
                for child in children:
                    below = done.get(id(child)) if isinstance(child, (CommentedMap, CommentedSeq)) else None
                    size += below[0] if below else 1
                    depth = max(depth, below[1] + 1) if below else depth
                if depth > MAX_DEPTH:
                    return Problem(f"nested deeper than {MAX_DEPTH} levels", file=file, line=line)
                if size > MAX_NODES:
                    return Problem(f"YAML aliases expand to more than {MAX_NODES:,} nodes" if shared
                                   else f"more than {MAX_NODES:,} nodes", file=file, line=line)
                done[id(node)] = (size, depth)
                continue
            if id(node) in done:
                shared = True
                continue
            open_.add(id(node))
            if len(open_) > MAX_DEPTH:  # the path itself (a chain of aliases nests without nesting text)
                return Problem(f"nested deeper than {MAX_DEPTH} levels", file=file, line=line)
            stack.append((node, line, True))
            keys = list(node) if isinstance(node, CommentedMap) else range(len(node))
            entered = []
            for key in keys:
                if isinstance(key, str) and _unstorable(key):
                    return Problem(f"a key {_unstorable(key)}", file=file, line=_line_of(node, [key]) or line)
                child = node[key]
                child_line = _line_of(node, [key]) or line
                if isinstance(child, str) and _unstorable(child):
                    return Problem(f"a value {_unstorable(child)}", file=file, line=child_line)
                if isinstance(child, (CommentedMap, CommentedSeq)):
                    if id(child) in open_:
                        return Problem("a YAML alias refers to a node that contains it", file=file,
                                       line=child_line)
                    if id(child) in done:
                        shared = True
                    else:
                        entered.append((child, child_line, False))
            stack += reversed(entered)  # in document order: the first problem is the first in the file
        total += done[id(doc)][0]
        if total > MAX_NODES:
            return Problem(f"YAML aliases expand to more than {MAX_NODES:,} nodes" if shared
                           else f"more than {MAX_NODES:,} nodes", file=file, line=root_line)
    return None


def parse_rule_text(text: str, file: str) -> tuple[list[Rule], list[Problem]]:
    """Every rule of one rule file's text, and the problems found (parsed once per text and name:
    the answer is immutable values, and publishing reads the same text several times)."""
    rules, problems, _ = _parse_rule_text(text, file)
    return list(rules), list(problems)


def refusal(text: str, file: str) -> Problem | None:
    """Why a rule file's text is refused as a whole, before any rule of it is read (a NUL or a lone
    surrogate, which cannot be stored; nesting deeper than MAX_DEPTH; aliases expanding to more than
    MAX_NODES nodes), else None. Malformed YAML is not a refusal: it is the file's problem."""
    return _parse_rule_text(text, file)[2]


@functools.lru_cache(maxsize=256)
def _parse_rule_text(text: str, file: str) -> tuple[tuple[Rule, ...], tuple[Problem, ...], Problem | None]:
    rules, problems, refused = _parse(text, file)
    return tuple(rules), tuple(problems), refused


def _parse(text: str, file: str) -> tuple[list[Rule], list[Problem], Problem | None]:
    raw = _UNSTORABLE.search(text)
    if raw is not None:
        refused = Problem(f"the file {_unstorable(raw.group())}", file=file,
                          line=text.count("\n", 0, raw.start()) + 1)
        return [], [refused], refused
    try:
        documents = [d for d in _yaml().load_all(text) if d is not None]
    except RecursionError:
        refused = Problem(f"nested deeper than {MAX_DEPTH} levels", file=file)
        return [], [refused], refused
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "malformed YAML"
        return [], [Problem(f"malformed YAML: {reason}", file=file,
                            line=mark.line + 1 if mark else None)], None
    except (YAMLError, ValueError, TypeError) as exc:
        # e.g. `!!int x`: a tag ruamel cannot build the value for.
        return [], [Problem(f"malformed YAML: {exc}", file=file)], None
    hostile = _hostile(documents, file)
    if hostile is not None:
        return [], [hostile], hostile
    raws: list[tuple[Any, int]] = []
    for doc in documents:
        if isinstance(doc, CommentedSeq):
            raws += [(item, doc.lc.item(i)[0] + 1) for i, item in enumerate(doc)]
        else:
            raws.append((doc, doc.lc.line + 1 if hasattr(doc, "lc") else 1))
    rules, problems = [], []
    for raw, line in raws:
        rule, found = parse_rule(raw, file, line)
        problems += found
        if rule is not None:
            rules.append(rule)
    return rules, problems, None


@dataclass(frozen=True)
class Rulebook:
    """One consistent rule set: the good (live) rules, their compiled templates and every problem.

    Built from rule-file texts and template texts (`build_rulebook`): a folder on disk
    (`load_rulebook`, what authors edit and `rules publish` submits) or the published versions in
    the database (pipeline.publishing), which is what every process executes.
    """

    rules: Mapping[str, Rule]
    problems: tuple[Problem, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)  # file name -> sha256 of its text
    template_sets: Mapping[str, TemplateSet] = field(default_factory=dict)  # rule id -> its templates
    generation: int | None = None  # the published generation it is; None: files on disk
    stopped: Mapping[str, str] = field(default_factory=dict)  # rule id -> who disabled it, when, why

    @property
    def broken(self) -> dict[str, tuple[Problem, ...]]:
        """Rules the source defines that are not live, by id, with why (a file too broken to name
        its rules has its problems in `problems` only)."""
        out: dict[str, list[Problem]] = {}
        for problem in self.problems:
            if problem.rule and problem.rule not in self.rules:
                out.setdefault(problem.rule, []).append(problem)
        return {rule_id: tuple(found) for rule_id, found in out.items()}

    def problems_for(self, rule_id: str) -> tuple[Problem, ...]:
        """The problems naming this rule."""
        return tuple(p for p in self.problems if p.rule == rule_id)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256("".join(f"{k}:{v}" for k, v in sorted(self.files.items())).encode()).hexdigest()[:16]

    def enabled(self) -> list[Rule]:
        return [r for r in self.rules.values() if r.enabled]

    def get(self, rule_id: str) -> Rule | None:
        return self.rules.get(rule_id)

    def template_set(self, rule_id: str) -> TemplateSet:
        """The compiled templates of a rule (TemplateError when the rulebook was built without them)."""
        found = self.template_sets.get(rule_id)
        if found is None:
            raise TemplateError(self.rules[rule_id].template if rule_id in self.rules else rule_id, None,
                                "no templates were loaded for this rule")
        return found


def template_texts(templates: Mapping[str, str], name: str) -> dict[str, str]:
    """The texts of one template folder (`<name>/...`) out of all templates' texts."""
    prefix = f"{name}/"
    return {path: text for path, text in templates.items() if path.startswith(prefix)}


def content_hash(rule: Rule, templates: Mapping[str, str]) -> str:
    """A rule version's identity: what the rule says (its YAML mapping, not its comments or layout)
    and the exact text of each of its templates."""
    body = json.dumps({"rule": rule.definition_hash, "templates": dict(sorted(templates.items()))},
                      ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def build_rulebook(files: Mapping[str, str], templates: Mapping[str, str] | None = None, *,
                   templates_label: str = "the templates") -> Rulebook:
    """Rule files' texts (name -> text) and templates' texts (`<template>/<part>` -> text) -> Rulebook.

    With `templates`, a rule is live only when its template folder exists and its templates render
    against the sample context (samples.template_problems); it then carries its content hash.
    """
    env = environment_for(templates) if templates is not None else None
    rules: dict[str, Rule] = {}
    sets: dict[str, TemplateSet] = {}
    problems: list[Problem] = []
    hashes: dict[str, str] = {}
    for name, text in sorted(files.items()):
        hashes[name] = hashlib.sha256(text.encode()).hexdigest()
        found, found_problems = parse_rule_text(text, name)
        problems += found_problems
        for rule in found:
            if rule.id in rules:
                first = rules[rule.id]
                problems.append(Problem(f"duplicate rule id (first defined in {first.file}:{first.line})",
                                        file=name, line=rule.line, rule=rule.id, field="id"))
                continue
            if templates is not None and env is not None:
                own = template_texts(templates, rule.template)
                if not own:
                    problems.append(Problem(f"no template folder {rule.template}/ in {templates_label}",
                                            file=name, line=rule.line, rule=rule.id, field="template"))
                    continue
                # a missing channel part is not a failure: that channel is suppressed at run time
                unrendered = template_problems(rule, env, channel_parts=False)
                if unrendered:
                    problems += unrendered
                    continue
                sets[rule.id] = load_template_set(env, rule.template)
                rule = replace(rule, content_hash=content_hash(rule, own))
            rules[rule.id] = rule
    return Rulebook(rules, tuple(problems), hashes, sets)


def environment_for(templates: Mapping[str, str]) -> Any:
    """The sandboxed environment over these template texts, one per distinct set of texts (Jinja
    then compiles each template once, however often the same texts are built into a rulebook)."""
    return _environment(tuple(sorted(templates.items())))


@functools.lru_cache(maxsize=256)
def _environment(items: tuple[tuple[str, str], ...]) -> Any:
    return build_environment(dict(items))


def read_templates(templates_dir: Path) -> tuple[dict[str, str], list[Problem]]:
    """Every `*.j2` file under a template folder, by its path relative to it (`birthday/sms.txt.j2`)."""
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    if not templates_dir.is_dir():
        return texts, problems
    for path in sorted(p for p in templates_dir.rglob("*.j2") if p.is_file()):
        name = path.relative_to(templates_dir).as_posix()
        try:
            texts[name] = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(f"cannot read template: {exc}", file=name))
    return texts, problems


def read_rule_files(rules_dir: Path, only: Iterable[Path] | None = None) -> tuple[dict[str, str], list[Problem]]:
    """The text of every `*.yaml`/`*.yml` file under rules_dir (or of the files `only`), by name."""
    texts: dict[str, str] = {}
    problems: list[Problem] = []
    if only is None:
        if not rules_dir.is_dir():
            return texts, [Problem(f"rule folder {rules_dir} does not exist")]
        paths = sorted(p for p in rules_dir.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    else:
        paths = list(only)
    for path in paths:
        try:
            name = path.resolve().relative_to(rules_dir.resolve()).as_posix()
        except ValueError:
            name = path.name
        try:
            texts[name] = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(f"cannot read: {exc}", file=name))
    return texts, problems


def load_rulebook(rules_dir: Path, templates_dir: Path | None = None) -> Rulebook:
    """Load every `*.yaml`/`*.yml` file under rules_dir, sorted by name (with `templates_dir`, their
    templates too: see build_rulebook)."""
    files, problems = read_rule_files(rules_dir)
    if not rules_dir.is_dir():
        return Rulebook({}, tuple(problems))
    templates = None
    if templates_dir is not None:
        templates, template_problems_ = read_templates(templates_dir)
        problems += template_problems_
    book = build_rulebook(files, templates, templates_label=str(templates_dir))
    return replace(book, problems=tuple(problems) + book.problems)
