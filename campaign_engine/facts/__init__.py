"""Pure: derived fields and the fact namespaces that conditions and templates see."""

from .derived import age, birth_mmdd, birthday_mmdd_window, days_to_birthday, days_to_maturity
from .calendar import HolidayCalendar, calendar_facts, load_holidays
from .namespaces import FactSet, customer_facts, deposit_facts, flatten_facts, product_facts

__all__ = [
    "age", "birth_mmdd", "birthday_mmdd_window", "days_to_birthday", "days_to_maturity",
    "HolidayCalendar", "calendar_facts", "load_holidays",
    "FactSet", "customer_facts", "deposit_facts", "flatten_facts", "product_facts",
]
