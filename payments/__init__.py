"""Payments, Square payment links and webhooks, the local sandbox checkout, the outbox."""
