"""Condition evaluation: a pure compiler and explainer, and the durable-rules engine."""

from .explain import Outcome, explain

__all__ = ["Outcome", "explain"]
