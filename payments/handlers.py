"""What payments does when bookings publish an event (medspa/events.py; wired in settings.EVENT_HANDLERS)."""

from django.utils import timezone

from .models import Payment, PaymentConfig
from .services import payment_refund_request


def booking_cancelled(*, booking, refund, reason):
    """A cancellation within the policy refunds the paid deposit, through the outbox (in the caller's
    transaction)."""
    if not refund:
        return
    payment = Payment.objects.filter(booking=booking, status=Payment.Status.PAID).first()
    if payment is not None and payment.paid_cents:
        payment_refund_request(payment=payment, reason=reason)


def booking_moved(*, old, new):
    """A moved appointment keeps its deposit: the payment follows the booking."""
    Payment.objects.filter(booking=old).update(booking=new, updated_at=timezone.now())


def square_credentials(*, clinic):
    """The clinic's own Square account from its deposit settings, for the Square Appointments EMR client: a dict
    with the access token and location id, or None when the clinic has no token of its own (the platform's
    SQUARE_* account takes deposits for many clinics and books nobody's calendar)."""
    config = PaymentConfig.objects.filter(clinic=clinic).first()
    if config is None or not config.square_access_token:
        return None
    return {"access_token": config.square_access_token, "location_id": config.square_location_id}
