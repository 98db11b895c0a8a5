from celery import shared_task

from . import services


@shared_task(name="waitlist.offer_freed_time")
def offer_freed_time(freed_id, **kwargs):
    offer = services.freed_time_offer(freed_id=freed_id)
    return offer.pk if offer else None


@shared_task(name="waitlist.sweep")
def sweep(**kwargs):
    return services.waitlist_sweep()
