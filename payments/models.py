"""Deposits: one payment per booking (provider events are in the inbox app), and the outbox that carries a completed
payment through to a confirmed booking and a confirmation text."""

import secrets

from django.db import models

from medspa.fields import EncryptedTextField
from medspa.models import Clinic, format_cents
from medspa.tenancy import ClinicScopedQuerySet


class Provider(models.TextChoices):
    SQUARE = "square", "Square"
    SANDBOX = "sandbox", "Sandbox (test payments on this server)"


class PaymentConfig(models.Model):
    """A clinic's own payment account. Empty fields fall back to the platform's SQUARE_* settings; with neither,
    deposits use the sandbox checkout (test payments), which is refused in production unless enabled."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="payment_config")
    provider = models.CharField(max_length=10, choices=Provider.choices, blank=True, help_text="Empty: automatic.")
    square_access_token = EncryptedTextField(blank=True, help_text="The clinic's Square access token (encrypted).")
    square_location_id = models.CharField(max_length=64, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "payment configuration"

    def __str__(self):
        return f"{self.clinic}: {self.get_provider_display() or 'automatic'}"


def new_public_token() -> str:
    return secrets.token_urlsafe(24)


class Payment(models.Model):
    """The deposit for one booking: its payment link, and what the provider told us about the payment."""

    class Status(models.TextChoices):
        CREATED = "created", "Link sent, not paid"
        PAID = "paid", "Paid"
        REFUND_PENDING = "refund_pending", "Refund requested"
        PARTIALLY_REFUNDED = "partially_refunded", "Partly refunded"
        REFUNDED = "refunded", "Refunded"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="payments")
    booking = models.OneToOneField("bookings.Booking", on_delete=models.PROTECT, related_name="payment")
    provider = models.CharField(max_length=10, choices=Provider.choices)
    amount_cents = models.PositiveIntegerField()
    currency = models.CharField(max_length=3, default="USD")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.CREATED)
    idempotency_key = models.CharField(max_length=100, unique=True)
    public_token = models.CharField(max_length=64, unique=True, default=new_public_token, editable=False)
    link_id = models.CharField(max_length=100, blank=True)
    link_url = models.URLField(max_length=500, blank=True)
    order_id = models.CharField(max_length=100, blank=True, db_index=True)
    payment_id = models.CharField(max_length=100, blank=True, db_index=True, help_text="The provider's payment.")
    provider_status = models.CharField(max_length=20, blank=True, help_text="APPROVED, COMPLETED, FAILED, ...")
    paid_cents = models.PositiveIntegerField(default=0)
    paid_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="When the held time is released.")
    needs_review = models.BooleanField(default=False, help_text="Did not match what we expected: a person checks.")
    review_reason = models.CharField(max_length=200, blank=True)
    refund_id = models.CharField(max_length=100, blank=True)
    refund_status = models.CharField(max_length=20, blank=True)
    refunded_cents = models.PositiveIntegerField(default=0, help_text="What the completed refunds add up to.")
    refunds = models.JSONField(
        default=dict, blank=True, help_text="Each refund the provider reported: {refund id: {status, amount}}."
    )
    kept_at = models.DateTimeField(
        null=True, blank=True, help_text="The deposit was kept (a no-show, per the clinic's deposit policy)."
    )
    kept_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"Payment #{self.pk}"

    @property
    def amount_text(self) -> str:
        return format_cents(self.amount_cents)


class OutboxItem(models.Model):
    """One step of work that must happen after a state change, written in the same transaction as that change and
    carried out by a task: a crash between steps leaves the row pending, and the sweep resumes it. Each step is
    idempotent, and a row is claimed (with a lease) before it runs, so nothing happens twice."""

    class Kind(models.TextChoices):
        CONFIRM_BOOKING = "confirm_booking", "Confirm the booking (write it to the EMR)"
        SEND_CONFIRMATION = "send_confirmation", "Text the patient the confirmation"
        REFUND = "refund", "Refund the deposit"
        TELL_PATIENT_REFUND = "tell_patient_refund", "Text the patient about the refund"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (staff told)"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="outbox")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    done_at = models.DateTimeField(null=True, blank=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["payment", "kind"], name="outbox_one_step_per_payment")]

    def __str__(self):
        return f"{self.get_kind_display()} (payment #{self.payment_id})"
