"""The API's blueprints, in registration order."""

from . import audit, customers, drafts, effect, events, health, managers, messages, retries, rules, runs, tasks, webhooks

BLUEPRINTS = [health.blp, drafts.blp, rules.blp, events.blp, runs.blp, messages.blp, retries.blp, customers.blp, managers.blp, effect.blp, tasks.blp, webhooks.blp, audit.blp]
