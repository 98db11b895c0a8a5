from django.contrib import admin

from medspa.admin import PatientDataAdmin
from messaging.models import Message

from .models import Conversation


class MessageInline(admin.TabularInline):
    """The conversation's texts in order, with direction and status; read-only."""

    model = Message
    fields = ["created_at", "direction", "kind", "body", "status", "error_code"]
    readonly_fields = fields
    ordering = ["created_at", "pk"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Conversation)
class ConversationAdmin(PatientDataAdmin):
    list_display = ["__str__", "patient_phone", "clinic", "state", "origin", "needs_staff", "last_inbound_at"]
    list_filter = ["clinic", "state", "origin", "needs_staff"]
    list_select_related = ["clinic"]
    search_fields = ["patient_phone"]
    readonly_fields = [
        "clinic",
        "patient_phone",
        "origin",
        "last_inbound_at",
        "last_outbound_at",
        "intro_sent_on",
        "created_at",
    ]
    fields = [
        "clinic",
        "patient_phone",
        "state",
        "needs_staff",
        "origin",
        "last_inbound_at",
        "last_outbound_at",
        "intro_sent_on",
        "created_at",
    ]
    inlines = [MessageInline]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False
