"""The console's screens; importing them registers their routes on console.blueprint.bp."""

from . import core, dashboard, reviews, rules, runs, tasks  # noqa: F401
