"""What the waitlist does when bookings publish an event (medspa/events.py; wired in settings.EVENT_HANDLERS): a
freed time is recorded for the waiting patients, and an offer's booking closes the offer. Thin: each calls the
waitlist's own services, in the publisher's transaction."""

from .models import WaitlistOffer
from .services import entries_booked, freed_time_record, offer_closed


def booking_cancelled(*, booking, refund=False, reason=""):
    """A cancellation, a released hold (a patient who said no to an offer) or the old time of a reschedule."""
    offer_closed(booking=booking, state=WaitlistOffer.State.DECLINED)
    freed_time_record(booking=booking, reason="cancelled")


def hold_expired(*, booking):
    """A hold nobody paid for: its offer (if it was one) is over, and the time goes to the next patient."""
    offer_closed(booking=booking, state=WaitlistOffer.State.EXPIRED)
    freed_time_record(booking=booking, reason="hold expired")


def booking_changed(*, booking):
    """A booking was confirmed (or handed to staff, paid): an offer that held it is taken, the patient's entries
    for that service are done."""
    if booking.status in ("confirmed", "awaiting_staff"):
        offer_closed(booking=booking, state=WaitlistOffer.State.TAKEN)
        entries_booked(booking=booking)
