from django.contrib import admin

from bookings.admin import BookingAdmin
from bookings.models import Booking
from medspa.admin import ClinicScopedAdmin, ClinicScopedInline, PatientDataAdmin

from .models import PLACEHOLDERS, LifecycleSettings, ScheduledText


@admin.register(LifecycleSettings)
class LifecycleSettingsAdmin(ClinicScopedAdmin):
    """Per clinic: each text on or off, its timing and its template (the placeholders each may use are listed)."""

    list_display = ["clinic", "confirmation_on", "reminder_on", "no_show_text_on", "rebook_on", "review_on"]
    fieldsets = [
        (None, {"fields": ["clinic", "morning_time", "emr_sync_days"]}),
        (
            "Confirmation request",
            {
                "fields": ["confirmation_on", "confirmation_lead_hours", "confirmation_template"],
                "description": "Placeholders: " + ", ".join(sorted(PLACEHOLDERS["confirmation_template"])),
            },
        ),
        (
            "Same-day reminder",
            {
                "fields": ["reminder_on", "reminder_lead_minutes", "parking_line", "reminder_template"],
                "description": "Placeholders: " + ", ".join(sorted(PLACEHOLDERS["reminder_template"])),
            },
        ),
        (
            "No-show",
            {
                "fields": ["no_show_text_on", "no_show_keeps_deposit", "no_show_template"],
                "description": "Placeholders: " + ", ".join(sorted(PLACEHOLDERS["no_show_template"])),
            },
        ),
        (
            "Rebooking at the treatment interval (each service's 'rebook after')",
            {
                "fields": ["rebook_on", "rebook_template"],
                "description": "Sent only with written consent (docs/COMPLIANCE.md). Placeholders: "
                + ", ".join(sorted(PLACEHOLDERS["rebook_template"])),
            },
        ),
        (
            "Review request",
            {
                "fields": ["review_on", "review_url", "review_delay_hours", "review_template"],
                "description": "Sent only when the review link is set. Placeholders: "
                + ", ".join(sorted(PLACEHOLDERS["review_template"])),
            },
        ),
    ]


READ_ONLY = ["kind", "state", "send_at", "due_at", "why", "outcome", "message", "sent_at"]


@admin.register(ScheduledText)
class ScheduledTextAdmin(PatientDataAdmin):
    """Every automated text, pending and past, with why it exists and what became of it. Read-only: they follow
    their booking."""

    list_display = ["__str__", "send_at", "clinic", "booking", "kind", "state", "why", "outcome"]
    list_filter = ["clinic", "kind", "state"]
    list_select_related = ["clinic", "booking"]
    search_fields = ["patient_phone", "=booking__id"]
    raw_id_fields = ["booking", "message"]
    readonly_fields = ["clinic", "booking", "patient_phone", *READ_ONLY, "claimed_at", "created_at", "updated_at"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ScheduledTextInline(ClinicScopedInline):
    """On a booking: its past and pending texts."""

    model = ScheduledText
    fields = READ_ONLY
    readonly_fields = READ_ONLY
    ordering = ["send_at"]
    can_delete = False
    verbose_name_plural = "texts after booking (past and pending)"

    def has_add_permission(self, request, obj=None):
        return False


class BookingWithTextsAdmin(BookingAdmin):
    """The bookings admin with the booking's texts (lifecycle sits above bookings, so it adds them here)."""

    inlines = [*BookingAdmin.inlines, ScheduledTextInline]


admin.site.unregister(Booking)
admin.site.register(Booking, BookingWithTextsAdmin)
