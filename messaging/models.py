from django.db import models

from medspa.models import Clinic
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet


class OptOutQuerySet(ClinicScopedQuerySet):
    def active(self):
        return self.filter(active=True)


class OptOut(models.Model):
    """The opt-out ledger: one row per (clinic, phone). While ``active``, that clinic sends that number nothing but
    the single opt-out confirmation. Rows are never deleted: an opt-in clears ``active`` and keeps the history."""

    class Source(models.TextChoices):
        KEYWORD = "keyword", "Opt-out keyword"
        PHRASE = "phrase", "Revocation in plain words"
        UNCLEAR = "unclear", "Unclear text, taken as opt-out"
        PROVIDER = "provider", "Carrier/provider block"
        STAFF = "staff", "Staff"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="opt_outs")
    phone = models.CharField(max_length=16, validators=[validate_e164])
    active = models.BooleanField(default=True, help_text="Opted out now.")
    source = models.CharField(max_length=10, choices=Source.choices)
    detail = models.CharField(
        max_length=120, blank=True, help_text="Why: the rule that matched or the provider error code; never the text."
    )
    needs_review = models.BooleanField(
        default=False,
        help_text="Taken as an opt-out without being a clear one (e.g. 'cancel' alone): check with staff.",
    )
    opted_out_at = models.DateTimeField()
    opted_in_at = models.DateTimeField(null=True, blank=True)
    times_opted_out = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OptOutQuerySet.as_manager()

    class Meta:
        verbose_name = "opt-out"
        ordering = ["-opted_out_at"]
        constraints = [models.UniqueConstraint(fields=["clinic", "phone"], name="optout_unique_phone_per_clinic")]

    def __str__(self):
        return f"Opt-out #{self.pk}"


class Provider(models.TextChoices):
    TELNYX = "telnyx", "Telnyx"
    TWILIO = "twilio", "Twilio"
    CONSOLE = "console", "Console (development)"
    LOCMEM = "locmem", "Local memory (tests)"


class ClinicMessaging(models.Model):
    """A clinic's sender identity at Telnyx: its messaging profile (one per clinic, because a STOP blocks every
    number on a profile) and its 10DLC brand and campaign, with the statuses the carriers report."""

    class EntityType(models.TextChoices):
        PRIVATE_PROFIT = "PRIVATE_PROFIT", "Private company"
        PUBLIC_PROFIT = "PUBLIC_PROFIT", "Public company"
        NON_PROFIT = "NON_PROFIT", "Non-profit"
        SOLE_PROPRIETOR = "SOLE_PROPRIETOR", "Sole proprietor"

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="messaging")
    messaging_profile_id = models.CharField(max_length=64, blank=True)
    legal_name = models.CharField(max_length=200, blank=True, help_text="Company name as registered (10DLC brand).")
    ein = models.CharField("EIN", max_length=20, blank=True)
    entity_type = models.CharField(max_length=20, choices=EntityType.choices, default=EntityType.PRIVATE_PROFIT)
    contact_email = models.EmailField(blank=True)
    # Public companies (PUBLIC_PROFIT) also need these three.
    stock_symbol = models.CharField(max_length=10, blank=True, help_text="Public company: ticker, e.g. GLOW.")
    stock_exchange = models.CharField(max_length=10, blank=True, help_text="Public company: NASDAQ, NYSE, ...")
    business_contact_email = models.EmailField(
        blank=True, help_text="Public company: the email TCR uses to confirm the brand (a corporate address)."
    )
    # Sole proprietors (no EIN): the owner's own name and the mobile phone the one-time password is texted to.
    first_name = models.CharField(max_length=100, blank=True, help_text="Sole proprietor: owner's first name.")
    last_name = models.CharField(max_length=100, blank=True, help_text="Sole proprietor: owner's last name.")
    mobile_phone = models.CharField(
        max_length=16,
        blank=True,
        validators=[validate_e164],
        help_text="Sole proprietor: the owner's US mobile (E.164); Telnyx texts the verification PIN to it.",
    )
    brand_id = models.CharField(max_length=64, blank=True)
    brand_status = models.CharField(max_length=40, blank=True, help_text="OK, REGISTRATION_PENDING, ...")
    brand_identity_status = models.CharField(
        max_length=40, blank=True, help_text="UNVERIFIED, VERIFIED, VETTED_VERIFIED, SELF_DECLARED."
    )
    otp_reference_id = models.CharField(
        max_length=64, blank=True, help_text="Sole proprietor: the PIN Telnyx last texted (its referenceId)."
    )
    campaign_id = models.CharField(max_length=64, blank=True)
    campaign_status = models.CharField(max_length=40, blank=True)
    last_error = models.TextField(blank=True)
    # The periodic 10DLC refresh backs off after a failed call: it tries again at tendlc_retry_at.
    tendlc_failures = models.PositiveSmallIntegerField(default=0)
    tendlc_retry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "sender registration (10DLC)"
        verbose_name_plural = "sender registrations (10DLC)"

    def __str__(self):
        return f"10DLC for {self.clinic}"


class PhoneNumber(models.Model):
    """A number a clinic texts from and takes calls on. Inbound messages and calls are routed by it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Ordered, not active yet"
        ACTIVE = "active", "Active"
        RELEASED = "released", "Released"

    class CampaignStatus(models.TextChoices):
        NONE = "none", "Not on a campaign"
        PENDING = "pending", "Assignment pending"
        ASSIGNED = "assigned", "On the campaign"
        FAILED = "failed", "Assignment failed"
        NOT_REQUIRED = "not_required", "Not required (toll-free or test)"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="phone_numbers")
    number = models.CharField(max_length=16, unique=True, validators=[validate_e164])
    provider = models.CharField(max_length=10, choices=Provider.choices, default=Provider.TELNYX)
    messaging_profile_id = models.CharField(max_length=64, blank=True, help_text="Telnyx messaging profile.")
    messaging_service_sid = models.CharField(max_length=64, blank=True, help_text="Twilio messaging service.")
    provider_number_id = models.CharField(max_length=64, blank=True)
    sms = models.BooleanField(default=True)
    mms = models.BooleanField(default=False)
    voice = models.BooleanField(default=True)
    hosted = models.BooleanField(default=False, help_text="The clinic's own landline, SMS-enabled (hosted SMS).")
    order_id = models.CharField(max_length=64, blank=True)
    order_status = models.CharField(max_length=40, blank=True)
    campaign_status = models.CharField(max_length=20, choices=CampaignStatus.choices, default=CampaignStatus.NONE)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    is_default = models.BooleanField(
        "default sender",
        default=False,
        help_text="Texts to a patient who has not used any of the clinic's numbers (web leads) go from this one. "
        "Everyone else hears back from the number they texted or called.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["clinic", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic"], condition=models.Q(is_default=True), name="phonenumber_one_default_per_clinic"
            )
        ]

    def __str__(self):
        return self.number


class MessageQuerySet(ClinicScopedQuerySet):
    def due(self, now):
        return self.filter(status=Message.Status.SCHEDULED, due_at__lte=now)


class Message(models.Model):
    """One SMS/MMS, inbound or outbound. Outbound rows are written before the send (status queued, or scheduled
    with ``due_at`` when quiet hours defer them) under a unique idempotency key, so a retry never sends twice."""

    class Direction(models.TextChoices):
        INBOUND = "inbound", "Inbound"
        OUTBOUND = "outbound", "Outbound"

    class Kind(models.TextChoices):
        PATIENT = "patient", "Patient's text"
        REPLY = "reply", "Reply"
        INTRO = "intro", "Intro"
        COMPLIANCE = "compliance", "Opt-out/opt-in/help reply"
        STAFF = "staff", "Staff"
        NOTICE = "notice", "Reminder or notice"

    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        SCHEDULED = "scheduled", "Waiting for the sending window"
        QUEUED = "queued", "Queued"
        SENDING = "sending", "Sending"
        UNKNOWN = "unknown", "Sent? (request timed out; awaiting status)"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        DROPPED = "dropped", "Not sent (opted out)"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="messages")
    conversation = models.ForeignKey(
        "conversation.Conversation", on_delete=models.CASCADE, related_name="messages", null=True, blank=True
    )
    direction = models.CharField(max_length=8, choices=Direction.choices)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    from_number = models.CharField(max_length=16)
    to_number = models.CharField(max_length=16)
    body = models.TextField(blank=True)
    media = models.JSONField(default=list, blank=True, help_text="MMS media: [{url, content_type}].")
    provider = models.CharField(max_length=10, choices=Provider.choices)
    provider_message_id = models.CharField(max_length=64, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices)
    error_code = models.CharField(max_length=20, blank=True)
    error_detail = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    in_reply_to = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    due_at = models.DateTimeField(null=True, blank=True, help_text="Deferred: not before this time.")
    attempts = models.PositiveSmallIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "pk"]
        indexes = [
            models.Index(fields=["status", "due_at"]),
            models.Index(fields=["direction", "created_at"], name="message_direction_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"],
                condition=models.Q(provider_message_id__isnull=False),
                name="message_unique_provider_id",
            )
        ]

    def __str__(self):
        return f"Message #{self.pk}"

    @property
    def patient_phone(self):
        return self.from_number if self.direction == self.Direction.INBOUND else self.to_number
