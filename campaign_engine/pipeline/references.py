"""The customer or product an event names, checked against the bank's data before its run is
recorded: an event about a customer or product that does not exist is bad input (an error naming
the field), never an empty run."""

from __future__ import annotations

from ..errors import EventPayloadError, Problem
from ..events import Event
from ..rulebook.products import ProductCatalogue
from ..rulebook.suggestions import did_you_mean
from ..vocabulary import EventType
from .ports import RunStore
from .services import Services


def check_event_references(services: Services, event: Event) -> None:
    """Raise EventPayloadError when the event names a customer or product the bank does not have.

    An event id that has a run already is not checked again: its replay answers with that run
    (or a conflict when the payload differs), whatever the data holds by now.
    """
    if event.type not in (EventType.LARGE_TRANSACTION, EventType.RATE_CHANGE):
        return  # a product launch names a new product
    store = services.store
    if store.find_event_run(event.key) is not None:
        return
    problems = event_reference_problems(store, event)
    if problems:
        raise EventPayloadError(problems, what=f"{event.type} event")


def event_reference_problems(store: RunStore, event: Event) -> list[Problem]:
    """A problem per customer id, product code or product type of the event that the data lacks."""
    data = event.data
    if event.type is EventType.LARGE_TRANSACTION:
        customer_id = str(data["customer_id"])
        if store.customer_exists(customer_id):
            return []
        return [Problem(f"no customer has the id {customer_id!r}", field="customer_id")]
    if event.type is not EventType.RATE_CHANGE:
        return []
    catalogue = ProductCatalogue.of(store.known_products())
    empty = "" if catalogue.codes else " (no products are loaded yet)"
    problems = []
    for field, known, what in (("product_code", catalogue.codes, "code"), ("product_type", catalogue.types, "type")):
        value = data.get(field)
        if value is not None and value not in known:
            problems.append(Problem(f"no product has the {what} {value!r}{did_you_mean(value, known) or empty}",
                                    field=field))
    return problems
