"""Pure: which candidates a rule needs read from the database for a date.

Owns the candidate plan (plan.CandidatePlan): the filters a rule's conditions allow
pushing into SQL. The SQL itself is the store's (store/candidates.py).

Pure core: may import the standard library, the rest of the pure core (rulebook, facts,
evaluation's explain) and campaign_engine.vocabulary. Never SQLAlchemy or any other web,
database, queue, scheduler or network library, or an entry point (tests/test_architecture.py).
"""

from .plan import CandidatePlan, plan_candidates

__all__ = ["CandidatePlan", "plan_candidates"]
