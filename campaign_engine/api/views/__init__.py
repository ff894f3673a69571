"""The API's blueprints, in registration order."""

from . import audit, customers, drafts, effect, events, health, messages, retries, rules, runs, webhooks

BLUEPRINTS = [health.blp, drafts.blp, rules.blp, events.blp, runs.blp, messages.blp, retries.blp, customers.blp, effect.blp, webhooks.blp, audit.blp]
