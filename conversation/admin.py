"""Conversations in the back office: a list people can scan, each conversation a chat thread (bubbles, delivery
status, who owns it, new texts without reloading through htmx polling), and the home page's entries (what needs a
person, conversations in progress). Presentation only: taking over, handing back and replying are
``conversation.services`` functions."""

from datetime import datetime, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import CharField, OuterRef, Q, Subquery
from django.db.models.functions import Cast
from django.http import Http404
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_POST

from lifecycle.services import texts_for_phone
from medspa import frontdesk
from medspa.admin import ClinicScopedInline, PatientDataAdmin
from medspa.clinic_time import age, clinic_local
from medspa.frontdesk import display_phone, patient_html, several_clinics
from medspa.models import StaffAlert
from messaging.models import Message
from payments.models import Payment

from . import services
from .models import Conversation, Turn

POLL_SECONDS = 3
# A text changed (delivered, failed) up to this long before a poll is sent again: a row updated in a transaction
# that committed after the previous poll read is still seen. Re-sending a bubble only replaces it.
POLL_OVERLAP = timedelta(seconds=10)
IN_PROGRESS = ["engaged", "offering", "holding", "awaiting_deposit", "handed_off"]


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


# --- What the thread and the lists show ------------------------------------------------------------------------

# Why an automated text was sent, by the message's kind (the patient's texts and staff replies need no label).
WHY = {
    Message.Kind.REPLY: "Assistant",
    Message.Kind.COMPLIANCE: "Automatic: opt-out / HELP / START confirmation",
    Message.Kind.NOTICE: "Automatic: reminder or notice",
}
INTRO_WHY = {
    Conversation.Origin.MISSED_CALL: "Automatic: intro after a missed call",
    Conversation.Origin.WEB_LEAD: "Automatic: intro after a web lead",
    Conversation.Origin.INBOUND_TEXT: "Automatic: intro",
}
STATUS_TONE = {
    "delivered": "ok",
    "sent": "ok",
    "received": "ok",
    "queued": "wait",
    "sending": "wait",
    "scheduled": "wait",
    "unknown": "warn",
    "failed": "bad",
    "dropped": "bad",
}


def last_text_annotations():
    """The latest text of each conversation (one subquery each, no query per row)."""
    latest = Message.objects.filter(conversation=OuterRef("pk")).order_by("-pk")
    return {
        "last_body": Subquery(latest.values("body")[:1]),
        "last_at": Subquery(latest.values("created_at")[:1]),
        "last_direction": Subquery(latest.values("direction")[:1]),
        "last_status": Subquery(latest.values("status")[:1]),
        "last_error": Subquery(latest.values("error_code")[:1]),
        "alert_text": Subquery(
            StaffAlert.objects.filter(
                object_type="conversation.conversation",
                object_id=Cast(OuterRef("pk"), CharField()),
                resolved_at__isnull=True,
            )
            .order_by("-created_at")
            .values("text")[:1]
        ),
        "alert_kind": Subquery(
            StaffAlert.objects.filter(
                object_type="conversation.conversation",
                object_id=Cast(OuterRef("pk"), CharField()),
                resolved_at__isnull=True,
            )
            .order_by("-created_at")
            .values("kind")[:1]
        ),
    }


def patient_label(conversation) -> str:
    phone = display_phone(conversation.patient_phone)
    return f"{conversation.patient_name} ({phone})" if conversation.patient_name else phone


def needs_reason(conversation) -> str:
    """Why a conversation needs a person, from its open alert or its last text (``last_text_annotations``)."""
    text = getattr(conversation, "alert_text", None)
    if text:
        # "Conversation #5 needs a person: the patient asked for a person." -> the reason alone.
        return text.split(": ", 1)[1].rstrip(".") if text.startswith("Conversation #") and ": " in text else text
    if getattr(conversation, "last_status", None) == Message.Status.FAILED:
        code = conversation.last_error
        return f"A text could not be delivered{f' (error {code})' if code else ''}: reply or call the patient"
    if conversation.state == Conversation.State.OPTED_OUT:
        return "An opted-out patient wrote (nothing is sent to them)"
    if getattr(conversation, "last_direction", None) == Message.Direction.INBOUND:
        if conversation.owner == Conversation.Owner.STAFF:
            return "The patient wrote; staff own the conversation (the assistant is silent)"
        if not conversation.clinic.ai_enabled:
            return "The patient wrote; the assistant is off for this clinic"
        return "The patient's text is waiting for an answer"
    return "Waiting for a person"


def owner_label(conversation) -> str:
    if conversation.owner != Conversation.Owner.STAFF:
        return "Assistant"
    return services.staff_name(conversation.owned_by) if conversation.owned_by_id else "Staff (unassigned)"


def bubble(message, conversation, now) -> dict:
    """One text as the thread draws it: side, time in clinic zone, delivery status, why it was sent."""
    clinic = conversation.clinic
    outbound = message.direction == Message.Direction.OUTBOUND
    why = ""
    if outbound:
        why = INTRO_WHY.get(conversation.origin, "Automatic: intro") if message.kind == Message.Kind.INTRO else ""
        why = why or WHY.get(message.kind, "Staff" if message.kind == Message.Kind.STAFF else "")
    status = message.get_status_display()
    if message.status == Message.Status.SCHEDULED and message.due_at:
        status = f"Waits for the sending window: goes {clinic_local(message.due_at, clinic)}"
    elif message.status == Message.Status.FAILED and message.error_code:
        status = f"Failed (error {message.error_code})"
    return {
        "pk": message.pk,
        "side": "clinic" if outbound else "patient",
        "kind": message.kind,
        "body": message.body,
        "media": _media(message.media),
        "at": clinic_local(message.created_at, clinic),
        "status": message.status,
        "status_label": status,
        "tone": STATUS_TONE.get(message.status, "wait"),
        "why": why,
    }


def _media(items) -> list[dict]:
    """MMS media as links (the provider's URL: the CSP lets the admin load images only from us); http(s) only."""
    shown = []
    for item in items or []:
        url = str(item.get("url", "")) if isinstance(item, dict) else ""
        if url.startswith(("https://", "http://")):
            kind = str(item.get("content_type", ""))
            shown.append({"url": url, "content_type": kind, "image": kind.startswith("image/")})
    return shown


def _stamp(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def _from_stamp(value: str) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1_000_000, tz=timezone.get_current_timezone())
    except (TypeError, ValueError, OverflowError, OSError):
        return None


@admin.register(Conversation)
class ConversationAdmin(PatientDataAdmin):
    list_display = ["patient", "last_text", "state_chip", "owner_display", "why", "clinic"]
    list_display_links = ["patient"]
    list_filter = [LiveFilter, "clinic", "state", "owner", "origin"]
    list_select_related = ["clinic", "owned_by"]
    search_fields = ["patient_phone", "patient_name"]
    readonly_fields = [
        "clinic",
        "patient_phone",
        "origin",
        "state",
        "owner",
        "owned_by",
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
        "owned_by",
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
    inlines = [TurnInline]
    actions = ["take_over", "hand_back"]
    show_full_result_count = False
    list_per_page = 50

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
                        clinic_local(r.send_at, obj.clinic),
                        r.get_kind_display(),
                        r.get_state_display(),
                        r.why,
                        r.outcome,
                    )
                    for r in rows
                ),
            ),
        )

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**last_text_annotations())

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not several_clinics(request.user):
            columns.remove("clinic")  # one clinic: the column says nothing
        return columns

    # --- list columns ---

    @admin.display(description="patient", ordering="patient_name")
    def patient(self, obj):
        return patient_html(obj.patient_name, obj.patient_phone)

    @admin.display(description="last text", ordering="last_at")
    def last_text(self, obj):
        if obj.last_at is None:
            return "-"
        who = "Patient" if obj.last_direction == Message.Direction.INBOUND else "Clinic"
        body = (obj.last_body or "(photo)").replace("\n", " ")
        body = body if len(body) <= 70 else body[:69] + "\u2026"
        return format_html(
            '<span class="fd-last"><b>{}:</b> {}</span> <time class="fd-age" title="{}">{} ago</time>',
            who,
            body,
            clinic_local(obj.last_at, obj.clinic),
            age(obj.last_at),
        )

    @admin.display(description="state", ordering="state")
    def state_chip(self, obj):
        return format_html('<span class="fd-chip fd-state-{}">{}</span>', obj.state, obj.get_state_display())

    @admin.display(description="owner", ordering="owner")
    def owner_display(self, obj):
        return owner_label(obj)

    @admin.display(description="needs staff because", ordering="-needs_staff")
    def why(self, obj):
        if not obj.needs_staff and not obj.alert_text:
            return ""
        return format_html('<span class="fd-why">{}</span>', needs_reason(obj))

    # --- actions (the list) ---

    @admin.action(description="Take over (the assistant goes silent)", permissions=["change"])
    def take_over(self, request, queryset):
        done = 0
        for conversation in queryset:
            try:
                services.conversation_take_over(conversation=conversation, user=request.user)
                done += 1
            except services.ConversationOwned as exc:
                self.message_user(request, f"{patient_label(conversation)}: {exc}", messages.WARNING)
        self.message_user(request, f"{done} conversation(s) taken over.")

    @admin.action(description="Hand back to the assistant", permissions=["change"])
    def hand_back(self, request, queryset):
        for conversation in queryset:
            services.conversation_hand_back(conversation=conversation, user=request.user)
        self.message_user(request, f"{queryset.count()} conversation(s) handed back.")

    # --- the thread ---

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/thread/", view(self.thread_view), name="conversation_conversation_thread"),
            path("<int:pk>/reply/", view(require_POST(self.reply_view)), name="conversation_conversation_reply"),
            path(
                "<int:pk>/take-over/",
                view(require_POST(self.take_over_view)),
                name="conversation_conversation_take_over",
            ),
            path(
                "<int:pk>/hand-back/",
                view(require_POST(self.hand_back_view)),
                name="conversation_conversation_hand_back",
            ),
            *super().get_urls(),
        ]

    def _thread_conversation(self, request, pk):
        conversation = (
            self.get_queryset(request)
            .select_related("clinic", "owned_by", "service", "booking__service", "booking__provider")
            .filter(pk=pk)
            .first()
        )
        if conversation is None:  # another clinic's, or none: 404 like every other view
            raise Http404
        return conversation

    def _thread_context(self, request, conversation, now):
        """Everything beside the texts: owner, reply box, patient, booking, deposit (the page and every poll)."""
        booking = conversation.booking
        payment = Payment.objects.filter(booking=booking).first() if booking is not None else None
        return {
            "conversation": conversation,
            "since": _stamp(now),
            "poll_seconds": POLL_SECONDS,
            "owner": owner_label(conversation),
            "mine": conversation.owned_by_id == request.user.pk,
            "staff_owned": conversation.owner == Conversation.Owner.STAFF,
            "blocked": services.conversation_reply_blocked(conversation=conversation, user=request.user, now=now),
            "patient": patient_label(conversation),
            "phone": display_phone(conversation.patient_phone),
            "created": clinic_local(conversation.created_at, conversation.clinic),
            "booking": booking,
            "booking_start": clinic_local(booking.start, conversation.clinic) if booking else "",
            "payment": payment,
            "can_see_payment": request.user.has_perm("payments.view_payment"),
            "needs_reason": needs_reason(conversation) if conversation.needs_staff else "",
            "can_change": self.has_change_permission(request, conversation),
        }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        if request.method == "GET" and str(object_id).isdigit():
            conversation = self._thread_conversation(request, int(object_id))
            now = timezone.now()
            rows = list(Message.objects.filter(conversation=conversation).order_by("-pk"))  # one query, any length
            extra_context.update(self._thread_context(request, conversation, now))
            extra_context["bubbles"] = [bubble(m, conversation, now) for m in rows]
            extra_context["cursor"] = rows[0].pk if rows else 0
            extra_context["title"], extra_context["subtitle"] = patient_label(conversation), None
        return super().change_view(request, object_id, form_url, extra_context)

    def thread_view(self, request, pk):
        """The htmx poll: texts newer than ``after``, texts changed since ``since`` (delivery status), the owner
        banner and the state, as out-of-band swaps; and the next poll, with the new cursor."""
        conversation = self._thread_conversation(request, pk)
        if not self.has_view_permission(request, conversation):
            raise PermissionDenied
        now = timezone.now()
        after = int(request.GET["after"]) if request.GET.get("after", "").isdigit() else 0
        since = _from_stamp(request.GET.get("since")) or now
        rows = list(
            Message.objects.filter(conversation=conversation)
            .filter(Q(pk__gt=after) | Q(updated_at__gte=since - POLL_OVERLAP))
            .order_by("-pk")
        )
        context = self._thread_context(request, conversation, now) | {
            "new": [bubble(m, conversation, now) for m in rows if m.pk > after],
            "changed": [bubble(m, conversation, now) for m in rows if m.pk <= after],
            "cursor": max([after, *(m.pk for m in rows)]),
        }
        return TemplateResponse(request, "admin/conversation/conversation/thread_poll.html", context)

    def _own(self, request, pk):
        conversation = self._thread_conversation(request, pk)
        if not self.has_change_permission(request, conversation):
            raise PermissionDenied
        return conversation

    def _back(self, pk):
        return redirect(reverse("admin:conversation_conversation_change", args=[pk]))

    def reply_view(self, request, pk):
        conversation = self._own(request, pk)
        blocked = services.conversation_reply_blocked(conversation=conversation, user=request.user)
        if blocked:
            self.message_user(request, f"Not sent. {blocked}", messages.ERROR)
            return self._back(pk)
        try:
            services.conversation_staff_reply(
                conversation=conversation, user=request.user, body=request.POST.get("staff_reply", "")
            )
            self.message_user(request, "Text queued; the assistant is silent until you hand the conversation back.")
        except ValueError as exc:  # empty, or another staff member took it meanwhile (ConversationOwned)
            self.message_user(request, f"Not sent. {exc}", messages.ERROR)
        return self._back(pk)

    def take_over_view(self, request, pk):
        conversation = self._own(request, pk)
        try:
            services.conversation_take_over(
                conversation=conversation, user=request.user, steal=request.POST.get("steal") == "1"
            )
            self.message_user(request, "You are answering this patient: the assistant is silent until you hand back.")
        except services.ConversationOwned as exc:
            self.message_user(request, str(exc), messages.WARNING)
        return self._back(pk)

    def hand_back_view(self, request, pk):
        conversation = self._own(request, pk)
        services.conversation_hand_back(conversation=conversation, user=request.user)
        self.message_user(request, "Handed back: the assistant answers the patient's next text.")
        return self._back(pk)


# --- The home page -----------------------------------------------------------------------------------------------


def _conversation_url(conversation) -> str:
    return reverse("admin:conversation_conversation_change", args=[conversation.pk])


@frontdesk.needs_person(10)
def _conversations_needing_staff(request, clinics):
    """Handed off, urgent, a failed text, a text while staff own it: the conversation, with its reason."""
    if not request.user.has_perm("conversation.view_conversation"):
        return
    alerted = [
        int(pk)
        for pk in StaffAlert.objects.for_user(request.user)
        .filter(object_type="conversation.conversation", resolved_at__isnull=True, clinic__in=clinics)
        .values_list("object_id", flat=True)
        if pk.isdigit()
    ]
    rows = (
        Conversation.objects.for_user(request.user)
        .filter(clinic__in=clinics)
        .filter(Q(needs_staff=True) | Q(pk__in=alerted))
        .annotate(**last_text_annotations())
        .select_related("clinic", "owned_by")
        .order_by("-updated_at")[:100]
    )
    for conversation in rows:
        if conversation.alert_kind == StaffAlert.Kind.URGENT:
            kind = "urgent"
        elif conversation.last_status == Message.Status.FAILED:
            kind = "failed"
        else:
            kind = "handoff"
        since = conversation.last_inbound_at or conversation.updated_at
        yield frontdesk.Attention(
            key=f"conversation.conversation:{conversation.pk}",
            kind=kind,
            title=patient_label(conversation),
            reason=needs_reason(conversation),
            since=min(since, conversation.updated_at),
            url=_conversation_url(conversation),
            clinic=conversation.clinic,
        )


@frontdesk.panel(30, "admin/conversation/frontdesk_in_progress.html")
def _conversations_in_progress(request, clinics):
    if not request.user.has_perm("conversation.view_conversation"):
        return None
    since = timezone.now() - timedelta(days=2)
    rows = (
        Conversation.objects.for_user(request.user)
        .filter(clinic__in=clinics, state__in=IN_PROGRESS, needs_staff=False, updated_at__gte=since)
        .annotate(**last_text_annotations())
        .select_related("clinic", "owned_by")
        .order_by("-updated_at")[:20]
    )
    return {
        "rows": [
            {
                "url": _conversation_url(c),
                "patient": patient_html(c.patient_name, c.patient_phone),
                "state": c.state,
                "state_label": c.get_state_display(),
                "owner": owner_label(c),
                "last": (c.last_body or "").replace("\n", " ")[:80],
                "age": age(c.last_at) if c.last_at else "",
                "at": clinic_local(c.last_at, c.clinic) if c.last_at else "",
                "clinic": c.clinic,
            }
            for c in rows
        ],
        "list_url": reverse("admin:conversation_conversation_changelist"),
    }
