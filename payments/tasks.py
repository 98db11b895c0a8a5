"""Payment tasks: thin, ids only, safe to run twice."""

from celery import shared_task

from . import services


@shared_task(name="payments.process_payment_event", acks_late=True, reject_on_worker_lost=True)
def process_payment_event(event_id, **kwargs):
    # Idempotent: the event row is locked and must still be pending.
    return services.payment_event_process(event_id=event_id)


@shared_task(name="payments.run_outbox_item", acks_late=True, reject_on_worker_lost=True)
def run_outbox_item(item_id, **kwargs):
    # Idempotent: the row is claimed with a lease; a step that failed transiently is re-dated, and the sweep runs it.
    return services.outbox_run(item_id=item_id)


@shared_task(name="payments.outbox_sweep")
def outbox_sweep(**kwargs):
    """Beat: steps whose retry time came, and steps whose worker died mid-run (expired lease)."""
    due = services.outbox_due()
    for pk in due:
        run_outbox_item.delay(pk)
    return len(due)
