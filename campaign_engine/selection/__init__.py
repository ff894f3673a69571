"""Pure: which candidates a rule needs read from the database for a date."""

from .plan import CandidatePlan, plan_candidates

__all__ = ["CandidatePlan", "plan_candidates"]
