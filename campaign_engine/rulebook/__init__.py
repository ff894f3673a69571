"""Rule YAML -> validated, immutable rule objects."""

from .loader import Rulebook, load_rulebook, parse_rule_text
from .model import All, AnyOf, FieldRef, Node, Not, Predicate, Rule, Trigger, referenced_fields

__all__ = ["Rulebook", "load_rulebook", "parse_rule_text", "All", "AnyOf", "FieldRef", "Node", "Not",
           "Predicate", "Rule", "Trigger", "referenced_fields"]
