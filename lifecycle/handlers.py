"""What lifecycle does when bookings publish an event (medspa/events.py; wired in settings.EVENT_HANDLERS). They
run in the publisher's transaction: a booking cancelled, moved or ended changes its texts atomically with it."""

from . import services


def booking_changed(*, booking):
    services.booking_followed(booking=booking)


def booking_cancelled(*, booking, refund, reason):
    services.texts_cancel(booking=booking, reason="booking cancelled")


def booking_moved(*, old, new):
    services.texts_move(old=old, new=new)
