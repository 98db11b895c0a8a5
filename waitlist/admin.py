from django.contrib import admin

from medspa.admin import ClinicScopedAdmin, ClinicScopedInline, PatientDataAdmin
from medspa.timetext import when_label

from .models import WaitlistEntry, WaitlistOffer, WaitlistSettings
from .services import entries_cancel


class OfferInline(ClinicScopedInline):
    """The times offered to the entry's patient, each held for them, and how each ended."""

    model = WaitlistOffer
    fk_name = "entry"
    fields = ["local_start", "provider", "state", "booking", "offered_at", "expires_at", "texted_at", "closed_at"]
    readonly_fields = fields
    raw_id_fields = ["booking"]
    can_delete = False
    show_change_link = False

    @admin.display(description="time (clinic zone)")
    def local_start(self, obj):
        return when_label(obj.start, obj.clinic.tz)

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(WaitlistEntry)
class WaitlistEntryAdmin(PatientDataAdmin):
    """The "Waitlist": who waits for which time, first come first offered, with the offers each got."""

    list_display = ["__str__", "clinic", "service", "provider_display", "label", "state", "joined_local", "expires_at"]
    list_filter = ["clinic", "state", "service"]
    list_select_related = ["clinic", "service", "provider"]
    search_fields = ["patient_phone"]
    raw_id_fields = ["conversation"]
    show_full_result_count = False
    ordering = ["state", "joined_at", "pk"]
    inlines = [OfferInline]
    actions = ["cancel_entries"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in WaitlistEntry._meta.fields]  # entries change through the waitlist rules only

    def has_add_permission(self, request):
        return False  # patients join through the assistant

    @admin.display(description="provider")
    def provider_display(self, obj):
        return obj.provider.name if obj.provider_id else "any"

    @admin.display(description="joined (clinic time)", ordering="joined_at")
    def joined_local(self, obj):
        return when_label(obj.joined_at, obj.clinic.tz) if obj.joined_at else "-"

    @admin.action(description="Take the selected patients off the waitlist", permissions=["change"])
    def cancel_entries(self, request, queryset):
        done = entries_cancel(entry_ids=queryset.values_list("pk", flat=True))
        self.message_user(request, f"{done} entr{'y' if done == 1 else 'ies'} taken off the waitlist.")


@admin.register(WaitlistSettings)
class WaitlistSettingsAdmin(ClinicScopedAdmin):
    list_display = ["__str__", "clinic", "enabled", "hold_minutes", "max_offers_per_day"]
    list_select_related = ["clinic"]
