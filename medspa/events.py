"""Events: how a lower app lets a higher one react without importing it.

The apps are layered (docs/ARCHITECTURE.md, "Layers"; `.importlinter` enforces it): a lower app never imports a
higher one. When something a lower app owns happens and a higher app must react (a text passed compliance, so the
conversation answers it; a paid booking was cancelled, so payments refunds it), the lower app calls
``publish(name, **data)``. ``EVENTS`` below declares every event and what it carries; ``settings.EVENT_HANDLERS``
names, in one place, the functions that handle each, in the order they run.

Handlers run synchronously, in the publisher's transaction, in the listed order, and their exceptions propagate:
an event is part of the work that published it (a crash rolls both back and the work is retried as a whole).
``publish`` returns the handlers' return values in that order, for the rare publisher that reports an outcome.
"""

from functools import cache

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

EVENTS = {
    # medspa
    "medspa.staff_text": "staff are to be told by text (clinic, to: the clinic's staff mobile, body: a link, never "
    "patient data, key: an idempotency key); messaging queues it from the clinic's number",
    # messaging
    "messaging.text_received": "an inbound text was stored and compliance has decided (message, decision: "
    "opt_out, opt_in, help, opted_out_sender or conversation, alert_staff): the conversation links and answers it",
    "messaging.call_missed": "nobody answered a call to a clinic number (number: the PhoneNumber called, caller: "
    "E.164); returns the intro messages queued, [] if none",
    "messaging.message_sent": "a provider accepted an outbound text (message)",
    "messaging.message_failed": "an outbound text will not be sent without a person (message)",
    # emr
    "emr.busy_times": "the built-in calendar asks when a provider is already booked (provider, start, end); "
    "each handler returns [(start, end), ...]",
    "emr.square_credentials": "the Square Appointments client asks for the clinic's Square account (clinic); a "
    "handler returns {access_token, location_id} or None",
    # bookings
    "bookings.booking_changed": "a booking was confirmed, handed to staff, lost, marked completed or no-show, or "
    "moved in the EMR (booking)",
    "bookings.booking_cancelled": "a booking was cancelled (booking, refund: whether a paid deposit is refunded, "
    "reason)",
    "bookings.booking_moved": "a booking was moved to another time (old, new: bookings)",
    "bookings.patient_email": "the e-mail a patient gave the clinic, for their chart in the EMR (clinic, phone); "
    'each handler returns one or ""',
    "bookings.hold_expired": "a held time (held or awaiting its deposit) passed its expiry unpaid and is free again "
    "(booking)",
    # lifecycle
    "lifecycle.times_offered": "a text after a visit offered the patient open times (booking: the visit, slots: "
    "[{start, end, provider_id, provider}]): the conversation remembers them, so a reply of 1, 2 or 3 books one",
    "lifecycle.consent_asked": "may a treatment-due (marketing) text go to this patient? (clinic, phone); each "
    "handler returns True when it holds the patient's prior express written consent",
    "lifecycle.review_blocked": "must a visit's review request be held back? (booking); a handler returns True when "
    "the patient's conversation went to staff (a complaint, an urgent symptom)",
    # waitlist
    "waitlist.offer_made": "a freed time is held for a waitlisted patient (offer, link: whether the offer text will "
    "carry a deposit link); each handler returns whether the patient's conversation took the offer (False: busy, "
    "the hold is rolled back and the next patient is tried)",
    # payments
    "payments.refund_told": "the patient was told their deposit is refunded (payment)",
}


def publish(event: str, **data) -> list:
    """Run the handlers of ``event`` (settings.EVENT_HANDLERS) in order with ``data``; their results, in order."""
    return [handler(**data) for handler in handlers(event)]


@cache
def handlers(event: str) -> tuple:
    if event not in EVENTS:
        raise LookupError(f"{event!r} is not an event (medspa/events.py EVENTS)")
    return tuple(import_string(path) for path in settings.EVENT_HANDLERS.get(event, ()))


def _settings_changed(setting=None, **kwargs):
    if setting == "EVENT_HANDLERS":
        handlers.cache_clear()


setting_changed.connect(_settings_changed)


def check_handlers() -> list[str]:
    """What is wrong with settings.EVENT_HANDLERS: unknown events, paths that do not import (a system check)."""
    problems = []
    for event, paths in settings.EVENT_HANDLERS.items():
        if event not in EVENTS:
            problems.append(f"EVENT_HANDLERS: {event!r} is not an event")
            continue
        for path in paths:
            try:
                import_string(path)
            except ImportError as exc:
                problems.append(f"EVENT_HANDLERS[{event!r}]: {path} does not import ({exc})")
    return problems
