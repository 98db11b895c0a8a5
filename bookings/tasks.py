from celery import shared_task

from . import services


@shared_task(name="bookings.expire_holds")
def expire_holds(**kwargs):
    return services.bookings_expire_holds()
