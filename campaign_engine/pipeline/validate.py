"""Validation of the rule folder: every problem, including templates rendered against a sample context."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict

from jinja2.sandbox import SandboxedEnvironment

from ..errors import Problem, TemplateError
from ..evaluation.engine import check_compiles
from ..facts.namespaces import product_facts
from ..rendering.environment import load_template_set, render_message
from ..rulebook.fields import sample_namespaces
from ..rulebook.loader import Rulebook
from ..settings import Settings
from ..unsubscribe import unsubscribe_url
from ..vocabulary import Channel


class _Where(TypedDict):
    """Where a rule's problem is: the Problem keyword arguments naming the rule."""

    file: str
    line: int
    rule: str


def validate_rules(rulebook: Rulebook, templates: SandboxedEnvironment, settings: Settings) -> list[Problem]:
    """Every problem in the rule folder, including templates rendered against a sample context."""
    problems = list(rulebook.problems)
    for rule in rulebook.rules.values():
        where: _Where = {"file": rule.file, "line": rule.line, "rule": rule.id}
        try:
            check_compiles(rule.conditions)
        except Exception as exc:  # the engine refused the compiled condition
            problems.append(Problem(f"the rules engine refuses this condition: {exc}", field="conditions",
                                    **where))
            continue
        try:
            template_set = load_template_set(templates, rule.template)
        except TemplateError as exc:
            problems.append(Problem(str(exc), field="template", **where))
            continue
        context = sample_namespaces(rule.trigger.subject, rule.trigger.event)
        context["rule"] = {"id": rule.id, "name": rule.name, "category": rule.category.value}
        if rule.is_marketing:
            context["unsubscribe_url"] = unsubscribe_url(settings.public_base_url, settings.secret_key,
                                                         "C00000001", Channel.EMAIL.value)
        if rule.product:
            context["product"] = product_facts(
                {"product_code": rule.product, "name": "示例产品", "type": "wealth", "risk_level": "R2",
                 "rate": 2.5, "min_amount": 10000, "launch_date": dt.date(2026, 1, 1)})
        for channel in rule.channels:
            if channel.value not in template_set.channels:
                problems.append(Problem(f"template {rule.template} has no {channel.value} part",
                                        field="channels", **where))
                continue
            try:
                render_message(template_set, channel.value, context, signature=settings.sms_signature,
                               opt_out=settings.sms_opt_out if rule.is_marketing else None)
            except TemplateError as exc:
                problems.append(Problem(str(exc), field="template", **where))
    return problems
