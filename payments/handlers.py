"""What payments does when bookings publish an event (medspa/events.py; wired in settings.EVENT_HANDLERS)."""

from django.utils import timezone

from .models import Payment
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
