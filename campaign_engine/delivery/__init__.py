"""Delivery: channels that reach customers, and the outbox worker that feeds them."""
