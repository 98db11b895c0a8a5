"""Deposit rules: the payment link for a held booking, what a payment event means, the outbox that turns a
completed payment into a confirmed booking and a confirmation text, and refunds.

The chain after a payment: ``payment_completed`` marks the payment paid and writes an outbox row (confirm the
booking) in one transaction; ``outbox_run`` confirms it through ``bookings.services.booking_confirm`` (which writes
the EMR appointment exactly once) and, in the transaction that closes that row, writes the next one (send the
confirmation). A payment for a time that is gone is refunded the same way. Every step is idempotent and claimed
with a lease, so a crash anywhere resumes (the periodic sweep) and never doubles.

``PAYMENT_BACKENDS`` maps a provider name to its backend class, built by ``from_config(clinic, config,
public_token=)``; ``settings.PAYMENT_BACKENDS`` (name -> dotted path) adds a provider or replaces one's backend.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
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
from inbox.models import WebhookEvent
from inbox.services import NormalisedEvent, Outcome, event_record
from medspa.alerts import staff_alert
from medspa.audit import audit_record
from medspa.events import publish
from medspa.models import AuditEvent, StaffAlert, format_cents
from medspa.queueing import enqueue
from medspa.retry import RetrySchedule
from messaging.models import Message
from messaging.services import message_queue

from .backends.base import LinkRequest, PaymentBackend, PaymentConfigError, PaymentError
from .models import OutboxItem, Payment, PaymentConfig, Provider

logger = logging.getLogger(__name__)
Status = WebhookEvent.Status

PAYMENT_EVENTS = Counter(
    "medspa_payment_events_total", "Payment events by provider and outcome.", ["provider", "outcome"]
)
OUTBOX_STEPS = Counter("medspa_outbox_steps_total", "Outbox steps by kind and outcome.", ["kind", "outcome"])

LEASE = timedelta(minutes=5)
RETRIES = RetrySchedule((10, 30, 120, 600, 1800, 3600))  # seconds before attempts 2..7
MAX_ATTEMPTS = RETRIES.max_attempts


# --- Providers --------------------------------------------------------------------------------------------------

PAYMENT_BACKENDS = {
    Provider.SQUARE: "payments.backends.square.SquareBackend",  # the clinic's token and location, else SQUARE_*
    Provider.SANDBOX: "payments.backends.sandbox.SandboxBackend",  # refused unless PAYMENTS_SANDBOX_ENABLED
}


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
    """The backend for a clinic: ``PAYMENT_BACKENDS[provider].from_config(clinic, config, public_token=)``, the
    provider being the clinic's (``payment_provider``) unless given (a payment's own)."""
    config = _config(clinic)
    provider = provider or payment_provider(clinic=clinic, config=config)
    path = {**PAYMENT_BACKENDS, **settings.PAYMENT_BACKENDS}.get(provider)
    if path is None:
        raise PaymentConfigError(f"{provider!r} is not a payment provider (PAYMENT_BACKENDS).")
    return import_string(path).from_config(clinic, config, public_token=public_token)


# --- Requesting a deposit ---------------------------------------------------------------------------------------


def is_returning_client(*, clinic, phone: str) -> bool:
    """A patient with a past confirmed booking at this clinic (deposits may be for new clients only)."""
    return Booking.objects.for_clinic(clinic).filter(patient_phone=phone, status=Booking.Status.CONFIRMED).exists()


def deposit_amount(*, booking) -> int:
    new_client = not is_returning_client(clinic=booking.clinic, phone=booking.patient_phone)
    return booking.service.deposit_for(new_client=new_client)


def deposit_request(*, booking_id: int, now=None, expires_at=None) -> Payment:
    """The payment link for a held booking's deposit, created once: a repeat (or a retry after a provider error)
    returns the same payment and, through the idempotency key derived from the booking, the same link.

    The held time is kept until the link expires (PAYMENTS_LINK_MINUTES, or ``expires_at``: a waitlist offer's
    shorter hold). The link's name carries the clinic and
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
                    expires_at=expires_at or now + timedelta(minutes=settings.PAYMENTS_LINK_MINUTES),
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


# --- Events (Square webhooks and sandbox checkouts, through the inbox) ----------------------------------------------
#
# The inbox records each event once and calls these in a worker, inside one transaction with the event's outcome.
# Square sends a webhook for every payment of the seller, including the clinic's other sales: a payment for an order
# we did not create is recorded and ignored, with no staff noise.


def payment_event_apply(*, provider: str, event_type: str, data: dict) -> Outcome:
    """What one payment.* or refund.* event means (``data`` is the event's ``data.object``)."""
    kind = event_type.split(".", 1)[0]
    if kind == "payment":
        return _payment_event(provider, data.get("payment") if isinstance(data.get("payment"), dict) else {})
    if kind == "refund":
        return _refund_event(data.get("refund") if isinstance(data.get("refund"), dict) else {})
    return Outcome(Status.IGNORED, f"type {event_type} not handled")


def _payment_event(provider, data) -> Outcome:
    order_id, status = str(data.get("order_id") or ""), str(data.get("status") or "").upper()
    money = data.get("amount_money") if isinstance(data.get("amount_money"), dict) else {}
    payment = (
        Payment.objects.select_for_update().filter(order_id=order_id, provider=provider).first() if order_id else None
    )
    if payment is None:
        PAYMENT_EVENTS.labels(provider, "not_ours").inc()
        return Outcome(Status.IGNORED, "payment for an order we did not create (another sale of the clinic)")
    if payment.status != Payment.Status.CREATED:
        return Outcome(Status.IGNORED, f"payment already {payment.status}", payment)
    if status != "COMPLETED":
        # APPROVED / PENDING come before COMPLETED; FAILED / CANCELED leave the link usable until the hold expires.
        Payment.objects.filter(pk=payment.pk).update(
            provider_status=status[:20], payment_id=str(data.get("id") or payment.payment_id)[:100],
            updated_at=timezone.now(),
        )  # fmt: skip
        return Outcome(Status.PROCESSED, f"payment {status.lower() or 'without status'}", payment)
    amount, currency = money.get("amount"), str(money.get("currency") or "")
    if not isinstance(amount, int) or amount < payment.amount_cents or currency.upper() != payment.currency:
        payment_flag(payment=payment, reason=f"paid {amount} {currency[:3]}, expected {payment.amount_cents}")
        return Outcome(Status.FLAGGED, "amount lower than the deposit", payment)
    payment_completed(payment_id=payment.pk, provider_payment_id=str(data.get("id") or "")[:100], amount_cents=amount)
    return Outcome(Status.PROCESSED, "payment completed", payment)


def _refund_event(data) -> Outcome:
    payment_id = str(data.get("payment_id") or "")
    payment = Payment.objects.select_for_update().filter(payment_id=payment_id).first() if payment_id else None
    if payment is None:  # a refund of another sale: not ours to track
        return Outcome(Status.IGNORED, "refund of a payment we did not take")
    status = str(data.get("status") or "").upper()[:20]
    money = data.get("amount_money") if isinstance(data.get("amount_money"), dict) else {}
    amount = money.get("amount") if isinstance(money.get("amount"), int) else None
    refund_id = str(data.get("id") or "")[:100]
    payment_refund_update(payment=payment, refund_id=refund_id, status=status, amount_cents=amount)
    return Outcome(Status.PROCESSED, f"refund {status.lower() or 'without status'}", payment)


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
        transaction.on_commit(lambda: _outbox_enqueue(item.pk))
    return item


def _outbox_enqueue(item_id: int) -> None:
    """Run a new step soon; with the broker down ``payments.outbox_sweep`` runs the due row."""
    enqueue("payments.run_outbox_item", item_id)


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
        OutboxItem.objects.filter(pk=item.pk).update(
            status=OutboxItem.Status.PENDING,
            next_attempt_at=RETRIES.next_at(now, item.attempts),
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
    remaining = (payment.paid_cents or payment.amount_cents) - payment.refunded_cents  # staff may have refunded part
    backend = payment_backend(clinic=payment.clinic, provider=payment.provider, public_token=payment.public_token)
    refund = backend.refund(  # idempotent by key: a retry after a timeout gets the same refund
        payment_id=payment.payment_id,
        amount_cents=remaining,
        currency=payment.currency,
        idempotency_key=f"refund-{payment.pk}-{int(payment.created_at.timestamp())}",
        reason=item.reason or "Deposit refund",
    )
    payment_refund_update(payment=payment, refund_id=refund.refund_id, status=refund.status, amount_cents=remaining)
    return None


def _step_tell_patient_refund(item, now):
    payment = item.payment
    booking = payment.booking
    publish("payments.refund_told", payment=payment)
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
        audit_record(action=AuditEvent.Action.CHANGE, obj=payment, user=user, detail={"fields": ["refund"]})
    return item


def payment_refund_update(*, payment: Payment, refund_id: str, status: str, amount_cents: int | None = None) -> None:
    """A refund's status from the provider (our refund call's answer, or a refund.* webhook, which also reports the
    refunds staff make in Square's dashboard). Each refund is tracked by id with its amount; the payment is
    refunded when the completed refunds add up to what was paid, partially refunded when they add up to less."""
    with transaction.atomic():
        payment = Payment.objects.select_for_update().get(pk=payment.pk)
        refunds = dict(payment.refunds or {})
        key = refund_id or "(no id)"
        known = refunds.get(key, {})
        if amount_cents is None:
            outstanding = (payment.paid_cents or payment.amount_cents) - payment.refunded_cents
            amount_cents = known.get("amount") or max(outstanding, 0)
        refunds[key] = {"status": status, "amount": amount_cents}
        refunded = sum(r["amount"] for r in refunds.values() if r["status"] == "COMPLETED")
        paid = payment.paid_cents or payment.amount_cents
        fields = {"refunds": refunds, "refund_status": status, "refunded_cents": min(refunded, paid)}
        if refund_id:
            fields["refund_id"] = refund_id
        if refunded >= paid:
            fields["status"] = Payment.Status.REFUNDED
        elif refunded > 0:
            fields["status"] = Payment.Status.PARTIALLY_REFUNDED
        elif status in ("PENDING", "APPROVED"):
            fields["status"] = Payment.Status.REFUND_PENDING
        for name, value in fields.items():
            setattr(payment, name, value)
        payment.save(update_fields=[*fields, "updated_at"])
    if status in ("REJECTED", "FAILED"):
        payment_flag(payment=payment, reason=f"refund {status.lower()}")


def sandbox_pay(*, payment: Payment) -> str:
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
    event = NormalisedEvent(payload["event_id"], payload["type"], payload)
    return event_record(provider=Provider.SANDBOX, event=event)


def payment_keep(*, booking, reason: str, now=None) -> Payment | None:
    """A no-show forfeits the booking's paid deposit, per the clinic's policy: recorded on the payment (shown in
    Payments), never refunded by us after that unless staff decide. Once; a booking without a paid deposit: None."""
    now = now or timezone.now()
    updated = Payment.objects.filter(booking=booking, status=Payment.Status.PAID, kept_at__isnull=True).update(
        kept_at=now, kept_reason=reason[:200], updated_at=now
    )
    if updated:
        logger.info("deposit kept booking=%s", booking.pk)
    return Payment.objects.filter(booking=booking).first()
