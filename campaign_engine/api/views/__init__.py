"""The API's blueprints, in registration order."""

from . import customers, events, health, messages, rules, runs, webhooks

BLUEPRINTS = [health.blp, rules.blp, events.blp, runs.blp, messages.blp, customers.blp, webhooks.blp]
