from django.db import models

from medspa.models import Clinic
from medspa.tenancy import ClinicScopedQuerySet


class Provider(models.TextChoices):
    """Who sent the event. ``sandbox`` is our own test checkout, recorded exactly like a Square event."""

    TELNYX = "telnyx", "Telnyx"
    TWILIO = "twilio", "Twilio"
    SQUARE = "square", "Square"
    SANDBOX = "sandbox", "Sandbox checkout"


class WebhookEventQuerySet(ClinicScopedQuerySet):
    def about(self, obj):
        """The events whose processing concerned ``obj`` (e.g. a payment's webhooks)."""
        return self.filter(subject_type=obj._meta.label_lower, subject_id=str(obj.pk))

    def needs_staff(self):
        """Failed for good: the sweep has given up; a person looks and reprocesses."""
        return self.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=True)


class WebhookEvent(models.Model):
    """The one inbox: every verified provider event, recorded once under (provider, event id, type) before any work.

    The database is the source of truth for what is still to do: a task processes the row after commit, and the
    sweep (``inbox.sweep``) picks up rows whose task was lost (Redis flushed, worker killed) and failed rows whose
    retry time has come. A redelivery of an event that has not been processed re-queues it; one that was processed
    changes nothing."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        FLAGGED = "flagged", "Processed, flagged for staff"
        FAILED = "failed", "Failed"

    provider = models.CharField(max_length=10, choices=Provider.choices)
    event_id = models.CharField(max_length=120)
    event_type = models.CharField(max_length=60)
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    # Our number the event concerns (messaging events): the worker files the event under that number's clinic.
    our_number = models.CharField(max_length=16, blank=True)
    payload = models.JSONField(default=dict, help_text="The provider's event as received (cleaned of NUL bytes).")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    error_class = models.CharField(max_length=80, blank=True, help_text="The exception of the last failed attempt.")
    reason = models.CharField(max_length=200, blank=True, help_text="What processing did, or why it failed.")
    attempts = models.PositiveSmallIntegerField(default=0)
    deliveries = models.PositiveSmallIntegerField(default=1, help_text="How often the provider sent this event.")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="Failed: when the sweep tries again (empty: it gave up, staff decide)."
    )
    lease_until = models.DateTimeField(null=True, blank=True, help_text="Processing: a worker holds it until then.")
    # What the event was about, once processing knows (e.g. payments.payment 12).
    subject_type = models.CharField(max_length=100, blank=True)
    subject_id = models.CharField(max_length=64, blank=True)
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        ordering = ["-received_at"]
        # The type too, as Saleor does: a provider's copy of an event under another type is another event.
        constraints = [
            models.UniqueConstraint(fields=["provider", "event_id", "event_type"], name="inbox_unique_event")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="inbox_status_next"),
            models.Index(fields=["subject_type", "subject_id"], name="inbox_subject"),
        ]

    def __str__(self):
        return f"{self.provider} {self.event_type} #{self.pk}"


class WebhookRejection(models.Model):
    """A webhook we refused: forged, stale or unsigned (403), or signed but unreadable (4xx). No body is kept."""

    provider = models.CharField(max_length=10, choices=Provider.choices)
    path = models.CharField(max_length=200)
    status_code = models.PositiveSmallIntegerField(default=403)
    reason = models.CharField(max_length=200)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-at"]

    def __str__(self):
        return f"{self.provider} rejected ({self.status_code}): {self.reason}"
