"""What bookings answers when a lower app publishes an event (medspa/events.py; wired in settings.EVENT_HANDLERS)."""

from .models import Booking


def busy_times(*, provider, start, end):
    """The built-in calendar's booked intervals: the provider's active bookings overlapping [start, end)."""
    return [(b.start, b.end) for b in Booking.objects.overlapping(provider=provider, start=start, end=end)]
