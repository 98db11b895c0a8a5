from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from lifecycle.services import texts_for_phone
from medspa.admin import ClinicScopedInline, PatientDataAdmin
from messaging.models import Message

from . import services
from .models import Conversation, Turn


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


class TurnInline(ClinicScopedInline):
    """What the assistant did for each answer: engine, tools, time, tokens."""

    model = Turn
    fields = [
        "created_at",
        "engine",
        "fallback",
        "tool_calls",
        "latency_ms",
        "prompt_tokens",
        "cached_tokens",
        "completion_tokens",
        "cost_microdollars",
        "error",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    classes = ["collapse"]

    def has_add_permission(self, request, obj=None):
        return False


class LiveFilter(admin.SimpleListFilter):
    title = "live"
    parameter_name = "live"

    def lookups(self, request, model_admin):
        return [("yes", "Needs a person"), ("staff", "Owned by staff"), ("booking", "Booking in progress")]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "yes":
            return queryset.filter(needs_staff=True)
        if value == "staff":
            return queryset.filter(owner=Conversation.Owner.STAFF)
        if value == "booking":
            return queryset.filter(state__in=["offering", "holding", "awaiting_deposit"])
        return queryset


@admin.register(Conversation)
class ConversationAdmin(PatientDataAdmin):
    list_display = [
        "__str__",
        "patient_phone",
        "clinic",
        "state",
        "owner",
        "service",
        "needs_staff",
        "last_inbound_at",
    ]
    list_filter = [LiveFilter, "clinic", "state", "owner", "origin"]
    list_select_related = ["clinic", "service"]
    search_fields = ["patient_phone"]
    readonly_fields = [
        "clinic",
        "patient_phone",
        "origin",
        "state",
        "owner",
        "service",
        "time_preference",
        "booking",
        "rescheduling",
        "turns_count",
        "tokens_used",
        "tool_calls_used",
        "last_inbound_at",
        "last_outbound_at",
        "intro_sent_on",
        "created_at",
        "automated_texts",
    ]
    fields = [
        "clinic",
        "patient_phone",
        "patient_name",
        "state",
        "owner",
        "needs_staff",
        "service",
        "time_preference",
        "booking",
        "rescheduling",
        "origin",
        "turns_count",
        "tokens_used",
        "tool_calls_used",
        "last_inbound_at",
        "last_outbound_at",
        "intro_sent_on",
        "created_at",
        "automated_texts",
    ]
    inlines = [MessageInline, TurnInline]
    actions = ["take_over", "hand_back"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    @admin.display(description="automated texts (why each was sent)")
    def automated_texts(self, obj):
        rows = texts_for_phone(clinic=obj.clinic, phone=obj.patient_phone)[:50]
        if not rows:
            return "-"
        return format_html(
            "<table>{}</table>",
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                (
                    (
                        r.send_at.strftime("%Y-%m-%d %H:%M UTC"),
                        r.get_kind_display(),
                        r.get_state_display(),
                        r.why,
                        r.outcome,
                    )
                    for r in rows
                ),
            ),
        )

    @admin.action(description="Take over (the assistant goes silent)")
    def take_over(self, request, queryset):
        for conversation in queryset:
            services.conversation_take_over(conversation=conversation, user=request.user)
        self.message_user(request, f"{queryset.count()} conversation(s) taken over.")

    @admin.action(description="Hand back to the assistant")
    def hand_back(self, request, queryset):
        for conversation in queryset:
            services.conversation_hand_back(conversation=conversation, user=request.user)
        self.message_user(request, f"{queryset.count()} conversation(s) handed back.")

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/reply/", view(require_POST(self.reply_view)), name="conversation_conversation_reply"),
            path(
                "<int:pk>/hand-back/",
                view(require_POST(self.hand_back_view)),
                name="conversation_conversation_hand_back",
            ),
            *super().get_urls(),
        ]

    def _own(self, request, pk):
        conversation = self.get_object(request, str(pk))
        if conversation is None:  # another clinic's, or none: 404 like every other view
            from django.http import Http404

            raise Http404
        if not self.has_change_permission(request, conversation):
            raise PermissionDenied
        return conversation

    def reply_view(self, request, pk):
        conversation = self._own(request, pk)
        try:
            services.conversation_staff_reply(
                conversation=conversation, user=request.user, body=request.POST.get("staff_reply", "")
            )
            self.message_user(request, "Text queued; the assistant is silent until you hand the conversation back.")
        except ValueError as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return redirect(reverse("admin:conversation_conversation_change", args=[pk]))

    def hand_back_view(self, request, pk):
        conversation = self._own(request, pk)
        services.conversation_hand_back(conversation=conversation, user=request.user)
        self.message_user(request, "Handed back: the assistant answers the patient's next text.")
        return redirect(reverse("admin:conversation_conversation_change", args=[pk]))
