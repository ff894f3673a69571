"""The console's screens; importing them registers their routes on console.blueprint.bp."""

from . import calendar, core, customers, dashboard, effect, messages, reviews, rules, runs, tasks  # noqa: F401
