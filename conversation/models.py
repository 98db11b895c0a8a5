from django.db import models

from medspa.models import Clinic
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet


class Conversation(models.Model):
    """One patient's thread with one clinic, keyed by (clinic, patient phone). Messaging opens or resumes it for
    every missed call, lead and inbound text; the conversation engine (its own issue) drives its state."""

    class State(models.TextChoices):
        NEW = "new", "New"
        ENGAGED = "engaged", "Engaged"
        HANDED_OFF = "handed_off", "Handed off to staff"
        OPTED_OUT = "opted_out", "Opted out"
        CLOSED = "closed", "Closed"

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
