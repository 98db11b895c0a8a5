"""Platform tasks: thin, ids only."""

import smtplib

from celery import shared_task

from . import alerts


@shared_task(
    name="medspa.email_staff_alert",
    autoretry_for=(OSError, smtplib.SMTPException),
    retry_backoff=30,
    retry_backoff_max=1800,
    max_retries=8,
    acks_late=True,
)
def email_staff_alert(alert_id, **kwargs):
    # Idempotent: an alert already emailed is skipped. A mail server outage retries with backoff; the alert is in
    # the admin's "Needs attention" list either way.
    return alerts.staff_alert_email(alert_id=alert_id)


@shared_task(name="medspa.email_unsent_alerts")
def email_unsent_alerts(**kwargs):
    """Beat: alerts whose email was never sent (its task lost with the broker)."""
    return len(alerts.staff_alerts_email_unsent())
