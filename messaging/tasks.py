"""Celery tasks: thin, named, ids only (no numbers or texts in task arguments), safe to run twice."""

from celery import shared_task

from . import services, webhooks


@shared_task(name="messaging.send_message", acks_late=True, reject_on_worker_lost=True)
def send_message(message_id, **kwargs):
    # Idempotent: the conditional claim in message_send lets only one run send.
    return services.message_send(message_id=message_id)


@shared_task(name="messaging.send_due_messages")
def send_due_messages(**kwargs):
    """Beat, every few seconds: release texts whose sending window opened or whose retry delay is over."""
    released = services.messages_release_due()
    for pk in released:
        send_message.delay(pk)
    return len(released)


@shared_task(name="messaging.process_webhook_event", acks_late=True, reject_on_worker_lost=True)
def process_webhook_event(event_id, **kwargs):
    # Idempotent: the event row is claimed (pending -> processed) before its handler runs.
    return webhooks.webhook_event_process(event_id=event_id)
