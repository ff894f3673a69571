"""Build the pipeline's dependencies once per entry point (CLI, API, scheduler, worker)."""

from __future__ import annotations

from sqlalchemy import inspect

from .errors import ConfigError, Problem
from .evaluation.engine import RuleEngine
from .facts.calendar import load_holidays
from .pipeline import Services
from .rendering.environment import build_environment
from .rulebook.loader import load_rulebook
from .settings import Settings
from .store.db import make_engine


def open_services(settings: Settings, *, check_schema: bool = True) -> Services:
    """Database engine, rule snapshot, rules engine, templates and holiday calendar."""
    db = make_engine(settings.database_url)
    if check_schema and not inspect(db).has_table("alembic_version"):
        db.dispose()
        raise ConfigError([Problem("the database has no schema yet: run `campaign-engine db upgrade`",
                                   field="database_url")], what="database")
    rulebook = load_rulebook(settings.rules_dir, settings.templates_dir)
    return Services(settings=settings, db=db, rulebook=rulebook, engine=RuleEngine(rulebook.rules.values()),
                    templates=build_environment(settings.templates_dir),
                    holidays=load_holidays(settings.holidays_file))
