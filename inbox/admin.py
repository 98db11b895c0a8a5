from django.contrib import admin

from medspa.admin import PatientDataAdmin, PlatformAdmin
from medspa.audit import audit_record
from medspa.models import AuditEvent

from .models import WebhookEvent, WebhookRejection
from .services import event_reprocess


class NeedsStaffFilter(admin.SimpleListFilter):
    title = "needs a person"
    parameter_name = "needs_staff"

    def lookups(self, request, model_admin):
        return [("yes", "Failed for good (reprocess after fixing the cause)"), ("retrying", "Failed, will retry")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.needs_staff()
        if self.value() == "retrying":
            return queryset.filter(status=WebhookEvent.Status.FAILED, next_attempt_at__isnull=False)
        return queryset


@admin.register(WebhookEvent)
class WebhookEventAdmin(PatientDataAdmin):
    """The inbox: every provider event once, with what processing did. Events about a number or an order we do
    not know have no clinic: only platform operators see them. The payload holds patient texts: views are audited."""

    list_display = ["received_at", "provider", "event_type", "status", "attempts", "next_attempt_at", "reason"]
    list_filter = [NeedsStaffFilter, "status", "provider", "event_type", "clinic"]
    list_select_related = ["clinic"]
    date_hierarchy = "received_at"
    search_fields = ["event_id"]
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    show_full_result_count = False
    actions = ["reprocess"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Reprocess the selected failed events", permissions=["change"])
    def reprocess(self, request, queryset):
        failed = queryset.filter(status=WebhookEvent.Status.FAILED)
        done = sum(event_reprocess(event=event) for event in failed)
        audit_record(action=AuditEvent.Action.CHANGE, model=WebhookEvent, request=request, detail={"reprocessed": done})
        skipped = queryset.count() - done
        note = f" {skipped} not failed: left as they are (their effects happened once)." if skipped else ""
        self.message_user(request, f"{done} event(s) queued to be processed again.{note}")


@admin.register(WebhookRejection)
class WebhookRejectionAdmin(PlatformAdmin):
    list_display = ["at", "provider", "status_code", "path", "reason", "ip_address"]
    list_filter = ["provider", "status_code"]
    date_hierarchy = "at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
