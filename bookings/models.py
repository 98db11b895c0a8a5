from django.db import models

from medspa.models import Clinic, Service
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet, validate_same_clinic

ACTIVE_STATUSES = ("held", "awaiting_deposit", "awaiting_staff", "confirmed")


class BookingQuerySet(ClinicScopedQuerySet):
    def active(self):
        return self.filter(status__in=ACTIVE_STATUSES)

    def overlapping(self, *, provider, start, end):
        return self.active().filter(provider=provider, start__lt=end, end__gt=start)

    def patients_conflicting(self, *, clinic, patient_phone, service, start, end, now):
        """The patient's other active, not yet over bookings that a new one at [start, end) for ``service`` would
        double: the same service at any time, or any service at an overlapping time."""
        from django.db.models import Q

        return (
            self.active()
            .filter(clinic=clinic, patient_phone=patient_phone, end__gt=now)
            .filter(Q(service=service) | Q(start__lt=end, end__gt=start))
        )


class Booking(models.Model):
    """A patient's appointment from hold to confirmation. While held, awaiting a deposit, awaiting staff (paid, on
    a manual EMR, not entered there yet) or confirmed it occupies its provider's time: on PostgreSQL an exclusion
    constraint makes an overlap impossible (migrations 0003, 0004); on SQLite ``bookings.services.booking_hold``
    enforces the same rule inside a transaction."""

    class Status(models.TextChoices):
        HELD = "held", "Held"
        AWAITING_DEPOSIT = "awaiting_deposit", "Awaiting deposit"
        AWAITING_STAFF = "awaiting_staff", "Awaiting staff: enter it in the EMR (manual EMR)"
        CONFIRMED = "confirmed", "Confirmed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"
        FAILED = "failed", "Failed"
        COMPLETED = "completed", "Completed (the patient came)"
        NO_SHOW = "no_show", "No-show"

    class Language(models.TextChoices):
        ENGLISH = "en", "English"
        SPANISH = "es", "Spanish"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="bookings")
    conversation = models.ForeignKey(
        "conversation.Conversation", on_delete=models.SET_NULL, null=True, blank=True, related_name="bookings"
    )
    patient_phone = models.CharField(max_length=16, validators=[validate_e164])
    patient_name = models.CharField(max_length=120, blank=True)
    language = models.CharField(
        max_length=2,
        choices=Language.choices,
        default=Language.ENGLISH,
        help_text="The language the patient's texts about it are written in: the conversation's when it was held "
        "(Spanish only while the clinic has Spanish on).",
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="bookings")
    provider = models.ForeignKey("emr.Provider", on_delete=models.PROTECT, related_name="bookings")
    start = models.DateTimeField()
    end = models.DateTimeField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.HELD)
    hold_expires_at = models.DateTimeField(null=True, blank=True)
    deposit_cents = models.PositiveIntegerField(default=0)
    emr_appointment_id = models.CharField(max_length=100, blank=True)
    patient_confirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the patient answered the confirmation request or reminder with C/yes."
    )
    rescheduled_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+", help_text="The booking it replaced."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = BookingQuerySet.as_manager()

    class Meta:
        ordering = ["start"]
        indexes = [models.Index(fields=["provider", "start"]), models.Index(fields=["status", "hold_expires_at"])]
        constraints = [
            models.CheckConstraint(condition=models.Q(start__lt=models.F("end")), name="booking_start_before_end")
        ]

    def __str__(self):
        return f"Booking #{self.pk}"

    def clean(self):
        validate_same_clinic(self, "service", "provider")


class ManualBookingRequest(Booking):
    """The manual-EMR queue: paid bookings that staff must enter in their EMR (Aesthetic Record has no API)."""

    class Meta:
        proxy = True
        verbose_name = "manual EMR booking to enter"
        verbose_name_plural = "manual EMR bookings to enter"
