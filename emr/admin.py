from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html_join

from medspa.admin import ClinicScopedAdmin, ClinicScopedInline

from .base import STEPS, EmrConfigError, EmrError
from .models import EmrConfig, Provider, TimeOff, WorkingHours
from .services import emr_catalog, emr_client_for, emr_connection_test

INTEGRATION = {
    EmrConfig.Kind.BUILTIN: "automatic (our calendar)",
    EmrConfig.Kind.NEXTECH: "automatic (API)",
    EmrConfig.Kind.BOULEVARD: "automatic (API)",
    EmrConfig.Kind.SQUARE: "automatic (API)",
    EmrConfig.Kind.ZENOTI: "automatic (API)",
    EmrConfig.Kind.MANUAL: "MANUAL: staff enter each booking",
}
INTEGRATION_HELP = {
    EmrConfig.Kind.BUILTIN: "Open times come from the providers' hours here; bookings live here.",
    EmrConfig.Kind.NEXTECH: (
        "Automated through Nextech's API: open times are read from Nextech; the chosen time is held here (not in "
        "Nextech) while the deposit is paid; the paid booking is written to Nextech as a booked appointment, a new "
        "patient being created with it as a prospect (Nextech asks for the patient's email for that; without one "
        "it may refuse, and staff are alerted); cancelling and rescheduling (the new time written, then the old "
        "one cancelled) are done in Nextech; the appointment's status is read only when a booking is written. "
        "Changes made in Nextech itself are not read back."
    ),
    EmrConfig.Kind.BOULEVARD: (
        "Open times are read from Boulevard and paid bookings are written there automatically, unless the business "
        "requires a card on file for online bookings: we never take cards, so such clinics are \u201cdeposit via "
        "Square, card via Boulevard\u201d (credentials card_via_boulevard: true) and the front desk books each paid "
        "request in Boulevard. Cancelling and reading appointments needs the API secret (Boulevard lets only the "
        "appointment's client do it, with a token signed by the secret)."
    ),
    EmrConfig.Kind.SQUARE: (
        "Automated through Square's Bookings API: open times are read from Square Appointments; the chosen time is "
        "held here (Square has no hold) while the deposit is paid; the paid booking is written to Square as an "
        "accepted booking for the patient's Square customer (found by phone, else created); cancelling is done in "
        "Square; a reschedule writes the new time, then cancels the old one. The booking's status is read only when "
        "it is written; changes made in Square itself are not read back. Needs Square Appointments Plus or Premium "
        "(Square refuses bookings made on the seller's behalf otherwise). The Square account is the one in the "
        "deposit settings unless credentials {access_token, environment} are entered here. Map each service to its "
        "Square service variation id and each provider to a team member id: the \u201cFetch services and staff\u201d "
        "action lists them."
    ),
    EmrConfig.Kind.ZENOTI: (
        "Automated through Zenoti's service booking API (credentials {api_key}; the EMR location id is the Zenoti "
        "center id): open times are read from Zenoti; a paid booking is reserved (Zenoti's own hold) and confirmed "
        "in Zenoti for the patient's Zenoti guest (found by phone, else created); cancelling cancels its Zenoti "
        "invoice; a reschedule writes the new time, then cancels the old one. The booking's status is read only "
        "when it is written; changes made in Zenoti itself are not read back. Map each service to its Zenoti "
        "service id and each provider to a therapist id: the \u201cFetch services and staff\u201d action lists them."
    ),
    EmrConfig.Kind.MANUAL: (
        "This integration is manual. There is no API connection to your EMR: open times come from the providers' "
        "hours kept here, and every paid booking appears under \u201cManual EMR bookings to enter\u201d and is "
        "emailed to your staff. Someone must enter it in your EMR and mark it confirmed here; only then does the "
        "patient get a confirmation."
    ),
}


CREDENTIALS_HELP = {
    EmrConfig.Kind.NEXTECH: '{"client_id": ..., "username": ..., "password": ..., "practice_id": ...}',
    EmrConfig.Kind.BOULEVARD: (
        '{"business_id": ..., "api_key": ..., "api_secret": "<base64, as Boulevard shows it>", "sandbox": false, '
        '"card_via_boulevard": false, "test_client_id": "<optional: a Boulevard client test connection signs in as>"}'
    ),
    EmrConfig.Kind.SQUARE: (
        '{"access_token": ..., "environment": "production" or "sandbox"}, or {} for the deposit settings\' account'
    ),
    EmrConfig.Kind.ZENOTI: '{"api_key": ...}',
}


class EmrConfigForm(forms.ModelForm):
    class Meta:
        model = EmrConfig
        fields = "__all__"

    def clean(self):
        """Credentials that cannot make a client are refused here, with what to fix, not at a patient's booking."""
        cleaned = super().clean()
        if self.errors or cleaned.get("kind") in (None, EmrConfig.Kind.BUILTIN, EmrConfig.Kind.MANUAL):
            return cleaned
        config = EmrConfig(**{name: cleaned.get(name) for name in ("kind", "credentials", "location_ref")})
        try:
            client = emr_client_for(clinic=cleaned.get("clinic"), config=config)
        except EmrConfigError as exc:
            expected = CREDENTIALS_HELP.get(config.kind, "")
            raise forms.ValidationError({"credentials": f"{exc} Expected: {expected}"}) from None
        getattr(client, "close", lambda: None)()
        return cleaned


class WorkingHoursInline(ClinicScopedInline):
    model = WorkingHours
    fields = ["weekday", "start", "end"]


class TimeOffInline(ClinicScopedInline):
    model = TimeOff
    fields = ["start", "end", "reason"]


@admin.register(Provider)
class ProviderAdmin(ClinicScopedAdmin):
    list_display = ["name", "title", "clinic", "active", "emr_ref"]
    list_filter = ["clinic", "active"]
    list_select_related = ["clinic"]
    search_fields = ["name"]
    filter_horizontal = ["services"]
    inlines = [WorkingHoursInline, TimeOffInline]

    def save_formset(self, request, form, formset, change):
        # Inline rows belong to the provider's clinic.
        for row in formset.save(commit=False):
            row.clinic_id = form.instance.clinic_id
            row.save()
        for row in formset.deleted_objects:
            row.delete()
        formset.save_m2m()


@admin.register(EmrConfig)
class EmrConfigAdmin(ClinicScopedAdmin):
    """Which scheduling system a clinic uses. "Manual" means staff book each request in their EMR by hand and
    confirm it here: there is no API connection for those systems."""

    list_display = ["clinic", "kind", "integration", "slot_minutes", "buffer_minutes", "min_notice_minutes"]
    list_filter = ["kind"]
    list_select_related = ["clinic"]
    form = EmrConfigForm
    actions = ["test_connection", "fetch_catalog"]
    fieldsets = [
        (None, {"fields": ["clinic", "kind", "integration_help", "automated_steps"]}),
        (
            "Connection (Nextech, Boulevard, Square Appointments, Zenoti)",
            {
                "fields": ["credentials", "location_ref"],
                "description": "Credentials, as JSON. "
                + " ".join(f"{kind.label}: {text}." for kind, text in CREDENTIALS_HELP.items()),
            },
        ),
        (
            "Calendar rules (built-in calendar and manual EMRs)",
            {"fields": ["slot_minutes", "buffer_minutes", "min_notice_minutes", "horizon_days"]},
        ),
    ]
    readonly_fields = ["integration_help", "automated_steps"]

    @admin.display(description="integration")
    def integration(self, obj):
        return INTEGRATION[obj.kind]

    @admin.display(description="what this means")
    def integration_help(self, obj):
        return INTEGRATION_HELP[obj.kind] if obj and obj.pk else "Choose the kind and save to see what it means."

    @admin.display(description="what is automated")
    def automated_steps(self, obj):
        """Per step, what happens for this clinic as configured (the client says; nothing is called)."""
        if not (obj and obj.pk):
            return "Save to see which steps are automated."
        try:
            client = emr_client_for(clinic=obj.clinic, config=obj)
        except EmrConfigError as exc:
            return f"The configuration cannot make a client: {exc}"
        steps = client.automation()
        getattr(client, "close", lambda: None)()
        return format_html_join(
            "", "<div><strong>{}</strong>: {}</div>", ((step, steps.get(step, "")) for step in STEPS)
        )

    @admin.action(
        description="Test the connection (asks the EMR for open times, and checks each automated step)",
        permissions=["change"],
    )
    def test_connection(self, request, queryset):
        for config in queryset.select_related("clinic"):
            ok, text = emr_connection_test(clinic=config.clinic)
            self.message_user(request, f"{config.clinic}: {text}", messages.SUCCESS if ok else messages.ERROR)

    @admin.action(description="Fetch services and staff from the EMR (Square Appointments, Zenoti)")
    def fetch_catalog(self, request, queryset):
        """Lists the EMR's ids for staff to enter as each service's EMR service id and each provider's EMR
        practitioner id; nothing is changed here."""
        for config in queryset.select_related("clinic"):
            try:
                services, staff = emr_catalog(clinic=config.clinic)
            except (EmrConfigError, EmrError) as exc:
                self.message_user(request, f"{config.clinic}: {exc}", messages.ERROR)
                continue
            listed = "; ".join(f"{name} = {ref}" for ref, name in services) or "none"
            people = "; ".join(f"{name} = {ref}" for ref, name in staff) or "none"
            self.message_user(
                request, f"{config.clinic}: services (EMR service id): {listed}. Staff (EMR practitioner id): {people}."
            )
