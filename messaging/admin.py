from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from medspa import frontdesk
from medspa.admin import ClinicAdmin, ClinicScopedAdmin, ClinicScopedInline, PatientDataAdmin
from medspa.audit import audit_record
from medspa.models import AuditEvent
from medspa.phones import normalize_phone

from .models import ClinicMessaging, Message, OptOut, PhoneNumber
from .provisioning import (
    ProvisioningError,
    brand_missing_fields,
    brand_otp_trigger,
    brand_otp_verify,
    brand_register,
    campaign_register,
    messaging_profile_ensure,
    number_assign_campaign,
    provisioning_refresh,
    tendlc_advance,
    tendlc_state,
)
from .services import message_retry, optout_record


class StaffOptOutForm(forms.ModelForm):
    """A patient asked by phone or in person: staff record the opt-out (consent may be revoked by any means)."""

    class Meta:
        model = OptOut
        fields = ["clinic", "phone", "detail"]
        help_texts = {"detail": "How the patient asked, e.g. 'phoned the front desk'. No health details."}

    def clean_phone(self):
        try:
            return normalize_phone(self.cleaned_data["phone"])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None

    def clean(self):
        cleaned = super().clean()
        # An existing row for (clinic, phone) is updated by optout_record, not reported as a duplicate.
        existing = OptOut.objects.filter(clinic=cleaned.get("clinic"), phone=cleaned.get("phone")).first()
        if existing is not None:
            self.instance = existing
        return cleaned


@admin.register(OptOut)
class OptOutAdmin(PatientDataAdmin):
    """The ledger is evidence: written by the compliance code (or a staff entry), never edited or deleted here.
    Opting back in is the patient's act (START), so there is no staff action for it."""

    list_display = [
        "__str__",
        "phone",
        "clinic",
        "active",
        "source",
        "needs_review",
        "opted_out_at",
        "opted_in_at",
        "times_opted_out",
    ]
    list_filter = ["clinic", "active", "source", "needs_review"]
    list_select_related = ["clinic"]
    search_fields = ["phone"]
    date_hierarchy = "opted_out_at"
    show_full_result_count = False
    readonly_fields = [
        "clinic",
        "phone",
        "active",
        "source",
        "detail",
        "needs_review",
        "opted_out_at",
        "opted_in_at",
        "times_opted_out",
    ]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = StaffOptOutForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ["clinic", "phone", "detail"]

    def save_model(self, request, obj, form, change):
        row, _ = optout_record(
            clinic=obj.clinic, phone=obj.phone, source=OptOut.Source.STAFF, detail=obj.detail or "entered by staff"
        )
        obj.pk = row.pk
        audit_record(action=AuditEvent.Action.ADD, obj=row, request=request, detail={"fields": ["opt_out"]})

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- Numbers and 10DLC ------------------------------------------------------------------------------------------


def _run(modeladmin, request, label, func, objects):
    """Call a provisioning function per object; report each outcome to the user."""

    for obj in objects:
        try:
            func(obj)
        except (ProvisioningError, ValueError) as exc:
            modeladmin.message_user(request, f"{label} failed for {obj}: {exc}", level=messages.ERROR)
        else:
            modeladmin.message_user(request, f"{label}: done for {obj}.", level=messages.SUCCESS)


class PhoneNumberInline(ClinicScopedInline):
    model = PhoneNumber
    fields = [
        "number", "provider", "is_default", "sms", "mms", "voice", "status", "campaign_status", "messaging_profile_id"
    ]  # fmt: skip
    readonly_fields = ["campaign_status"]


ClinicAdmin.inlines = [*ClinicAdmin.inlines, PhoneNumberInline]


@admin.register(PhoneNumber)
class PhoneNumberAdmin(ClinicScopedAdmin):
    list_display = ["number", "clinic", "provider", "is_default", "status", "campaign_status", "hosted", "order_status"]
    list_filter = ["clinic", "provider", "status", "campaign_status"]
    list_select_related = ["clinic"]
    search_fields = ["number"]
    actions = ["assign_to_campaign"]

    @admin.action(description="Attach to the clinic's 10DLC campaign (Telnyx)", permissions=["change"])
    def assign_to_campaign(self, request, queryset):

        _run(self, request, "Campaign assignment", lambda n: number_assign_campaign(phone_number=n), queryset)


class ClinicMessagingForm(forms.ModelForm):
    """The 10DLC brand form: the fields each entity type needs are grouped (see the fieldsets), and a sole
    proprietor's owner enters the PIN Telnyx texted to their mobile here."""

    otp_pin = forms.CharField(
        label="Verification PIN",
        required=False,
        max_length=10,
        help_text="Sole proprietor: the PIN Telnyx texted to the owner's mobile. Saving sends it to Telnyx.",
    )

    class Meta:
        model = ClinicMessaging
        fields = "__all__"

    def clean_otp_pin(self):
        pin = self.cleaned_data.get("otp_pin", "").strip()
        if pin and not pin.isdigit():
            raise ValidationError("The PIN is the digits of the text message.")
        if pin and not (self.instance.pk and self.instance.brand_id):
            raise ValidationError("Register the brand first; Telnyx then texts the PIN.")
        return pin


@admin.register(ClinicMessaging)
class ClinicMessagingAdmin(ClinicScopedAdmin):
    """Where a clinic's texts may go out from: its Telnyx messaging profile and 10DLC brand and campaign. Carriers
    block unregistered traffic, so the statuses here are worth a look before a clinic goes live."""

    form = ClinicMessagingForm
    list_display = ["clinic", "messaging_profile_id", "brand_status", "campaign_status", "numbers_on_campaign"]
    list_select_related = ["clinic"]
    readonly_fields = [
        "still_needed",
        "registration_state",
        "messaging_profile_id",
        "brand_id",
        "brand_status",
        "brand_identity_status",
        "otp_reference_id",
        "campaign_id",
        "campaign_status",
        "last_error",
        "tendlc_failures",
        "tendlc_retry_at",
    ]
    fieldsets = [
        (None, {"fields": ["clinic", "entity_type", "still_needed", "registration_state"]}),
        (
            "Company (private, public, non-profit)",
            {
                "fields": ["legal_name", "ein", "contact_email"],
                "description": "The clinic's phone, street, city, state, postal code and website come from the "
                "clinic's own page; they are needed too.",
            },
        ),
        ("Public company", {"fields": ["stock_symbol", "stock_exchange", "business_contact_email"]}),
        (
            "Sole proprietor (no EIN)",
            {"fields": ["first_name", "last_name", "mobile_phone", "otp_pin", "otp_reference_id"]},
        ),
        (
            "Status at Telnyx",
            {
                "fields": [
                    "messaging_profile_id", "brand_id", "brand_status", "brand_identity_status", "campaign_id",
                    "campaign_status", "last_error", "tendlc_failures", "tendlc_retry_at",
                ]
            },
        ),
    ]  # fmt: skip
    actions = [
        "ensure_profile",
        "advance",
        "register_brand",
        "send_pin",
        "register_campaign",
        "refresh",
    ]

    def get_fieldsets(self, request, obj=None):
        """A saved registration shows only the sections its entity type needs (change the type and save to see
        another's); a new one shows them all."""
        if obj is None:
            return self.fieldsets
        wanted = {
            ClinicMessaging.EntityType.SOLE_PROPRIETOR: "Sole proprietor (no EIN)",
            ClinicMessaging.EntityType.PUBLIC_PROFIT: "Public company",
        }.get(obj.entity_type)
        kinds = {"Company (private, public, non-profit)", "Public company", "Sole proprietor (no EIN)"}
        if obj.entity_type != ClinicMessaging.EntityType.SOLE_PROPRIETOR:
            kinds.discard("Company (private, public, non-profit)")
        kinds.discard(wanted)
        return [section for section in self.fieldsets if section[0] not in kinds]

    @admin.display(description="still needed for the brand")
    def still_needed(self, obj):
        if obj is None or not obj.pk:
            return "Save first; the fields this entity type needs are then listed here."
        if obj.brand_id:
            return "Nothing: the brand is registered."
        return ", ".join(brand_missing_fields(obj)) or "Nothing: ready to register."

    @admin.display(description="10DLC now")
    def registration_state(self, obj):
        return tendlc_state(obj) if obj is not None and obj.pk else ""

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        pin = form.cleaned_data.get("otp_pin")
        if pin:
            try:
                brand_otp_verify(clinic=obj.clinic, pin=pin)
            except (ProvisioningError, ValueError) as exc:
                self.message_user(request, f"PIN not accepted for {obj}: {exc}", level=messages.ERROR)
            else:
                self.message_user(request, f"PIN accepted for {obj}.", level=messages.SUCCESS)
        elif not obj.brand_id and (missing := brand_missing_fields(obj)):
            self.message_user(
                request, f"Still needed for the 10DLC brand of {obj}: {', '.join(missing)}.", level=messages.WARNING
            )

    @admin.display(description="numbers on campaign")
    def numbers_on_campaign(self, obj):
        numbers = PhoneNumber.objects.for_clinic(obj.clinic).exclude(status=PhoneNumber.Status.RELEASED)
        on = numbers.filter(campaign_status=PhoneNumber.CampaignStatus.ASSIGNED).count()
        return f"{on} of {numbers.count()}"

    @admin.action(description="Create the Telnyx messaging profile", permissions=["change"])
    def ensure_profile(self, request, queryset):

        _run(self, request, "Messaging profile", lambda m: messaging_profile_ensure(clinic=m.clinic), queryset)

    @admin.action(description="10DLC: take the next steps now (brand, PIN, campaign, numbers)", permissions=["change"])
    def advance(self, request, queryset):

        for obj in queryset:
            try:
                messaging = tendlc_advance(clinic=obj.clinic)
            except (ProvisioningError, ValueError) as exc:
                self.message_user(request, f"10DLC stopped for {obj}: {exc}", level=messages.ERROR)
            else:
                self.message_user(request, f"10DLC for {obj}: {tendlc_state(messaging)}", level=messages.INFO)

    @admin.action(description="Register the 10DLC brand", permissions=["change"])
    def register_brand(self, request, queryset):

        _run(self, request, "Brand registration", lambda m: brand_register(clinic=m.clinic), queryset)

    @admin.action(description="Sole proprietor: text the verification PIN (again)", permissions=["change"])
    def send_pin(self, request, queryset):

        _run(self, request, "Verification PIN", lambda m: brand_otp_trigger(clinic=m.clinic), queryset)

    @admin.action(description="Register the 10DLC campaign", permissions=["change"])
    def register_campaign(self, request, queryset):

        _run(self, request, "Campaign registration", lambda m: campaign_register(clinic=m.clinic), queryset)

    @admin.action(description="Refresh brand, campaign and number statuses", permissions=["change"])
    def refresh(self, request, queryset):

        _run(self, request, "Status refresh", lambda m: provisioning_refresh(clinic=m.clinic), queryset)


# --- Messages and webhooks --------------------------------------------------------------------------------------


@admin.register(Message)
class MessageAdmin(PatientDataAdmin):
    """Every text in and out. Failed ones are listed with their error; "retry" queues them again."""

    list_display = ["__str__", "created_at", "direction", "kind", "status", "error_code", "attempts", "clinic"]

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not frontdesk.several_clinics(request.user):
            columns.remove("clinic")  # one clinic: the column says nothing
        return columns

    list_filter = ["clinic", "status", "direction", "kind", "provider"]
    list_select_related = ["clinic"]
    search_fields = ["to_number", "from_number", "provider_message_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    raw_id_fields = ["conversation", "in_reply_to"]
    actions = ["retry_failed"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.action(description="Retry the selected failed messages", permissions=["view"])
    def retry_failed(self, request, queryset):
        retried = sum(message_retry(message=m) for m in queryset.filter(status=Message.Status.FAILED))
        self.message_user(request, f"{retried} message(s) queued again (opt-outs are checked before sending).")


# --- The home page -----------------------------------------------------------------------------------------------

FAILED_SHOWN_FOR = timedelta(days=1)


@frontdesk.needs_person(40)
def _failed_texts(request, clinics):
    """Texts that failed for good in the last day. One in a conversation is that conversation's entry (the
    conversation lists it first when it still needs a person); retry or reply from there."""
    if not request.user.has_perm("messaging.view_message"):
        return
    rows = (
        Message.objects.for_user(request.user)
        .filter(
            clinic__in=clinics,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.FAILED,
            updated_at__gte=timezone.now() - FAILED_SHOWN_FOR,
        )
        .select_related("clinic")
        .order_by("updated_at")[:100]
    )
    for message in rows:
        if message.conversation_id:
            key = f"conversation.conversation:{message.conversation_id}"
            url = reverse("admin:conversation_conversation_change", args=[message.conversation_id])
        else:
            key, url = f"messaging.message:{message.pk}", reverse("admin:messaging_message_change", args=[message.pk])
        code = f" (error {message.error_code})" if message.error_code else ""
        yield frontdesk.Attention(
            key=key,
            kind="failed",
            title=f"Text to {frontdesk.display_phone(message.to_number)}",
            reason=f"A {message.get_kind_display().lower()} could not be delivered{code}: retry it or call the patient",
            since=message.updated_at,
            url=url,
            clinic=message.clinic,
        )
