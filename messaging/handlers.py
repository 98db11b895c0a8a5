"""What messaging does when a lower app publishes an event (medspa/events.py; wired in settings.EVENT_HANDLERS)."""

from . import services
from .models import Message


def staff_text(*, clinic, to, body, key):
    """A notice to the clinic's staff mobile, from the clinic's number. A notice like any other: it waits for the
    sending window (the email goes at once) and a number that texted STOP gets nothing."""
    return services.message_queue(clinic=clinic, to=to, body=body, kind=Message.Kind.NOTICE, idempotency_key=key)
