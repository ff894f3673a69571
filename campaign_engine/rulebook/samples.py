"""A rule's templates rendered against the field catalogue's sample context.

The loader leaves a rule whose templates fail here out of the live rulebook (every message
of it would fail the same way); `rules validate` renders again with the deployment's SMS
signature and opt-out line, which can only add a length problem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import jinja2

from ..errors import Problem, TemplateError
from ..rendering.environment import load_template_set, render_message
from .fields import sample_namespaces, sample_product
from ..vocabulary import TASK_CHANNELS
from .model import Rule
from .suggestions import did_you_mean

SAMPLE_UNSUBSCRIBE_URL = "https://bank.example/unsubscribe/sample-token"


@dataclass(frozen=True)
class SampleFrame:
    """What a sent message adds around its template: SMS signature, opt-out line (marketing SMS),
    unsubscribe link (marketing email). The loader's neutral frame adds none of the text."""

    signature: str = ""
    opt_out: str | None = None
    unsubscribe_url: str = SAMPLE_UNSUBSCRIBE_URL


def sample_context(rule: Rule, frame: SampleFrame = SampleFrame()) -> dict[str, Any]:
    """The variables a rule's templates see, with the field catalogue's sample values."""
    context = sample_namespaces(rule.trigger.subject, rule.trigger.event)
    context["rule"] = {"id": rule.id, "name": rule.name, "category": rule.category.value}
    if rule.is_marketing:
        context["unsubscribe_url"] = frame.unsubscribe_url
    if rule.product:
        context["product"] = sample_product(rule.product)
    if any(c in TASK_CHANNELS for c in rule.channels):  # a task's talking points (batch.task_context)
        context["manager"] = {"id": "RM0001", "name": "王经理", "branch": "北京分行", "queue": False}
        context["task"] = {"type": "call", "due_at": "2026-03-11 10:00", "priority": rule.priority}
        context["suitability"] = {"customer_risk_rank": 3, "product_risk_rank": 2, "suitable": True}
    return context


def template_problems(rule: Rule, env: jinja2.Environment, frame: SampleFrame = SampleFrame(),
                      *, channel_parts: bool = True) -> list[Problem]:
    """Why a rule's templates fail against the sample context: unparsable or unusable parts, a
    part that does not render (an unknown variable or filter gets a "did you mean"), and with
    `channel_parts` a channel of the rule that its template has no part for."""
    where: dict[str, Any] = {"file": rule.file, "line": rule.line, "rule": rule.id, "field": "template"}
    context = sample_context(rule, frame)
    try:
        template_set = load_template_set(env, rule.template)
    except TemplateError as exc:
        return [Problem(f"{exc}{_suggestion(exc, context, env)}", **where)]
    problems = []
    for channel in rule.channels:
        if channel.value not in template_set.channels:
            if channel_parts:
                problems.append(Problem(f"template {rule.template} has no {channel.value} part",
                                        **{**where, "field": "channels"}))
            continue
        try:
            render_message(template_set, channel.value, context, signature=frame.signature,
                           opt_out=frame.opt_out if rule.is_marketing else None)
        except TemplateError as exc:
            problems.append(Problem(f"{exc}{_suggestion(exc, context, env)}", **where))
    return problems


_NO_ATTRIBUTE = re.compile(r"has no attribute '(\w+)'")
_UNDEFINED = re.compile(r"^'(\w+)' is undefined")
_NO_FILTER = re.compile(r"No filter named '(\w+)'")
_AT = re.compile(r"\(at: (.*)\)$")


def _suggestion(exc: TemplateError, context: Mapping[str, Any], env: jinja2.Environment) -> str:
    """A "did you mean" for an unknown variable, attribute or filter, from what the sample has."""
    reason = exc.reason
    if found := _NO_FILTER.search(reason):
        return did_you_mean(found[1], env.filters)
    if found := _UNDEFINED.search(reason):
        return did_you_mean(found[1], context)
    if not (found := _NO_ATTRIBUTE.search(reason)):
        return ""
    name = found[1]
    at = _AT.search(reason)
    # the source line names the object: `customer.nam` -> look among customer's fields
    owner = re.search(rf"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.{name}\b", at[1]) if at else None
    if owner:
        value: Any = context
        for part in owner[1].split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if isinstance(value, Mapping):
            match = did_you_mean(name, value)
            return match.replace("'", f"'{owner[1]}.", 1) if match else ""
    return did_you_mean(name, _leaf_names(context))


def _leaf_names(context: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for key, value in context.items():
        names.add(key)
        if isinstance(value, Mapping):
            names |= _leaf_names(value)
    return names
