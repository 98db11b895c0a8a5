"""What the conversation does when a lower app publishes an event (medspa/events.py; wired in
settings.EVENT_HANDLERS). Thin: each calls the conversation's own services."""

from django.utils import timezone

from . import services
from .models import Conversation


def text_received(*, message, decision, alert_staff=False):
    services.conversation_text_received(message=message, decision=decision, alert_staff=alert_staff)


def call_missed(*, number, caller):
    return services.intro_send(
        clinic=number.clinic, phone=caller, origin=Conversation.Origin.MISSED_CALL, sender=number
    )


def message_sent(*, message):
    if message.conversation_id:
        Conversation.objects.filter(pk=message.conversation_id).update(last_outbound_at=timezone.now())


def message_failed(*, message):
    if message.conversation_id:
        services.conversation_text_failed(message=message)


def booking_changed(*, booking):
    services.conversation_booking_changed(booking=booking)


def refund_told(*, payment):
    services.conversation_booking_changed(booking=payment.booking)


def times_offered(*, booking, slots):
    services.conversation_times_offered(booking=booking, slots=slots)


def review_blocked(*, booking):
    """A review request waits for nobody whose conversation went to staff (a complaint, an urgent symptom)."""
    return Conversation.objects.filter(
        clinic=booking.clinic, patient_phone=booking.patient_phone, state=Conversation.State.HANDED_OFF
    ).exists()


def waitlist_offer_made(*, offer, link):
    """A freed time is held for this patient: True when their conversation takes it as the time on offer."""
    return services.conversation_waitlist_offer(offer=offer, link=link)
