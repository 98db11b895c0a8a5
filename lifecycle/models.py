from datetime import time

from django.core.exceptions import ValidationError
from django.db import models

from medspa.models import Clinic
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet

# The placeholders each template may use (checked when staff save a template in the admin).
PLACEHOLDERS = {
    "confirmation_template": {"clinic", "service", "provider", "when", "zone"},
    "reminder_template": {"clinic", "service", "provider", "when", "zone", "time", "address", "parking"},
    "no_show_template": {"clinic", "service"},
    "rebook_template": {"clinic", "service", "times"},
    "review_template": {"clinic", "service", "review_url"},
}

DEFAULT_TEMPLATES = {
    "confirmation_template": "{clinic}: your {service} with {provider} is {when} ({zone}). Reply C to confirm or R "
    "to reschedule. To cancel, reply 'cancel appointment'.",
    "reminder_template": "{clinic}: see you today at {time} ({zone}) for your {service} with {provider}, "
    "{address}. {parking} Reply R to reschedule.",
    "no_show_template": "{clinic}: we missed you yesterday for your {service}. We hope all is well! Reply here "
    "if you'd like to pick a new time.",
    "rebook_template": "{clinic}: it's about time for your next {service}. Open times: {times}. Reply 1, 2 or 3 "
    "to book one, or tell me a day.",
    "review_template": "{clinic}: thank you for visiting us for your {service}! If you have a minute, a review "
    "helps us a lot: {review_url}",
}

# The same texts for a booking made in Spanish (``bookings.services.booking_in_spanish``): the product's wording,
# formal "usted", GSM-7 safe once ``medspa.spanish.gsm7`` has taken out á í ó ú (é and ñ stay). Not editable per
# clinic: staff edit the English templates above; a clinic's own English wording (and its parking line) has no
# Spanish version, and an English template that carries a STOP line gets the Spanish ALTO line (``services``).
# {when} here is "vie 27 nov, 11:00 AM ET" (``medspa.timetext.when_es``, the zone in it), {at_time} "a las 9:00 AM".
SPANISH_TEMPLATES = {
    "confirmation_template": "{clinic}: su cita de {service} con {provider} es el {when}. Responda C para "
    "confirmarla o R para cambiarla. Para cancelar, responda 'cancelar cita'.",
    "reminder_template": "{clinic}: lo esperamos hoy {at_time} ({zone}) para su cita de {service} con {provider}, "
    "{address}. {parking} Responda R para cambiarla.",
    "no_show_template": "{clinic}: lo extrañamos ayer en su cita de {service}. Esperamos que todo esté bien. Si "
    "desea elegir un nuevo horario, responda a este mensaje.",
    "rebook_template": "{clinic}: ya es tiempo de su próxima cita de {service}. Horarios disponibles: {times}. "
    "Responda 1, 2 o 3 para reservar uno, o dígame qué día le conviene.",
    "review_template": "{clinic}: gracias por visitarnos para su cita de {service}. Si tiene un minuto, una reseña "
    "nos ayuda mucho: {review_url}",
}
SPANISH_STOP_LINE = "Responda ALTO para darse de baja."


def _check_placeholders(name, value):
    import string

    allowed = PLACEHOLDERS[name]
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
    except ValueError as exc:
        raise ValidationError({name: f"Not a valid template: {exc}"}) from None
    unknown = used - allowed
    if unknown:
        raise ValidationError(
            {name: f"Unknown placeholders {sorted(unknown)}; this text may use {{{'}, {'.join(sorted(allowed))}}}."}
        )


class LifecycleSettings(models.Model):
    """One clinic's texts after a booking. A clinic without a row uses these defaults (``settings_for``)."""

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="lifecycle_settings")

    confirmation_on = models.BooleanField("confirmation request on", default=True)
    confirmation_lead_hours = models.PositiveIntegerField(
        default=48, help_text="Sent this long before the appointment (Boulevard's cancellation terms use 48 h)."
    )
    morning_time = models.TimeField(
        default=time(9, 0),
        help_text="'The next morning', clinic time: the confirmation request of a booking made inside its lead time, "
        "and the no-show text.",
    )
    confirmation_template = models.TextField(default=DEFAULT_TEMPLATES["confirmation_template"])

    reminder_on = models.BooleanField("same-day reminder on", default=True)
    reminder_lead_minutes = models.PositiveIntegerField(default=120, help_text="Sent this long before the visit.")
    parking_line = models.CharField(max_length=200, blank=True, help_text="{parking} in the reminder.")
    reminder_template = models.TextField(default=DEFAULT_TEMPLATES["reminder_template"])

    no_show_text_on = models.BooleanField("no-show text on", default=True)
    no_show_keeps_deposit = models.BooleanField(
        default=True, help_text="A no-show forfeits a paid deposit (recorded on the payment), per the deposit policy."
    )
    no_show_template = models.TextField(default=DEFAULT_TEMPLATES["no_show_template"])

    rebook_on = models.BooleanField("rebooking text on", default=True)
    rebook_template = models.TextField(default=DEFAULT_TEMPLATES["rebook_template"])

    review_on = models.BooleanField(
        "review request on", default=True, help_text="Sent only when the review link below is set."
    )
    review_url = models.URLField(blank=True, help_text="Where patients leave a review (Google, Yelp...).")
    review_delay_hours = models.PositiveIntegerField(default=2, help_text="After the visit's end.")
    review_template = models.TextField(default=DEFAULT_TEMPLATES["review_template"])

    emr_sync_days = models.PositiveIntegerField(
        default=3, help_text="The periodic check of the EMR covers the bookings of the next this many days."
    )
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "texts after booking (settings)"
        verbose_name_plural = "texts after booking (settings)"

    def __str__(self):
        return f"Texts after booking: {self.clinic}"

    def clean(self):
        for name in PLACEHOLDERS:
            _check_placeholders(name, getattr(self, name))


class ScheduledTextQuerySet(ClinicScopedQuerySet):
    def pending(self):
        return self.filter(state=ScheduledText.State.PENDING)


class ScheduledText(models.Model):
    """A text due later about a booking (confirmation request, reminder, no-show, rebooking, review request): the
    database is the source of truth for what is due (never a countdown in the broker). Beat releases it at
    ``send_at`` (its ``due_at`` moved into the recipient's sending window); ``why`` says why it exists, ``outcome``
    what became of it. One per (booking, kind): never sent twice."""

    class Kind(models.TextChoices):
        CONFIRMATION = "confirmation", "Confirmation request"
        REMINDER = "reminder", "Same-day reminder"
        NO_SHOW = "no_show", "No-show: offer to rebook"
        REBOOK = "rebook", "Rebooking at the treatment interval"
        REVIEW = "review", "Review request"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent (handed to messaging)"
        CANCELLED = "cancelled", "Cancelled"
        SKIPPED = "skipped", "Not sent"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    booking = models.ForeignKey("bookings.Booking", on_delete=models.CASCADE, related_name="scheduled_texts")
    patient_phone = models.CharField(max_length=16, validators=[validate_e164])
    kind = models.CharField(max_length=20, choices=Kind.choices)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    due_at = models.DateTimeField(help_text="When the clinic's settings make it due.")
    send_at = models.DateTimeField(db_index=True, help_text="Due time moved into the recipient's sending window.")
    why = models.CharField(max_length=300, help_text="Why this text exists (ids and settings, no patient data).")
    outcome = models.CharField(max_length=300, blank=True, help_text="What became of it, and why.")
    message = models.ForeignKey("messaging.Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ScheduledTextQuerySet.as_manager()

    class Meta:
        ordering = ["send_at", "pk"]
        indexes = [models.Index(fields=["state", "send_at"])]
        constraints = [models.UniqueConstraint(fields=["booking", "kind"], name="scheduledtext_once_per_booking")]

    def __str__(self):
        return f"Scheduled text #{self.pk}"
