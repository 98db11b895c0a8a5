"""The waitlist: who waits for which time (``WaitlistEntry``), the times that freed up (``FreedTime``), and each
freed time held for one waiting patient (``WaitlistOffer``). Only ``waitlist.services`` writes these tables."""

from django.db import models

from bookings.models import Booking
from medspa.models import Clinic, Service
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet, validate_same_clinic

HOLD_MINUTES = 15  # how long a freed time is held for the patient it is offered to
MAX_OFFERS_PER_DAY = 3  # offers one patient may get in a clinic-local day


class WaitlistSettings(models.Model):
    """A clinic's waitlist settings (a clinic without a row has the defaults)."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="waitlist_settings")
    enabled = models.BooleanField(default=True, help_text="The assistant offers the waitlist when no time fits.")
    hold_minutes = models.PositiveSmallIntegerField(
        default=HOLD_MINUTES, help_text="How long a freed time is held for the patient it is offered to."
    )
    max_offers_per_day = models.PositiveSmallIntegerField(
        default=MAX_OFFERS_PER_DAY, help_text="At most this many offers to one patient per day (clinic time)."
    )

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "waitlist settings"
        verbose_name_plural = "waitlist settings"
        constraints = [
            models.CheckConstraint(condition=models.Q(hold_minutes__gte=5), name="waitlist_hold_at_least_5_minutes")
        ]

    def __str__(self):
        return f"Waitlist settings of clinic #{self.clinic_id}"


class WaitlistEntry(models.Model):
    """A patient waiting for a time of a service (with one provider or any) inside a window. ``proposed``: the
    assistant asked "want me to text you if something opens?" and waits for the answer; ``waiting``: they said yes
    (``joined_at`` orders who is offered first)."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "Asked, no answer yet"
        WAITING = "waiting", "Waiting"
        BOOKED = "booked", "Booked"
        EXPIRED = "expired", "Expired (the window passed)"
        CANCELLED = "cancelled", "Cancelled (declined, left or opted out)"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    conversation = models.ForeignKey(
        "conversation.Conversation", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    patient_phone = models.CharField(max_length=16, validators=[validate_e164])
    patient_name = models.CharField(max_length=120, blank=True)
    language = models.CharField(
        max_length=2,
        choices=Booking.Language.choices,
        default=Booking.Language.ENGLISH,
        help_text="The language of the offer's text: the conversation's when the patient joined (the time held for "
        "them is a booking in this language).",
    )
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="+")
    provider = models.ForeignKey(
        "emr.Provider", on_delete=models.PROTECT, null=True, blank=True, related_name="+", help_text="Empty: any."
    )
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    day_start = models.TimeField(null=True, blank=True, help_text="Clinic-local hours of day, when limited.")
    day_end = models.TimeField(null=True, blank=True)
    label = models.CharField(max_length=80, help_text="The window as we said it, e.g. 'Thursday afternoon'.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.PROPOSED)
    joined_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "waitlist entry"
        verbose_name_plural = "waitlist"
        ordering = ["joined_at", "pk"]
        indexes = [models.Index(fields=["clinic", "state", "joined_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(window_start__lt=models.F("window_end")), name="waitlist_window_start_before_end"
            )
        ]

    def __str__(self):
        return f"Waitlist entry #{self.pk}"

    def clean(self):
        validate_same_clinic(self, "service", "provider")


class FreedTime(models.Model):
    """A time that became free (a cancellation, an expired hold, the old time of a reschedule), waiting to be
    offered: recorded in the transaction that freed it, so a lost task or a flushed Redis loses nothing."""

    class State(models.TextChoices):
        PENDING = "pending", "To offer"
        OFFERED = "offered", "Offered"
        UNMATCHED = "unmatched", "Nobody waiting for it"
        GONE = "gone", "Taken by someone else"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey("emr.Provider", on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    source_booking = models.ForeignKey(
        "bookings.Booking", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reason = models.CharField(max_length=20)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Tries that could not read the schedule.")
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="The scheduling system was down: retry.")
    created_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self):
        return f"Freed time #{self.pk}"


class WaitlistOffer(models.Model):
    """A freed time held for one waiting patient (``booking``, held by bookings' own rules) and texted to them.
    At most one open offer per freed time and per booking."""

    class State(models.TextChoices):
        OFFERED = "offered", "Offered (held)"
        TAKEN = "taken", "Taken (booked)"
        DECLINED = "declined", "Declined or released"
        EXPIRED = "expired", "Expired (not taken in time)"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    entry = models.ForeignKey(WaitlistEntry, on_delete=models.CASCADE, related_name="offers")
    freed = models.ForeignKey(FreedTime, on_delete=models.CASCADE, related_name="offers")
    booking = models.OneToOneField("bookings.Booking", on_delete=models.PROTECT, related_name="+")
    patient_phone = models.CharField(max_length=16, validators=[validate_e164])
    provider = models.ForeignKey("emr.Provider", on_delete=models.PROTECT, related_name="+")
    start = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.OFFERED)
    offered_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    texted_at = models.DateTimeField(null=True, blank=True, help_text="When the offer's text was queued.")
    closed_at = models.DateTimeField(null=True, blank=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-offered_at", "-pk"]
        indexes = [models.Index(fields=["clinic", "patient_phone", "offered_at"])]
        constraints = [
            models.UniqueConstraint(
                fields=["freed"], condition=models.Q(state="offered"), name="waitlist_one_open_offer_per_freed_time"
            )
        ]

    def __str__(self):
        return f"Waitlist offer #{self.pk}"
