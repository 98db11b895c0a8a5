"""The sandbox checkout (``/pay/<token>/``) and the thank-you page Square and the sandbox return to.

The sandbox page is for development and demos: clearly marked as a test payment, no card, and its button records
a payment event exactly like a Square ``payment.updated`` COMPLETED webhook, processed by the same code. It answers
404 unless test payments are enabled (PAYMENTS_SANDBOX_ENABLED, on by default only with DEBUG). Tokens are 32
random URL-safe characters; once paid, the page only says so.
"""

from django.http import Http404
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from . import services
from .models import Payment, Provider


def _payment(token) -> Payment:
    payment = (
        Payment.objects.select_related("clinic", "booking", "booking__service", "booking__provider")
        .filter(public_token=token)
        .first()
    )
    if payment is None:
        raise Http404("No such payment link.")
    return payment


@require_http_methods(["GET", "POST"])
def sandbox_checkout(request, token):
    payment = _payment(token)
    if payment.provider != Provider.SANDBOX or not services.sandbox_enabled():
        raise Http404("No such payment link.")
    expired = payment.expires_at is not None and payment.expires_at <= timezone.now()
    if request.method == "POST" and payment.status == Payment.Status.CREATED and not expired:
        services.sandbox_pay(payment=payment)
        return redirect("payments:thanks", token=token)
    booking = payment.booking
    context = {
        "payment": payment,
        "clinic": payment.clinic,
        "booking": booking,
        "start": timezone.localtime(booking.start, payment.clinic.tz),
        "expires": timezone.localtime(payment.expires_at, payment.clinic.tz) if payment.expires_at else None,
        "expired": expired,
        "paid": payment.status != Payment.Status.CREATED,
    }
    return render(request, "payments/sandbox_checkout.html", context, status=200)


def thanks(request, token):
    payment = _payment(token)
    payment.booking.refresh_from_db()
    context = {
        "payment": payment,
        "clinic": payment.clinic,
        "booking": payment.booking,
        "start": timezone.localtime(payment.booking.start, payment.clinic.tz),
    }
    return render(request, "payments/thanks.html", context)
