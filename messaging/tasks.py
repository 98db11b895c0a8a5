"""Celery tasks: thin, named, ids only (no numbers or texts in task arguments), safe to run twice.

Webhook events are processed by the inbox's task (``inbox.process_event``), which runs the handlers registered in
``messaging.webhooks``."""

from celery import shared_task
from django.utils import timezone

from . import provisioning, services


@shared_task(name="messaging.send_message", acks_late=True, reject_on_worker_lost=True)
def send_message(message_id, **kwargs):
    # Idempotent: the conditional claim in message_send lets only one run send.
    return services.message_send(message_id=message_id)


@shared_task(name="messaging.send_due_messages")
def send_due_messages(**kwargs):
    """Beat, every few seconds: release texts whose sending window opened or whose retry delay is over."""
    released = services.messages_release_due()
    for pk in released:
        services.send_enqueue(pk)
    return len(released)


@shared_task(name="messaging.reconcile_messages")
def reconcile_messages(**kwargs):
    """Beat, every 30 s: texts stuck in queued (task lost), sending or unknown (worker killed, write lost, read
    timeout) are enqueued again, settled by asking the provider, or shown to staff."""
    return {outcome: len(ids) for outcome, ids in services.messages_reconcile().items()}


@shared_task(name="messaging.tendlc_refresh")
def tendlc_refresh(**kwargs):
    """Beat, every 10 min: each 10DLC registration in progress takes its next step at Telnyx (brand verified ->
    campaign -> active numbers assigned); a failure backs off and is shown to staff."""
    return provisioning.tendlc_refresh_due(now=timezone.now())
