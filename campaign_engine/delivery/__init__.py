"""Delivery: channels that reach customers, and the outbox worker that feeds them.

Owns the Channel interface (channel), the channel classes and their registry by type
(channels/), the outbox worker (worker), retry decisions (retry), per-channel send
rates in this process or in Redis (send_rates), the contact policy's last look before
sending (presend), and the one place a worker is built from settings (factory).

May import: errors, clock, settings, vocabulary, policy, unsubscribe, and store
functions (claims, holdbacks, suppression: the SQL lives there; SQLAlchemy appears
here only as a type); redis only in send_rates. Not Flask, Celery, the pipeline or any
entry point (api, cli, distributed, scheduler): they import delivery, never the reverse.
"""
