"""Rule YAML -> validated, immutable rule objects.

Owns the rule format (loader, conditions, model), the field catalogue a condition or
template may use (fields), the one crontab parser (cron), test-rendering a rule's templates
against the sample context (samples), product references checked against a product catalogue
passed in as a value (products) and "did you mean" (suggestions).

Pure core: may import the standard library, marshmallow, ruamel.yaml, Jinja2, campaign_engine.errors,
campaign_engine.vocabulary and campaign_engine.rendering. Never a web, database, queue, scheduler or
network library, durable-rules, or an entry point (tests/test_architecture.py).
"""

from .loader import Rulebook, load_rulebook, parse_rule_text
from .model import All, AnyOf, FieldRef, Node, Not, Predicate, Rule, Trigger, referenced_fields

__all__ = ["Rulebook", "load_rulebook", "parse_rule_text", "All", "AnyOf", "FieldRef", "Node", "Not",
           "Predicate", "Rule", "Trigger", "referenced_fields"]
