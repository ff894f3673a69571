"""Condition evaluation: a pure compiler and explainer, and the durable-rules engine.

Owns condition tree -> durable-rules ruleset (compiler, pure), the same semantics in
Python for preview and run-wide folding (explain, pure), and the engine host (engine).

compiler and explain are pure core: the standard library, rulebook, facts and
campaign_engine.errors / campaign_engine.vocabulary only. engine.py is the only module
of the project that imports durable-rules. Nothing here imports a web, database, queue,
scheduler or network library, or an entry point; this __init__ imports no engine, so
importing the compiler never loads durable-rules (tests/test_architecture.py).
"""

from .explain import Outcome, explain

__all__ = ["Outcome", "explain"]
