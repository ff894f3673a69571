"""Pure: derived fields and the fact namespaces that conditions and templates see.

Owns the derived fields (age, days_to_birthday, days_to_lunar_birthday, days_to_maturity,
payout_date, business_days_to_maturity, risk_rank), the customer/deposit/product/calendar
namespaces, the lunar calendar (lunar), the official holidays and working days (official), and
the one conversion of a value to what the rules engine compares (namespaces.engine_value).

Pure core: may import the standard library, ruamel.yaml (the holiday file) and
campaign_engine.errors / campaign_engine.vocabulary. Never a web, database, queue,
scheduler or network library, durable-rules, or an entry point (tests/test_architecture.py).
"""

from .derived import age, birth_mmdd, birthday_mmdd_window, days_to_birthday, days_to_maturity
from .calendar import HolidayCalendar, calendar_facts, load_holidays
from .namespaces import FactSet, customer_facts, deposit_facts, flatten_facts, product_facts

__all__ = [
    "age", "birth_mmdd", "birthday_mmdd_window", "days_to_birthday", "days_to_maturity",
    "HolidayCalendar", "calendar_facts", "load_holidays",
    "FactSet", "customer_facts", "deposit_facts", "flatten_facts", "product_facts",
]
