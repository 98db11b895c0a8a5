from django.conf import settings
from django.db import models

from medspa.models import Clinic
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet


class Conversation(models.Model):
    """One patient's thread with one clinic, keyed by (clinic, patient phone). Messaging opens or resumes it for
    every missed call, lead and inbound text; the engine (``conversation.engine``) drives its state through the
    tools, which keep what is known: the service, the time preference, the times offered, the held booking."""

    class State(models.TextChoices):
        NEW = "new", "New"
        ENGAGED = "engaged", "Engaged"
        OFFERING = "offering", "Offering times"
        HOLDING = "holding", "Holding a time"
        AWAITING_DEPOSIT = "awaiting_deposit", "Awaiting deposit"
        CONFIRMED = "confirmed", "Confirmed"
        HANDED_OFF = "handed_off", "Handed off to staff"
        OPTED_OUT = "opted_out", "Opted out"
        CLOSED = "closed", "Closed"

    class Owner(models.TextChoices):
        ASSISTANT = "assistant", "Assistant"
        STAFF = "staff", "Staff (assistant silent)"

    class Origin(models.TextChoices):
        MISSED_CALL = "missed_call", "Missed call"
        WEB_LEAD = "web_lead", "Web lead"
        INBOUND_TEXT = "inbound_text", "Patient's text"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="conversations")
    patient_phone = models.CharField(max_length=16, validators=[validate_e164])
    state = models.CharField(max_length=20, choices=State.choices, default=State.NEW)
    origin = models.CharField(max_length=20, choices=Origin.choices)
    needs_staff = models.BooleanField(default=False, help_text="Waiting for a person (no assistant, or flagged).")
    last_inbound_at = models.DateTimeField(null=True, blank=True)
    last_outbound_at = models.DateTimeField(null=True, blank=True)
    intro_sent_on = models.DateField(null=True, blank=True, help_text="Clinic-local date of the last intro text.")
    owner = models.CharField(max_length=10, choices=Owner.choices, default=Owner.ASSISTANT)
    owned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The staff member answering the patient (one at a time); empty: the assistant, or any of the staff.",
    )
    patient_name = models.CharField(max_length=120, blank=True)
    language = models.CharField(
        max_length=2,
        default="en",
        help_text="The language the assistant answers in: 'es' once the patient writes Spanish (conversation.i18n).",
    )
    service = models.ForeignKey("medspa.Service", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    time_preference = models.CharField(max_length=80, blank=True, help_text="As we said it back, e.g. 'Thursday'.")
    offered_slots = models.JSONField(
        default=list, blank=True, help_text="The times last offered, in order: start, end, provider id."
    )
    booking = models.ForeignKey("bookings.Booking", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    rescheduling = models.ForeignKey(
        "bookings.Booking",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The appointment the patient is moving; the times offered are for it.",
    )
    pending_pick = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="The offered time the patient picked while already booked: MOVE or ANOTHER?"
    )
    another_booking_ok = models.BooleanField(
        default=False, help_text="The patient said yes to a second appointment (for their next pick only)."
    )
    confirming_cancel = models.ForeignKey(
        "bookings.Booking",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The appointment the patient asked to cancel: it is cancelled when they reply YES.",
    )
    turns_count = models.PositiveIntegerField(default=0)
    handled_through = models.PositiveBigIntegerField(
        default=0, help_text="Texts up to this message id were handled by staff: the assistant does not answer them."
    )
    tokens_used = models.PositiveIntegerField(default=0)
    tool_calls_used = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-updated_at"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "patient_phone"], name="conversation_unique_patient_per_clinic")
        ]

    def __str__(self):
        return f"Conversation #{self.pk}"


class Turn(models.Model):
    """One answer of the assistant: which inbound texts it read, which engine answered, the tool calls it made, the
    reply, and what it cost. The reply itself is a Message; tool arguments hold ids and times, not patient text."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="turns")
    inbound = models.ManyToManyField("messaging.Message", related_name="turns", blank=True)
    engine = models.CharField(max_length=10)
    fallback = models.BooleanField(default=False, help_text="The LLM failed and the rules engine answered.")
    tool_calls = models.JSONField(default=list, blank=True)
    reply = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    cost_microdollars = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]

    def __str__(self):
        return f"Turn #{self.pk}"
