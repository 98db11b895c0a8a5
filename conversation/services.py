"""Conversation rules that messaging calls: open or resume a conversation, and hand an inbound text that compliance
let through to the assistant (``conversation.engine``), or to staff when they own the conversation."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from medspa.alerts import staff_alert, staff_alerts_resolve_for
from medspa.audit import audit_record
from medspa.models import AuditEvent, StaffAlert
from medspa.queueing import enqueue, queued_ids
from messaging.compliance import next_send_time
from messaging.models import Message
from messaging.services import is_opted_out, message_queue, messages_file

from .models import Conversation

RESPOND_TASK = "conversation.respond"

logger = logging.getLogger(__name__)


def conversation_for(*, clinic, patient_phone: str, origin: str) -> Conversation:
    """The (clinic, patient) conversation, created on first contact; concurrent first contacts make one row. Its
    ``clinic`` is the one given (not read again)."""
    conversation = Conversation.objects.filter(clinic=clinic, patient_phone=patient_phone).first()
    if conversation is None:
        try:
            with transaction.atomic():
                return Conversation.objects.create(clinic=clinic, patient_phone=patient_phone, origin=origin)
        except IntegrityError:
            conversation = Conversation.objects.get(clinic=clinic, patient_phone=patient_phone)
    conversation.clinic = clinic
    return conversation


def conversation_receive(*, message) -> None:
    """An inbound text that compliance let through: recorded on the conversation, then answered by the assistant
    after commit (a short delay lets several texts in a row be answered together). While staff own it, the turn
    only reads it for urgent symptoms and, once after the assistant's hand-off, says the team has it
    (``engine.staff_own_reply``); staff see it flagged. Nothing is answered when the clinic turned the assistant off."""
    conversation = message.conversation
    now = timezone.now()
    updates = {"last_inbound_at": now, "updated_at": now}
    if conversation.state in (Conversation.State.NEW, Conversation.State.OPTED_OUT, Conversation.State.CLOSED):
        updates["state"] = Conversation.State.ENGAGED
    if conversation.owner == Conversation.Owner.STAFF or not conversation.clinic.ai_enabled:
        updates["needs_staff"] = True
    Conversation.objects.filter(pk=conversation.pk).update(**updates)
    logger.info("conversation inbound conversation=%s message=%s", conversation.pk, message.pk)
    if conversation.clinic.ai_enabled:  # staff own it: the turn still reads it for urgent symptoms (engine)
        delay = settings.CONVERSATION_DEBOUNCE_SECONDS
        # A broker that is down loses nothing: conversations_resume_unanswered (beat) answers the stored text.
        transaction.on_commit(lambda: enqueue(RESPOND_TASK, conversation.pk, countdown=delay))


def conversation_text_received(*, message, decision: str, alert_staff: bool = False) -> None:
    """Messaging stored an inbound text and compliance decided (``decision``, see ``messaging.inbound_receive``):
    the text (and any confirmation queued to it) is filed in the patient's conversation, whose state follows the
    decision; a text for the conversation is answered."""
    conversation = conversation_for(
        clinic=message.clinic, patient_phone=message.from_number, origin=Conversation.Origin.INBOUND_TEXT
    )
    messages_file(message=message, conversation_id=conversation.pk)
    message.conversation = conversation
    rows = Conversation.objects.filter(pk=conversation.pk)
    now = timezone.now()
    if decision == "opt_out":
        rows.update(state=Conversation.State.OPTED_OUT, needs_staff=alert_staff, last_inbound_at=now)
    elif decision == "opt_in":
        rows.update(state=Conversation.State.ENGAGED, last_inbound_at=now)
    elif decision == "opted_out_sender":  # staff can read it; nothing is sent
        rows.update(needs_staff=True, last_inbound_at=now)
    elif decision == "conversation":
        conversation_receive(message=message)


def intro_send(*, clinic, phone: str, origin: str, sender=None, now=None) -> list:
    """The clinic's intro text, at most once per caller per clinic per clinic-local day, as part of the
    conversation's history (so the assistant does not greet twice). Deferred by quiet hours like any text that is
    not a direct reply; never sent to an opted-out number."""
    now = now or timezone.now()
    today = now.astimezone(clinic.tz).date()
    conversation = conversation_for(clinic=clinic, patient_phone=phone, origin=origin)
    claimed = (
        Conversation.objects.filter(pk=conversation.pk)
        .exclude(intro_sent_on=today)
        .update(intro_sent_on=today, updated_at=timezone.now())
    )
    if not claimed:
        return []
    return message_queue(
        clinic=clinic,
        to=phone,
        body=clinic.render_intro(web_lead=origin == Conversation.Origin.WEB_LEAD),
        kind=Message.Kind.INTRO,
        idempotency_key=f"intro:{clinic.pk}:{phone}:{today.isoformat()}",
        conversation=conversation,
        sender=sender,
        now=now,
    )


RESUME_WITHIN = timedelta(hours=6)  # older unanswered texts are left to staff (the "needs a person" filter)


def conversations_resume_unanswered(*, now=None) -> list[int]:
    """Answer texts whose answering task was lost (a worker killed while it held the task: Redis gives the task
    back only after its visibility timeout, an hour). A text still unanswered CONVERSATION_DEBOUNCE_SECONDS + 10 s
    after it arrived gets a new ``conversation.respond``, at most once a minute per conversation; answering twice
    is harmless (the row lock and the turn record make the second find nothing to do). Returns the conversation
    ids it re-queued."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.CONVERSATION_DEBOUNCE_SECONDS + 10)
    ids = (
        Message.objects.filter(
            direction=Message.Direction.INBOUND,
            kind=Message.Kind.PATIENT,
            created_at__gte=now - RESUME_WITHIN,
            created_at__lte=now - grace,
            turns__isnull=True,
            pk__gt=F("conversation__handled_through"),
            conversation__owner=Conversation.Owner.ASSISTANT,
            conversation__clinic__ai_enabled=True,
        )
        .exclude(conversation__state=Conversation.State.OPTED_OUT)
        .values_list("conversation_id", flat=True)
        .distinct()
    )
    ids = list(ids)
    waiting = queued_ids(RESPOND_TASK, ids)  # their answering task is only waiting in a long queue
    resumed = []
    for conversation_id in ids:
        if conversation_id not in waiting and cache.add(f"conversation:resume:{conversation_id}", 1, 60):
            enqueue(RESPOND_TASK, conversation_id)
            resumed.append(conversation_id)
    if resumed:
        logger.warning("re-queued unanswered conversations=%s", resumed)
    return resumed


class ConversationOwned(ValueError):
    """Another staff member owns the conversation: one person answers a patient at a time."""


def staff_name(user) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else "the front desk"


def conversation_take_over(*, conversation, user, steal: bool = False) -> None:
    """A person takes the conversation: the assistant stays silent until it is handed back. The conversation is
    theirs (``owned_by``) unless another staff member holds it; ``steal`` takes it from them (the page asks)."""

    rows = Conversation.objects.filter(pk=conversation.pk)
    if not steal:
        rows = rows.filter(Q(owned_by__isnull=True) | Q(owned_by=user))
    updated = rows.update(
        owner=Conversation.Owner.STAFF,
        owned_by=user,
        state=Conversation.State.HANDED_OFF,
        updated_at=timezone.now(),
    )
    if not updated:
        holder = Conversation.objects.select_related("owned_by").get(pk=conversation.pk).owned_by
        raise ConversationOwned(f"{staff_name(holder)} is answering this patient: take it over from them first.")
    audit_record(action=AuditEvent.Action.CHANGE, obj=conversation, user=user, detail={"fields": ["owner"]})


def conversation_hand_back(*, conversation, user) -> None:
    """Back to the assistant, which answers the patient's next text (what staff already answered stays answered)."""

    last = Message.objects.filter(conversation=conversation).order_by("-pk").values_list("pk", flat=True).first()
    Conversation.objects.filter(pk=conversation.pk).update(
        owner=Conversation.Owner.ASSISTANT,
        owned_by=None,
        state=Conversation.State.ENGAGED,
        needs_staff=False,
        handled_through=last or 0,
        updated_at=timezone.now(),
    )
    staff_alerts_resolve_for(obj=conversation, kinds=[StaffAlert.Kind.HANDOFF, StaffAlert.Kind.URGENT])
    audit_record(action=AuditEvent.Action.CHANGE, obj=conversation, user=user, detail={"fields": ["owner"]})


def conversation_reply_blocked(*, conversation, user, now=None) -> str | None:
    """Why ``user`` cannot text the patient from the admin right now, or None. The reply box shows it, disabled:
    an opted-out patient gets nothing; another staff member owns the thread; in quiet hours (the patient's sending
    window) it says when texts can go again."""
    if conversation.state == Conversation.State.OPTED_OUT or is_opted_out(
        clinic=conversation.clinic, phone=conversation.patient_phone
    ):
        return "The patient opted out (STOP): nothing can be texted to them until they text START."
    if conversation.owned_by_id and conversation.owned_by_id != user.pk:
        return f"{staff_name(conversation.owned_by)} is answering this patient. Take it over to reply."
    now = now or timezone.now()
    opens = next_send_time(now, phone=conversation.patient_phone, clinic=conversation.clinic)
    if opens > now:
        when = timezone.localtime(opens, conversation.clinic.tz).strftime("%a %b %-d, %-I:%M %p %Z")
        return f"Quiet hours for this patient: texts can go again at {when}."
    return None


def conversation_staff_reply(*, conversation, user, body: str):
    """Staff text the patient from the admin, through messaging (opt-outs and quiet hours apply, as to any text
    that is not the assistant's direct reply); the conversation becomes theirs (``ConversationOwned`` when another
    staff member holds it)."""
    import uuid

    body = (body or "").strip()
    if not body:
        raise ValueError("The message is empty.")
    with transaction.atomic():
        conversation_take_over(conversation=conversation, user=user)
        messages = message_queue(
            clinic=conversation.clinic,
            to=conversation.patient_phone,
            body=body,
            kind=Message.Kind.STAFF,
            conversation=conversation,
            idempotency_key=f"staff-{conversation.pk}-{uuid.uuid4()}",
        )
        Conversation.objects.filter(pk=conversation.pk).update(needs_staff=False, last_outbound_at=timezone.now())
    logger.info("staff reply conversation=%s messages=%s", conversation.pk, [m.pk for m in messages])
    return messages


def conversation_booking_changed(*, booking) -> None:
    """A booking the assistant made was confirmed, or lost after payment: the conversation says so, so its next
    answer starts from where the patient really is."""
    if booking.conversation_id is None:
        return
    # A patient who opted out stays opted out, whatever becomes of the booking (STOP ends the conversation).
    rows = Conversation.objects.filter(pk=booking.conversation_id, booking_id=booking.pk).exclude(
        state=Conversation.State.OPTED_OUT
    )
    if booking.status == "confirmed":
        rows.update(state=Conversation.State.CONFIRMED, updated_at=timezone.now())
    elif booking.status in ("failed", "cancelled", "expired"):
        rows.exclude(state=Conversation.State.HANDED_OFF).update(
            state=Conversation.State.ENGAGED, booking=None, offered_slots=[], updated_at=timezone.now()
        )


def conversation_times_offered(*, booking, slots) -> None:
    """A text after a visit offered open times for its service: the patient's reply (1, 2, 3) picks one of them,
    as if the assistant had offered them."""
    conversation = conversation_for(
        clinic=booking.clinic, patient_phone=booking.patient_phone, origin=Conversation.Origin.INBOUND_TEXT
    )
    Conversation.objects.filter(pk=conversation.pk).exclude(state=Conversation.State.OPTED_OUT).update(
        service=booking.service,
        offered_slots=slots,
        state=Conversation.State.OFFERING,
        booking=None,
        rescheduling=None,
        pending_pick=None,
        updated_at=timezone.now(),
    )


BUSY_OFFERING = timedelta(minutes=30)  # a patient choosing among times offered this recently is left to it


def conversation_waitlist_offer(*, offer, link: bool, now=None) -> bool:
    """The waitlist holds a freed time for this patient: it becomes the conversation's one offered time and its
    held booking, so that the patient's "yes" or "1" (or paying the link) books it through the usual flow. False,
    and nothing changed, when the conversation is busy: a turn is being answered (its row is locked), staff own
    it, the patient opted out, or they are in the middle of another booking, cancellation or reschedule."""
    now = now or timezone.now()
    conversation = (
        Conversation.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("booking")
        .filter(pk=offer.entry.conversation_id)
        .first()
    )
    if conversation is None or conversation.owner == Conversation.Owner.STAFF or not conversation.clinic.ai_enabled:
        return False
    if conversation.state in (Conversation.State.OPTED_OUT, Conversation.State.HANDED_OFF):
        return False
    if conversation.rescheduling_id or conversation.confirming_cancel_id or conversation.pending_pick:
        return False
    holding = conversation.booking is not None and conversation.booking.status in (
        "held",
        "awaiting_deposit",
        "awaiting_staff",
    )
    choosing = conversation.state == Conversation.State.OFFERING and (
        conversation.last_inbound_at is None or conversation.last_inbound_at > now - BUSY_OFFERING
    )
    if holding or choosing:
        return False
    booking = offer.booking
    Conversation.objects.filter(pk=conversation.pk).update(
        service=booking.service,
        offered_slots=[
            {
                "start": booking.start.isoformat(),
                "end": booking.end.isoformat(),
                "provider_id": booking.provider_id,
                "provider": booking.provider.name,
            }
        ],
        booking=booking,
        state=Conversation.State.AWAITING_DEPOSIT if link else Conversation.State.HOLDING,
        time_preference=offer.entry.label[:80],
        pending_pick=None,
        another_booking_ok=False,
        updated_at=now,
    )
    logger.info("conversation took a waitlist offer conversation=%s offer=%s", conversation.pk, offer.pk)
    return True


def conversation_text_failed(*, message: Message) -> None:
    """A text to the patient will not go without a person: the conversation needs staff, who are told (once per
    text; with the conversation's other notices, at most once an hour)."""
    conversation = Conversation.objects.filter(pk=message.conversation_id).first()
    if conversation is None:
        return
    Conversation.objects.filter(pk=conversation.pk).update(needs_staff=True)
    if Message.objects.filter(pk=message.pk, status=Message.Status.UNKNOWN).exists():
        return  # sent or not, nobody knows: messaging tells staff itself, with what to check
    code = f" (provider error {message.error_code})" if message.error_code else ""
    staff_alert(
        clinic=conversation.clinic,
        kind=StaffAlert.Kind.HANDOFF,
        text=f"Text #{message.pk} in conversation #{conversation.pk} was not delivered{code}. Open the thread: "
        "retry it, or reach the patient another way.",
        obj=conversation,
        dedupe_key=f"text-failed:{message.pk}",
    )
