from django.contrib import admin

from medspa.admin import PatientDataAdmin

from .models import Lead

CONSENT_FIELDS = ["sms_consent", "consent_text", "consent_at", "consent_ip", "consent_user_agent"]


@admin.register(Lead)
class LeadAdmin(PatientDataAdmin):
    list_display = ["__str__", "created_at", "name", "phone", "service_of_interest", "source", "sms_consent", "clinic"]
    list_filter = ["clinic", "source", "sms_consent", "created_at"]
    list_select_related = ["clinic", "service_of_interest"]
    search_fields = ["name", "phone", "email"]
    autocomplete_fields = ["service_of_interest"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["clinic", "source", "source_url", "service_text", "created_at", *CONSENT_FIELDS]
    fieldsets = [
        (None, {"fields": ["clinic", "name", "phone", "email", "service_of_interest", "service_text", "message"]}),
        ("Where it came from", {"fields": ["source", "source_url", "created_at"]}),
        ("Consent to texts (evidence: not editable)", {"fields": CONSENT_FIELDS}),
    ]

    def has_add_permission(self, request):
        # Leads come in through lead_create (the form/API), which records consent; staff do not invent them.
        return False
