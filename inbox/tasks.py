"""Inbox tasks: ids only, safe to run twice (the row is claimed before its handler runs)."""

from celery import shared_task

from . import services


@shared_task(name="inbox.process_event", acks_late=True, reject_on_worker_lost=True)
def process_event(event_id, **kwargs):
    return services.event_process(event_id=event_id)


@shared_task(name="inbox.sweep")
def sweep(**kwargs):
    """Beat: events whose task was lost, failed events due for a retry, events whose worker died."""
    return len(services.events_sweep())
