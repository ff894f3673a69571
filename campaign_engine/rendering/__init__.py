"""Rendering of campaign messages: Jinja2 filters, SMS composition and templates.

Owns the sandboxed Jinja2 environment and template sets (environment), the bank's
filters (filters) and SMS signature, opt-out text and segments (sms).

Pure core: may import the standard library, Jinja2, campaign_engine.errors and .masking. Never a
web, database, queue, scheduler or network library, or an entry point (tests/test_architecture.py).
"""

from .environment import (
    PARTS,
    RenderedMessage,
    TemplateSet,
    build_environment,
    load_template_set,
    render_message,
)
from .filters import (
    FILTERS,
    cn_date,
    mask_account,
    mask_mobile,
    money,
    percent,
    salutation,
)
from .sms import MAX_SMS_CHARS, SmsLength, compose_sms, measure_sms

__all__ = [
    "FILTERS",
    "MAX_SMS_CHARS",
    "PARTS",
    "RenderedMessage",
    "SmsLength",
    "TemplateSet",
    "build_environment",
    "cn_date",
    "compose_sms",
    "load_template_set",
    "mask_account",
    "mask_mobile",
    "measure_sms",
    "money",
    "percent",
    "render_message",
    "salutation",
]
