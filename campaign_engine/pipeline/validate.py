"""Validation of the rule folder: every problem, including templates rendered against a sample
context and product references checked against the bank's product catalogue."""

from __future__ import annotations

import datetime as dt

from jinja2.sandbox import SandboxedEnvironment

from ..errors import Problem, StoreError
from ..evaluation.engine import check_compiles
from ..facts.official import HolidayCalendar
from ..rulebook.loader import Rulebook
from ..rulebook.products import ProductCatalogue, reference_problems, unchecked_references
from ..rulebook.samples import SampleFrame, template_problems
from ..settings import Settings
from ..unsubscribe import unsubscribe_url
from ..vocabulary import Channel
from .calendar_checks import needs_official_calendar, unannounced_year
from .ports import RunStore


def read_catalogue(store: RunStore) -> ProductCatalogue:
    """The product codes and types the store holds; when it cannot be read, a catalogue saying why
    (rule files are checked without a database too: product references then go unchecked, said once)."""
    try:
        return ProductCatalogue.of(store.known_products())
    except StoreError as exc:
        return ProductCatalogue(unavailable=f"{exc.reason}; has `campaign-engine db upgrade` been run?")


def validate_rules(rulebook: Rulebook, templates: SandboxedEnvironment, settings: Settings,
                   catalogue: ProductCatalogue | None = None) -> list[Problem]:
    """Every problem in the rule folder: the loader's, conditions the engine refuses, templates
    rendered against a sample context (with this deployment's SMS signature and opt-out line),
    and with a catalogue, product codes and types no product has."""
    problems = list(rulebook.problems)
    frame = SampleFrame(signature=settings.sms_signature, opt_out=settings.sms_opt_out,
                        unsubscribe_url=unsubscribe_url(settings.public_base_url, settings.secret_key,
                                                        "C00000001", Channel.EMAIL.value))
    for rule in rulebook.rules.values():
        try:
            check_compiles(rule.conditions)
        except Exception as exc:  # the engine refused the compiled condition
            problems.append(Problem(f"the rules engine refuses this condition: {exc}", file=rule.file,
                                    line=rule.line, rule=rule.id, field="conditions"))
            continue
        problems += template_problems(rule, templates, frame)
        if catalogue is not None:
            problems += reference_problems(rule, catalogue)
    return problems


def catalogue_warnings(rulebook: Rulebook, catalogue: ProductCatalogue) -> list[Problem]:
    """What validation could not check, said once: product references when no products are
    loaded yet or the catalogue could not be read."""
    warning = unchecked_references(rulebook.rules.values(), catalogue)
    return [warning] if warning else []


def calendar_warnings(rulebook: Rulebook, holidays: HolidayCalendar, today: dt.date) -> list[Problem]:
    """The official calendar on `today` (the run date), said once when its year is not announced,
    with the rules that will then be reported instead of run (calendar_checks); the others run."""
    year = unannounced_year(today, holidays)
    if year is None:
        return []
    # a rule outside its campaign window on `today` is skipped before it needs any calendar
    blocked = sorted(r.id for r in rulebook.rules.values()
                     if r.enabled and r.active_on(today) and needs_official_calendar(r))
    who = (f"rule(s) {', '.join(blocked)} need it and are reported, not run, until it is in"
           if blocked else "no rule needs it")
    return [Problem(f"the official calendar for {year} is not announced yet: calendar.holiday, "
                    f"calendar.holiday_day, calendar.is_workday and the business days are unknown on {today}; "
                    f"{who} (add the State Council's notice for {year}: python -m "
                    f"campaign_engine.facts.official_update import {year}, or by hand)", file=holidays.source)]
