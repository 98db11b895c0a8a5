"""The tenant core: clinics, their staff, their service catalog, and the audit log of patient-data access."""

import zoneinfo
from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q

from .http import origin_of
from .phones import validate_e164
from .tenancy import ClinicQuerySet, ClinicScopedQuerySet

# Federal TCPA calling window (47 CFR 64.1200(c)(1)); a clinic may narrow it, never widen it.
FEDERAL_WINDOW_START = time(8, 0)
FEDERAL_WINDOW_END = time(21, 0)


# The window's defaults as callables: a fixed time default makes Django's check (fields.W161) warn whenever it runs
# within 10 s of 8:00 or 21:00 in TIME_ZONE, which failed `check --deploy` in a CI run at 21:00 UTC.
def federal_window_start() -> time:
    return FEDERAL_WINDOW_START


def federal_window_end() -> time:
    return FEDERAL_WINDOW_END


DEFAULT_INTRO = (
    "Hi, this is {clinic}. Sorry we missed you! How can we help? "
    "Ask about treatments, prices or open times. Reply STOP to opt out."
)
DEFAULT_LEAD_INTRO = (
    "Hi, this is {clinic}. Thanks for your message on our website! How can we help? "
    "Ask about treatments, prices or open times. Reply STOP to opt out."
)
DEFAULT_HELP = (
    "{clinic}: appointment and treatment info by text. Help: {phone} {website}. "
    "Msg frequency varies. Msg & data rates may apply. Reply STOP to opt out."
)


def validate_timezone(value):
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not an IANA time zone (e.g. America/New_York).")


def validate_us_state(value):
    if value and not (len(value) == 2 and value.isalpha() and value.isupper()):
        raise ValidationError("Use the two-letter state code, e.g. NY.")


class Clinic(models.Model):
    """A tenant: one medspa location with its own number, catalog, policies and staff."""

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=60, unique=True, help_text="Used in URLs and the lead form.")
    timezone = models.CharField(max_length=64, default="America/New_York", validators=[validate_timezone])
    street = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(
        max_length=2,
        blank=True,
        validators=[validate_us_state],
        help_text="Two-letter code; decides state texting rules.",
    )
    postal_code = models.CharField(max_length=10, blank=True)
    front_desk_phone = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_e164],
        help_text="E.164, e.g. +16175550123. Shown in HELP replies.",
    )
    staff_mobile = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_e164],
        help_text="E.164. Texted (a link, no patient data) when a patient needs a person; empty: email only.",
    )
    website = models.URLField(blank=True, help_text="Its origin may embed the lead form.")
    allowed_origins = models.JSONField(
        default=list,
        blank=True,
        help_text="Other web origins allowed to post leads for this clinic, e.g. https://book.example.com.",
    )
    intro_message = models.TextField(
        "missed-call intro", default=DEFAULT_INTRO, help_text="First text after a missed call. {clinic}: the name."
    )
    lead_intro_message = models.TextField(
        "web-lead intro", default=DEFAULT_LEAD_INTRO, help_text="First text after a web form. {clinic}: the name."
    )
    help_message = models.TextField(
        default=DEFAULT_HELP, help_text="Reply to HELP/INFO. {clinic}, {phone} and {website} are filled in."
    )
    sending_window_start = models.TimeField(
        default=federal_window_start, help_text="Earliest local time for texts that are not direct replies."
    )
    sending_window_end = models.TimeField(
        default=federal_window_end, help_text="Latest local time for texts that are not direct replies."
    )
    deposit_policy = models.TextField(
        blank=True, help_text="Shown to the patient before the deposit link, e.g. who pays a deposit and refunds."
    )
    cancellation_policy = models.TextField(blank=True)
    cancellation_notice_hours = models.PositiveIntegerField(default=24)
    ai_enabled = models.BooleanField("assistant on", default=True, help_text="Off: texts are left for staff.")
    spanish = models.BooleanField(
        "answer in Spanish",
        default=True,
        help_text="On: a patient who texts in Spanish is answered in Spanish (booking, prices, times, deposit, "
        "cancellation, HELP, opt-out). Off: every reply is in English; Spanish opt-out words are honoured either way.",
    )
    require_two_factor = models.BooleanField(
        "require two-factor login",
        default=False,
        help_text="On: every staff member of this clinic must set up an authenticator app before using the admin. "
        "Only the clinic's owner can change this.",
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sending_window_start__gte=FEDERAL_WINDOW_START)
                & Q(sending_window_end__lte=FEDERAL_WINDOW_END)
                & Q(sending_window_start__lt=models.F("sending_window_end")),
                name="clinic_sending_window_within_federal",
            )
        ]

    def __str__(self):
        return self.name

    @property
    def clinic_id(self):
        """A clinic owns itself: lets tenant helpers treat Clinic like any clinic-owned row."""
        return self.pk

    @property
    def tz(self):
        return zoneinfo.ZoneInfo(self.timezone)

    def clean(self):
        if not (FEDERAL_WINDOW_START <= self.sending_window_start < self.sending_window_end <= FEDERAL_WINDOW_END):
            raise ValidationError(
                {
                    "sending_window_end": (
                        "The sending window must lie within 8:00-21:00 (federal rule) and end after it starts."
                    )
                }
            )
        if not isinstance(self.allowed_origins, list) or not all(isinstance(o, str) for o in self.allowed_origins):
            raise ValidationError({"allowed_origins": "A list of origins such as https://www.example.com."})

    def render_intro(self, *, web_lead=False):
        template = self.lead_intro_message if web_lead else self.intro_message
        return template.replace("{clinic}", self.name)

    def render_help(self):
        return (
            self.help_message.replace("{clinic}", self.name)
            .replace("{phone}", self.front_desk_phone)
            .replace("{website}", self.website)
        )

    def lead_origins(self):
        """Web origins whose pages may post this clinic's leads (scheme://host[:port], lower case)."""

        origins = {origin_of(self.website)} | {origin_of(o) for o in self.allowed_origins}
        return {o for o in origins if o}


class ClinicMembership(models.Model):
    """A staff user's access to one clinic. A user sees only the clinics they are a member of."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        MANAGER = "manager", "Manager"
        FRONT_DESK = "front_desk", "Front desk"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="clinic_memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.FRONT_DESK)
    notify = models.BooleanField(
        default=True, help_text="Emailed when something needs a person (the clinic's owner chooses who)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["clinic", "user"], name="membership_unique_user_per_clinic")]
        verbose_name = "staff membership"

    def __str__(self):
        return f"{self.user} @ {self.clinic} ({self.get_role_display()})"


def format_cents(cents):
    dollars, rest = divmod(int(cents), 100)
    return f"${dollars:,}" if rest == 0 else f"${dollars:,}.{rest:02d}"


class Service(models.Model):
    """A treatment on a clinic's menu with its real price. Replies quote prices only from here or knowledge."""

    class PriceType(models.TextChoices):
        FIXED = "fixed", "Fixed price"
        RANGE = "range", "Price range"
        PER_UNIT = "per_unit", "Per unit"
        CONSULT = "consult", "Quoted at consultation"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="services")
    name = models.CharField(max_length=120)
    aliases = models.JSONField(
        default=list, blank=True, help_text="Other names patients use, comma separated: tox, wrinkle relaxer."
    )
    description = models.TextField(blank=True)
    price_type = models.CharField(max_length=10, choices=PriceType.choices, default=PriceType.FIXED)
    price_cents = models.PositiveIntegerField(
        null=True, blank=True, help_text="Fixed price, price per unit, or the low end of a range, in cents."
    )
    price_max_cents = models.PositiveIntegerField(null=True, blank=True, help_text="High end of a range, in cents.")
    unit_name = models.CharField(
        max_length=30, blank=True, help_text="What one unit is ('unit', 'syringe'); for per-unit prices and ranges."
    )
    typical_units_min = models.PositiveIntegerField(null=True, blank=True)
    typical_units_max = models.PositiveIntegerField(null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(default=30, validators=[MinValueValidator(5)])
    deposit_cents = models.PositiveIntegerField(default=0, help_text="Deposit to hold a time, in cents; 0 for none.")
    deposit_new_clients_only = models.BooleanField(default=True)
    rebook_after_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The treatment interval: this many days after a completed visit, one text offers the soonest times "
        "(if the patient has not rebooked). Empty: no rebooking text.",
    )
    emr_service_id = models.CharField(
        "EMR mapping id", max_length=100, blank=True, help_text="The appointment type / item id in the clinic's EMR."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["clinic", "name"]
        constraints = [
            models.UniqueConstraint(fields=["clinic", "name"], name="service_unique_name_per_clinic"),
            models.CheckConstraint(
                name="service_price_matches_type",
                condition=(
                    Q(price_type="consult", price_cents__isnull=True, price_max_cents__isnull=True)
                    | Q(price_type="fixed", price_cents__isnull=False, price_max_cents__isnull=True)
                    | Q(price_type="per_unit", price_cents__isnull=False, price_max_cents__isnull=True)
                    & ~Q(unit_name="")
                    | Q(
                        price_type="range",
                        price_cents__isnull=False,
                        price_max_cents__isnull=False,
                        price_max_cents__gt=models.F("price_cents"),
                    )
                ),
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        t = self.PriceType
        if self.price_type == t.CONSULT:
            if self.price_cents is not None or self.price_max_cents is not None:
                errors["price_cents"] = "A service quoted at consultation has no price here."
        else:
            if self.price_cents is None:
                errors["price_cents"] = "Required for this price type."
            if self.price_type == t.RANGE:
                if self.price_max_cents is None or (
                    self.price_cents is not None and self.price_max_cents <= self.price_cents
                ):
                    errors["price_max_cents"] = "A range needs a high end above the low end."
            elif self.price_max_cents is not None:
                errors["price_max_cents"] = "Only a price range has a high end."
            if self.price_type == t.PER_UNIT and not self.unit_name:
                errors["unit_name"] = "Say what one unit is, e.g. 'unit' or 'syringe'."
        lo, hi = self.typical_units_min, self.typical_units_max
        if (lo is None) != (hi is None) or (lo is not None and lo > hi):
            errors["typical_units_max"] = "Give both typical unit counts, low then high."
        if errors:
            raise ValidationError(errors)

    def price_text(self):
        """The price as the assistant may quote it, built only from these fields."""
        t = self.PriceType
        per = f" per {self.unit_name}" if self.unit_name else ""
        if self.price_type == t.CONSULT:
            return "priced at a consultation"
        if self.price_type == t.FIXED:
            return format_cents(self.price_cents) if self.price_cents else "free"
        if self.price_type == t.RANGE:
            return f"{format_cents(self.price_cents)}-{format_cents(self.price_max_cents)}{per}"
        text = f"{format_cents(self.price_cents)}{per}"
        if self.typical_units_min is not None:
            low = format_cents(self.price_cents * self.typical_units_min)
            high = format_cents(self.price_cents * self.typical_units_max)
            text += (
                f" (most treatments use {self.typical_units_min}-{self.typical_units_max} {self.unit_name}s, "
                f"about {low}-{high})"
            )
        return text

    def deposit_for(self, *, new_client: bool) -> int:
        """Deposit in cents this patient pays to hold a time."""
        if self.deposit_new_clients_only and not new_client:
            return 0
        return self.deposit_cents

    def matches(self, text: str) -> bool:
        """True when ``text`` names this service or one of its aliases (case-insensitive, whole phrase)."""
        needle = " ".join(text.lower().split())
        return any(needle == name.lower() for name in [self.name, *self.aliases])


class AuditEventQuerySet(ClinicScopedQuerySet):
    def update(self, **kwargs):
        raise PermissionError("Audit events are append-only.")

    def delete(self):
        raise PermissionError("Audit events are append-only.")


class AuditEvent(models.Model):
    """Append-only record of who viewed or changed patient data (HIPAA 164.312(b)).

    Rows carry ids, never the patient data itself. Nobody edits or deletes them: the model refuses updates and
    deletes, the admin is read-only for everyone, and on PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    class Action(models.TextChoices):
        VIEW = "view", "Viewed"
        LIST = "list", "Listed"
        ADD = "add", "Created"
        CHANGE = "change", "Changed"
        DELETE = "delete", "Deleted"
        EXPORT = "export", "Exported"
        ASSISTANT = "assistant", "Assistant action"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    actor_id = models.BigIntegerField(null=True, blank=True, help_text="User id; empty for the system/assistant.")
    actor = models.CharField(max_length=150, help_text="Username at the time, or 'assistant' / 'system'.")
    action = models.CharField(max_length=12, choices=Action.choices)
    object_type = models.CharField(max_length=100, help_text="app_label.model")
    object_id = models.CharField(max_length=64, blank=True)
    channel = models.CharField(max_length=20, default="admin", help_text="admin, api, assistant, command")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    detail = models.JSONField(default=dict, blank=True, help_text="Field names or counts; never field values.")

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]

    def __str__(self):
        return f"{self.actor} {self.action} {self.object_type}#{self.object_id}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise PermissionError("Audit events are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise PermissionError("Audit events are append-only.")


class StaffAlert(models.Model):
    """Something a person at the clinic must do or know: a manual EMR booking to enter, a payment that did not
    match, an urgent message. Listed in the admin ("Needs attention") and emailed to the clinic's staff.

    The text names ids and what to do, never patient data: it goes out by email."""

    class Kind(models.TextChoices):
        MANUAL_BOOKING = "manual_booking", "Enter a booking in the EMR"
        MANUAL_CANCEL = "manual_cancel", "Remove a cancelled booking from the EMR"
        EMR_ERROR = "emr_error", "EMR write failed"
        PAYMENT = "payment", "Payment needs review"
        REFUND = "refund", "Refund"
        HANDOFF = "handoff", "Conversation needs a person"
        URGENT = "urgent", "Urgent patient message"
        WEBHOOK = "webhook", "Provider event failed"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="staff_alerts")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    text = models.CharField(max_length=300, help_text="What happened and what to do; ids only, no patient data.")
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model")
    object_id = models.CharField(max_length=64, blank=True)
    dedupe_key = models.CharField(max_length=150, unique=True, help_text="The same alert is raised once.")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    conversation_ref = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="The patient's conversation it is about (staff are told once an hour)."
    )
    notified_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff were told (or would have been: see 'throttled')."
    )
    throttled = models.BooleanField(
        default=False, help_text="Not sent: staff were told about the same conversation less than an hour before."
    )
    emailed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.CharField(max_length=150, blank=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["resolved_at", "-created_at"]
        indexes = [
            models.Index(fields=["clinic", "resolved_at"]),
            models.Index(fields=["conversation_ref", "notified_at"], name="staffalert_conversation_told"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.object_type}#{self.object_id}"
