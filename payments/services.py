"""Deposit rules: the payment link for a held booking, what a payment event means, the outbox that turns a
completed payment into a confirmed booking and a confirmation text, and refunds.

The chain after a payment: ``payment_completed`` marks the payment paid and writes an outbox row (confirm the
booking) in one transaction; ``outbox_run`` confirms it through ``bookings.services.booking_confirm`` (which writes
the EMR appointment exactly once) and, in the transaction that closes that row, writes the next one (send the
confirmation). A payment for a time that is gone is refunded the same way. Every step is idempotent and claimed
with a lease, so a crash anywhere resumes (the periodic sweep) and never doubles.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from prometheus_client import Counter

from bookings.models import Booking
from bookings.services import (
    BookingStateError,
    SlotUnavailable,
    booking_attach_deposit,
    booking_confirm,
    booking_confirmation_send,
    booking_revive,
)
from emr.base import EmrError
from medspa.alerts import staff_alert
from medspa.models import StaffAlert, format_cents

from .backends.base import LinkRequest, PaymentBackend, PaymentError
from .models import OutboxItem, Payment, PaymentConfig, PaymentEvent, Provider

logger = logging.getLogger(__name__)

PAYMENT_EVENTS = Counter(
    "medspa_payment_events_total", "Payment events by provider and outcome.", ["provider", "outcome"]
)
OUTBOX_STEPS = Counter("medspa_outbox_steps_total", "Outbox steps by kind and outcome.", ["kind", "outcome"])

LEASE = timedelta(minutes=5)
RETRY_DELAYS = [10, 30, 120, 600, 1800, 3600]  # seconds before attempts 2..7
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1


class PaymentConfigError(Exception):
    """No payment provider can be used for this clinic (for example the sandbox in production)."""


# --- Providers --------------------------------------------------------------------------------------------------


def sandbox_enabled() -> bool:
    return bool(settings.PAYMENTS_SANDBOX_ENABLED)


def _config(clinic) -> PaymentConfig | None:
    return PaymentConfig.objects.filter(clinic=clinic).first()


def payment_provider(*, clinic, config: PaymentConfig | None = None) -> str:
    """``square`` when the clinic (or the platform) has Square credentials or chose Square, else ``sandbox``.
    ``config``: the clinic's PaymentConfig when the caller already has it."""
    config = config or _config(clinic)
    if config is not None and config.provider:
        return config.provider
    if (config is not None and config.square_access_token) or settings.SQUARE_ACCESS_TOKEN:
        return Provider.SQUARE
    return Provider.SANDBOX


def payment_backend(*, clinic, provider: str = "", public_token: str = "") -> PaymentBackend:
    """The backend for a clinic: its own Square token and location, else the platform's (SQUARE_*)."""
    config = _config(clinic)
    provider = provider or payment_provider(clinic=clinic, config=config)
    if provider == Provider.SANDBOX:
        if not sandbox_enabled():
            raise PaymentConfigError("Test payments are off in production and no Square account is configured.")
        from .backends.sandbox import SandboxBackend

        return SandboxBackend(public_token=public_token)
    from .backends.square import SquareBackend

    token = (config.square_access_token if config else "") or settings.SQUARE_ACCESS_TOKEN
    location = (config.square_location_id if config else "") or settings.SQUARE_LOCATION_ID
    if not token or not location:
        raise PaymentConfigError("Square needs an access token and a location id (clinic or SQUARE_* settings).")
    return SquareBackend(
        access_token=token,
        location_id=location,
        base_url=settings.SQUARE_BASE_URL,
        environment=settings.SQUARE_ENVIRONMENT,
    )


# --- Requesting a deposit ---------------------------------------------------------------------------------------


def is_returning_client(*, clinic, phone: str) -> bool:
    """A patient with a past confirmed booking at this clinic (deposits may be for new clients only)."""
    return Booking.objects.for_clinic(clinic).filter(patient_phone=phone, status=Booking.Status.CONFIRMED).exists()


def deposit_amount(*, booking) -> int:
    new_client = not is_returning_client(clinic=booking.clinic, phone=booking.patient_phone)
    return booking.service.deposit_for(new_client=new_client)


def deposit_request(*, booking_id: int, now=None) -> Payment:
    """The payment link for a held booking's deposit, created once: a repeat (or a retry after a provider error)
    returns the same payment and, through the idempotency key derived from the booking, the same link.

    The held time is kept until the link expires (PAYMENTS_LINK_MINUTES). The link's name carries the clinic and
    the service name only. Raises ``PaymentError`` (``transient``: try again) or ``BookingStateError``."""
    now = now or timezone.now()
    booking = Booking.objects.select_related("clinic", "service").get(pk=booking_id)
    payment = Payment.objects.filter(booking=booking).first()
    if payment is not None and payment.link_url:
        return payment
    if booking.status not in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
        raise BookingStateError(f"booking {booking.pk} is {booking.status}")
    clinic = booking.clinic
    if payment is None:
        amount = deposit_amount(booking=booking)
        if amount <= 0:
            raise BookingStateError(f"booking {booking.pk} needs no deposit")
        config = _config(clinic)
        try:
            with transaction.atomic():
                payment = Payment.objects.create(
                    clinic=clinic,
                    booking=booking,
                    provider=payment_provider(clinic=clinic, config=config),
                    amount_cents=amount,
                    currency=config.currency if config else "USD",
                    idempotency_key=f"deposit-{booking.pk}-{int(booking.created_at.timestamp())}",
                    expires_at=now + timedelta(minutes=settings.PAYMENTS_LINK_MINUTES),
                )
        except IntegrityError:  # a concurrent request created it
            payment = Payment.objects.get(booking=booking)
    backend = payment_backend(clinic=clinic, provider=payment.provider, public_token=payment.public_token)
    link = backend.create_link(
        LinkRequest(
            idempotency_key=payment.idempotency_key,
            name=f"{clinic.name}: {booking.service.name} deposit",
            amount_cents=payment.amount_cents,
            currency=payment.currency,
            buyer_phone=booking.patient_phone,
            redirect_url=settings.PUBLIC_BASE_URL + reverse("payments:thanks", args=[payment.public_token]),
            note=f"Deposit, booking {booking.pk}",
        )
    )
    Payment.objects.filter(pk=payment.pk).update(
        link_id=link.link_id, link_url=link.url, order_id=link.order_id, updated_at=timezone.now()
    )
    booking_attach_deposit(
        booking_id=booking.pk, deposit_cents=payment.amount_cents, hold_expires_at=payment.expires_at
    )
    logger.info("deposit link created payment=%s booking=%s provider=%s", payment.pk, booking.pk, payment.provider)
    payment.refresh_from_db()
    return payment


# --- Events (Square webhooks and sandbox checkouts) ---------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEvent:
    provider: str
    event_id: str
    event_type: str
    payload: dict


def payment_event_record(event: ReceivedEvent) -> PaymentEvent | None:
    """Store the event once and hand it to a task after commit. None for a duplicate (nothing changes)."""
    try:
        with transaction.atomic():
            row = PaymentEvent.objects.create(
                provider=event.provider, event_id=event.event_id, event_type=event.event_type, payload=event.payload
            )
            from .tasks import process_payment_event

            transaction.on_commit(lambda: process_payment_event.delay(row.pk))
    except IntegrityError:
        PAYMENT_EVENTS.labels(event.provider, "duplicate").inc()
        return None
    PAYMENT_EVENTS.labels(event.provider, "accepted").inc()
    return row


def payment_event_process(*, event_id: int) -> str:
    """What a recorded event means. payment.* with COMPLETED for a known order and the full amount completes the
    payment; a smaller amount or an unknown order is flagged for staff; other statuses are noted and leave the hold
    to expire. refund.* updates the refund. Safe to run twice: a processed event is skipped, and every effect is
    guarded by the payment's state."""
    with transaction.atomic():
        event = PaymentEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.status != PaymentEvent.Status.PENDING:
            return "skipped"
        kind = event.event_type.split(".", 1)[0]
        obj = (event.payload.get("data") or {}).get("object") or {}
        if kind == "payment":
            status, outcome, payment = _payment_event(event, obj.get("payment") or {})
        elif kind == "refund":
            status, outcome, payment = _refund_event(obj.get("refund") or {})
        else:
            status, outcome, payment = PaymentEvent.Status.IGNORED, f"type {event.event_type} not handled", None
        PaymentEvent.objects.filter(pk=event.pk).update(
            status=status,
            outcome=outcome[:200],
            payment=payment,
            clinic_id=payment.clinic_id if payment else None,
            processed_at=timezone.now(),
        )
    PAYMENT_EVENTS.labels(event.provider, status).inc()
    logger.info("payment event processed event=%s status=%s payment=%s", event.pk, status, payment and payment.pk)
    return status


def _payment_event(event, data):
    order_id, status = str(data.get("order_id") or ""), str(data.get("status") or "").upper()
    money = data.get("amount_money") or {}
    payment = Payment.objects.select_for_update().filter(order_id=order_id, provider=event.provider).first()
    if not order_id or payment is None:
        return PaymentEvent.Status.FLAGGED, f"unknown order {order_id or '(none)'}: not ours, or not recorded", None
    if payment.status != Payment.Status.CREATED:
        return PaymentEvent.Status.IGNORED, f"payment already {payment.status}", payment
    if status != "COMPLETED":
        # APPROVED / PENDING come before COMPLETED; FAILED / CANCELED leave the link usable until the hold expires.
        Payment.objects.filter(pk=payment.pk).update(
            provider_status=status, payment_id=str(data.get("id") or payment.payment_id), updated_at=timezone.now()
        )
        return PaymentEvent.Status.PROCESSED, f"payment {status.lower() or 'without status'}", payment
    amount, currency = money.get("amount"), str(money.get("currency") or "")
    if not isinstance(amount, int) or amount < payment.amount_cents or currency.upper() != payment.currency:
        payment_flag(payment=payment, reason=f"paid {amount} {currency}, expected {payment.amount_cents}")
        return PaymentEvent.Status.FLAGGED, "amount lower than the deposit", payment
    payment_completed(payment_id=payment.pk, provider_payment_id=str(data.get("id") or ""), amount_cents=amount)
    return PaymentEvent.Status.PROCESSED, "payment completed", payment


def _refund_event(data):
    payment = Payment.objects.select_for_update().filter(payment_id=str(data.get("payment_id") or "")).first()
    if payment is None:
        return PaymentEvent.Status.FLAGGED, "refund for a payment we do not know", None
    status = str(data.get("status") or "").upper()
    payment_refund_update(payment=payment, refund_id=str(data.get("id") or ""), status=status)
    return PaymentEvent.Status.PROCESSED, f"refund {status.lower()}", payment


def payment_flag(*, payment: Payment, reason: str) -> None:
    """Something about this payment needs a person: listed in the admin, staff alerted, nothing confirmed."""
    Payment.objects.filter(pk=payment.pk).update(needs_review=True, review_reason=reason[:200])
    staff_alert(
        clinic=payment.clinic,
        kind=StaffAlert.Kind.PAYMENT,
        text=f"Payment #{payment.pk} for booking #{payment.booking_id} needs review: {reason}.",
        obj=payment,
    )
    logger.warning("payment flagged payment=%s", payment.pk)


def payment_completed(*, payment_id: int, provider_payment_id: str, amount_cents: int, now=None) -> bool:
    """The one "payment completed" path (Square webhook and sandbox checkout): mark the payment paid and, in the
    same transaction, queue the booking's confirmation. False when it was already completed (nothing changes)."""
    now = now or timezone.now()
    with transaction.atomic():
        updated = Payment.objects.filter(pk=payment_id, status=Payment.Status.CREATED).update(
            status=Payment.Status.PAID,
            provider_status="COMPLETED",
            payment_id=provider_payment_id,
            paid_cents=amount_cents,
            paid_at=now,
            updated_at=now,
        )
        if not updated:
            return False
        payment = Payment.objects.get(pk=payment_id)
        outbox_add(payment=payment, kind=OutboxItem.Kind.CONFIRM_BOOKING, now=now)
    logger.info("payment completed payment=%s booking=%s", payment.pk, payment.booking_id)
    return True


# --- Outbox -------------------------------------------------------------------------------------------------------


def outbox_add(*, payment: Payment, kind: str, reason: str = "", now=None) -> OutboxItem:
    """Write a step (inside the caller's transaction) and run it after commit. One step of a kind per payment."""
    item, created = OutboxItem.objects.get_or_create(
        payment=payment,
        kind=kind,
        defaults={"clinic_id": payment.clinic_id, "reason": reason, "next_attempt_at": now or timezone.now()},
    )
    if created:
        from .tasks import run_outbox_item

        transaction.on_commit(lambda: run_outbox_item.delay(item.pk))
    return item


def _claimable(now) -> Q:
    """Steps that may run now: pending and due, or running with an expired lease (their worker died)."""
    return Q(status=OutboxItem.Status.PENDING, next_attempt_at__lte=now) | Q(
        status=OutboxItem.Status.RUNNING, lease_until__lt=now
    )


def _claim(item_id: int, now) -> OutboxItem | None:
    """Take the row for one run: pending and due, or running with an expired lease (its worker died)."""
    claimed = OutboxItem.objects.filter(_claimable(now), pk=item_id).update(
        status=OutboxItem.Status.RUNNING, lease_until=now + LEASE, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    return OutboxItem.objects.select_related("payment", "payment__booking", "clinic").get(pk=item_id)


def outbox_run(*, item_id: int, now=None) -> str:
    """Carry out one outbox step. Returns what happened: done, retry, failed or skipped (claimed elsewhere)."""
    now = now or timezone.now()
    item = _claim(item_id, now)
    if item is None:
        return "skipped"
    step = STEPS[item.kind]
    try:
        # The step's own effect runs outside this transaction (it may call the EMR or Square, and is idempotent);
        # the next steps it asks for are written in the same transaction that closes this one.
        follow_up = step(item, now)
        with transaction.atomic():
            if follow_up is not None:
                follow_up()
            OutboxItem.objects.filter(pk=item.pk).update(
                status=OutboxItem.Status.DONE, done_at=timezone.now(), lease_until=None, last_error=""
            )
        outcome = "done"
    except (PaymentError, EmrError) as exc:
        outcome = _step_failed(item, exc, transient=exc.transient, now=now)
    except Exception as exc:
        logger.exception("outbox step crashed item=%s kind=%s", item.pk, item.kind)
        outcome = _step_failed(item, exc, transient=True, now=now)
    OUTBOX_STEPS.labels(item.kind, outcome).inc()
    logger.info("outbox step item=%s kind=%s outcome=%s attempt=%s", item.pk, item.kind, outcome, item.attempts)
    return outcome


def _step_failed(item, exc, *, transient, now) -> str:
    error = f"{type(exc).__name__}: {exc}"[:300]
    if transient and item.attempts < MAX_ATTEMPTS:
        delay = RETRY_DELAYS[min(item.attempts - 1, len(RETRY_DELAYS) - 1)]
        OutboxItem.objects.filter(pk=item.pk).update(
            status=OutboxItem.Status.PENDING,
            next_attempt_at=now + timedelta(seconds=delay),
            lease_until=None,
            last_error=error,
        )
        return "retry"
    OutboxItem.objects.filter(pk=item.pk).update(status=OutboxItem.Status.FAILED, lease_until=None, last_error=error)
    kind = StaffAlert.Kind.REFUND if item.kind == OutboxItem.Kind.REFUND else StaffAlert.Kind.EMR_ERROR
    staff_alert(
        clinic=item.clinic,
        kind=kind,
        text=(
            f"Payment #{item.payment_id} (booking #{item.payment.booking_id}): \u201c{item.get_kind_display()}\u201d "
            f"failed after {item.attempts} attempt(s): {type(exc).__name__}. Please finish it by hand."
        ),
        obj=item.payment,
        dedupe_key=f"outbox-failed:{item.pk}",
    )
    return "failed"


def outbox_due(*, now=None) -> list[int]:
    """Steps to run now: due pending ones and running ones whose worker died (the periodic sweep)."""
    now = now or timezone.now()
    return list(
        OutboxItem.objects.filter(_claimable(now)).order_by("next_attempt_at").values_list("pk", flat=True)[:200]
    )


def outbox_retry(*, item: OutboxItem) -> bool:
    """Staff: run a failed step again."""
    return bool(
        OutboxItem.objects.filter(pk=item.pk, status=OutboxItem.Status.FAILED).update(
            status=OutboxItem.Status.PENDING, attempts=0, next_attempt_at=timezone.now()
        )
    )


def _step_confirm_booking(item, now):
    """Confirm the paid booking (its own transactions; idempotent). A hold that expired before the payment came is
    revived if its time is still free; if the time is gone (here or in the EMR) the deposit is refunded and staff
    and patient are told. Returns what to write when the step closes."""
    payment = item.payment
    booking = payment.booking
    if booking.status == Booking.Status.EXPIRED:
        try:
            booking_revive(booking_id=booking.pk)
        except SlotUnavailable:
            return _refund_for_lost_time(payment, "the hold expired and its time was taken", now)
    try:
        booking_confirm(booking_id=booking.pk)
    except SlotUnavailable:
        return _refund_for_lost_time(payment, "the time was taken in the EMR before the payment arrived", now)
    except BookingStateError:
        booking.refresh_from_db()
        return _refund_for_lost_time(payment, f"the booking is {booking.status}", now)
    return lambda: outbox_add(payment=payment, kind=OutboxItem.Kind.SEND_CONFIRMATION, now=now)


def _refund_for_lost_time(payment, reason, now):
    def follow_up():
        outbox_add(payment=payment, kind=OutboxItem.Kind.REFUND, reason=reason, now=now)
        outbox_add(payment=payment, kind=OutboxItem.Kind.TELL_PATIENT_REFUND, reason=reason, now=now)
        staff_alert(
            clinic=payment.clinic,
            kind=StaffAlert.Kind.REFUND,
            text=(
                f"Payment #{payment.pk} (booking #{payment.booking_id}) arrived but {reason}. The deposit is being "
                "refunded and the patient was asked to pick another time; you may want to call them."
            ),
            obj=payment,
        )

    logger.info("payment for a lost time payment=%s booking=%s", payment.pk, payment.booking_id)
    return follow_up


def _step_send_confirmation(item, now):
    booking_confirmation_send(booking_id=item.payment.booking_id, kind="reply")


def _step_refund(item, now):
    payment = Payment.objects.get(pk=item.payment_id)
    if payment.status == Payment.Status.REFUNDED or (payment.refund_id and payment.refund_status != "FAILED"):
        return None
    backend = payment_backend(clinic=payment.clinic, provider=payment.provider, public_token=payment.public_token)
    refund = backend.refund(  # idempotent by key: a retry after a timeout gets the same refund
        payment_id=payment.payment_id,
        amount_cents=payment.paid_cents or payment.amount_cents,
        currency=payment.currency,
        idempotency_key=f"refund-{payment.pk}-{int(payment.created_at.timestamp())}",
        reason=item.reason or "Deposit refund",
    )
    payment_refund_update(payment=payment, refund_id=refund.refund_id, status=refund.status)
    return None


def _step_tell_patient_refund(item, now):
    from conversation.services import conversation_booking_changed
    from messaging.models import Message
    from messaging.services import message_queue

    payment = item.payment
    booking = payment.booking
    conversation_booking_changed(booking=booking)
    message_queue(
        clinic=payment.clinic,
        to=booking.patient_phone,
        body=(
            f"Sorry, the {booking.service.name} time you paid for was taken before your payment came through. "
            f"Your {format_cents(payment.paid_cents or payment.amount_cents)} deposit is being refunded. "
            "Reply here and we'll find you another time."
        ),
        kind=Message.Kind.REPLY,
        conversation=booking.conversation,
        idempotency_key=f"payment-refund-notice-{payment.pk}",
    )


STEPS = {
    OutboxItem.Kind.CONFIRM_BOOKING: _step_confirm_booking,
    OutboxItem.Kind.SEND_CONFIRMATION: _step_send_confirmation,
    OutboxItem.Kind.REFUND: _step_refund,
    OutboxItem.Kind.TELL_PATIENT_REFUND: _step_tell_patient_refund,
}


# --- Refunds ------------------------------------------------------------------------------------------------------


def payment_refund_request(*, payment: Payment, reason: str, user=None) -> OutboxItem:
    """Staff (or a cancellation within policy): refund a paid deposit, once, through the outbox."""
    if payment.status != Payment.Status.PAID or not payment.paid_cents:
        raise BookingStateError(f"payment {payment.pk} is {payment.status}; only a paid deposit can be refunded")
    with transaction.atomic():
        item = outbox_add(payment=payment, kind=OutboxItem.Kind.REFUND, reason=reason)
    if user is not None:
        from medspa.audit import audit_record
        from medspa.models import AuditEvent

        audit_record(action=AuditEvent.Action.CHANGE, obj=payment, user=user, detail={"fields": ["refund"]})
    return item


def payment_refund_update(*, payment: Payment, refund_id: str, status: str) -> None:
    """A refund's status from the provider (the refund call's answer or a refund.* webhook)."""
    fields = {"refund_status": status, "updated_at": timezone.now()}
    if refund_id:
        fields["refund_id"] = refund_id
    if status == "COMPLETED":
        fields.update(status=Payment.Status.REFUNDED, refunded_cents=payment.paid_cents or payment.amount_cents)
    elif status in ("PENDING", "APPROVED"):
        fields["status"] = Payment.Status.REFUND_PENDING
    elif status in ("REJECTED", "FAILED"):
        payment_flag(payment=payment, reason=f"refund {status.lower()}")
    Payment.objects.filter(pk=payment.pk).exclude(status=Payment.Status.REFUNDED).update(**fields)


def sandbox_pay(*, payment: Payment) -> PaymentEvent | None:
    """The sandbox checkout's "Pay" button: a ``payment.updated`` COMPLETED event in Square's shape, recorded and
    processed exactly like one from Square's webhook. Pressing it twice records one event."""
    if payment.provider != Provider.SANDBOX or not sandbox_enabled():
        raise PaymentConfigError("Test payments are off.")
    provider_payment_id = f"sandbox-payment-{payment.pk}"
    payload = {
        "type": "payment.updated",
        "event_id": f"sandbox-{payment.public_token[:16]}",
        "data": {
            "type": "payment",
            "id": provider_payment_id,
            "object": {
                "payment": {
                    "id": provider_payment_id,
                    "status": "COMPLETED",
                    "order_id": payment.order_id,
                    "amount_money": {"amount": payment.amount_cents, "currency": payment.currency},
                }
            },
        },
    }
    return payment_event_record(ReceivedEvent(Provider.SANDBOX, payload["event_id"], payload["type"], payload))
