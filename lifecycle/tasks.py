"""Celery tasks: thin, named, ids only, safe to run twice."""

from celery import shared_task

from . import services


@shared_task(name="lifecycle.sweep")
def sweep(**kwargs):
    """Beat, every 30 s: queue the texts whose send time came, from their rows (a lost Redis loses nothing)."""
    return len(services.texts_sweep())


@shared_task(name="lifecycle.send_text", acks_late=True, reject_on_worker_lost=True)
def send_text(text_id, **kwargs):
    # Idempotent: the conditional claim lets one run send, and messaging's idempotency key sends once.
    return services.text_send(text_id=text_id)


@shared_task(name="lifecycle.emr_sync")
def emr_sync(**kwargs):
    """Beat, every 15 minutes: the next days' bookings checked against the EMR."""
    return services.emr_sync()
