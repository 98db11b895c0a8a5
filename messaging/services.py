"""Messaging business rules: the opt-out ledger, numbers, sending, inbound texts, delivery receipts, missed calls."""

import contextlib
import logging
import random
import time
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from conversation.models import Conversation
from conversation.services import conversation_for, conversation_receive
from medspa.models import Clinic
from medspa.phones import normalize_phone

from .backends import OutboundSms, SendError, get_sms_backend
from .compliance import Classification, Intent, classify, next_send_time
from .metrics import INBOUND, MISSED_CALLS, SEND_SECONDS, SENDS
from .models import Message, OptOut, PhoneNumber, Provider

logger = logging.getLogger(__name__)

SOURCE_FOR_REASON = {"keyword": OptOut.Source.KEYWORD, "revocation phrase": OptOut.Source.PHRASE}


def is_opted_out(*, clinic: Clinic, phone: str) -> bool:
    """Checked when a message is queued and again right before it is sent."""
    return OptOut.objects.for_clinic(clinic).active().filter(phone=phone).exists()


def optout_record(
    *, clinic: Clinic, phone: str, source: str, detail: str = "", needs_review: bool = False
) -> tuple[OptOut, bool]:
    """Record that ``phone`` opted out of ``clinic``. Returns ``(row, newly)``: ``newly`` is False when the number
    was already opted out, so a repeated STOP does not earn a second confirmation."""
    now = timezone.now()
    with transaction.atomic():
        row = OptOut.objects.select_for_update().filter(clinic=clinic, phone=phone).first()
        if row is None:
            try:
                with transaction.atomic():
                    row = OptOut.objects.create(
                        clinic=clinic,
                        phone=phone,
                        source=source,
                        detail=detail,
                        needs_review=needs_review,
                        opted_out_at=now,
                    )
            except IntegrityError:  # a concurrent STOP created it first
                return OptOut.objects.get(clinic=clinic, phone=phone), False
            logger.info("opt-out recorded clinic=%s optout=%s source=%s", clinic.pk, row.pk, source)
            return row, True
        if row.active:
            return row, False
        row.active, row.source, row.detail, row.needs_review = True, source, detail, needs_review
        row.opted_out_at, row.times_opted_out = now, F("times_opted_out") + 1
        row.save()
        row.refresh_from_db()
    logger.info("opt-out recorded again clinic=%s optout=%s source=%s", clinic.pk, row.pk, source)
    return row, True


def optout_record_from_text(*, clinic: Clinic, phone: str, classification: Classification) -> tuple[OptOut, bool]:
    """Record an opt-out decided by ``compliance.classify`` on an inbound text."""
    source = OptOut.Source.UNCLEAR if classification.alert_staff else SOURCE_FOR_REASON[classification.reason]
    return optout_record(
        clinic=clinic,
        phone=phone,
        source=source,
        detail=classification.reason[:120],
        needs_review=classification.alert_staff,
    )


def optout_clear(*, clinic: Clinic, phone: str) -> bool:
    """START/UNSTOP (or YES right after an opt-out): texting may resume. Returns True when it was opted out."""
    updated = (
        OptOut.objects.for_clinic(clinic)
        .active()
        .filter(phone=phone)
        .update(active=False, opted_in_at=timezone.now(), needs_review=False, updated_at=timezone.now())
    )
    if updated:
        logger.info("opt-in recorded clinic=%s", clinic.pk)
    return bool(updated)


# --- Numbers ----------------------------------------------------------------------------------------------------


def clinic_sender(*, clinic: Clinic) -> PhoneNumber | None:
    """The number a clinic texts from: its first active SMS number."""
    return PhoneNumber.objects.for_clinic(clinic).filter(status=PhoneNumber.Status.ACTIVE, sms=True).first()


def phone_number_route(*, number: str) -> PhoneNumber | None:
    """The clinic number an inbound message or call was sent to (None: not ours)."""
    return PhoneNumber.objects.select_related("clinic").filter(number=number, clinic__active=True).first()


def phone_numbers_load(*, clinic: Clinic, entries: list, report) -> None:
    """The ``phone_numbers`` section of a clinic file: upsert by number."""
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not entry.get("number"):
            raise ValueError(f"phone_numbers[{index}]: expected an object with a number")
        values = {"provider": Provider.TELNYX, **entry, "clinic_id": clinic.pk}
        number = values.pop("number")
        row = PhoneNumber.objects.filter(number=number).first()
        if row is not None and row.clinic_id != clinic.pk:
            raise ValueError(f"phone_numbers[{index}]: {number} belongs to another clinic")
        outcome = "unchanged"
        if row is None:
            row, outcome = PhoneNumber(number=number), "created"
        for name, value in values.items():
            if getattr(row, name) != value:
                setattr(row, name, value)
                outcome = outcome if outcome == "created" else "updated"
        if outcome != "unchanged":
            row.full_clean()
            row.save()
        report.count("phone_numbers", outcome)


# --- Sending ----------------------------------------------------------------------------------------------------

DIRECT_KINDS = {Message.Kind.REPLY, Message.Kind.COMPLIANCE}  # answers to the patient's own text: no quiet hours
RETRY_DELAYS = [2, 8, 30, 120, 600]  # seconds before attempts 2..6, each with up to 25% jitter


def message_queue(
    *,
    clinic: Clinic,
    to: str,
    body: str,
    kind: str,
    idempotency_key: str,
    conversation=None,
    in_reply_to: Message | None = None,
    media_urls=(),
    now=None,
) -> list[Message]:
    """Write outbound message rows (one per part of a long text) before anything is sent, then enqueue the send.

    The same ``idempotency_key`` again returns the rows already written. A number opted out of this clinic gets
    nothing but compliance replies (the row is kept, status dropped). Texts that are not direct replies wait for
    the recipient's sending window (status scheduled, ``due_at``) and are sent by ``send_due_messages``.
    """
    from .text import sms_split

    existing = list(Message.objects.filter(idempotency_key__startswith=f"{idempotency_key}#").order_by("pk"))
    if existing:
        return existing
    now = now or timezone.now()
    sender = clinic_sender(clinic=clinic)
    if kind != Message.Kind.COMPLIANCE and is_opted_out(clinic=clinic, phone=to):
        status, due_at = Message.Status.DROPPED, None
    elif kind in DIRECT_KINDS:
        status, due_at = Message.Status.QUEUED, None
    else:
        due_at = next_send_time(now, phone=to, clinic=clinic)
        status = Message.Status.QUEUED if due_at <= now else Message.Status.SCHEDULED
    rows = []
    try:
        with transaction.atomic():
            for index, part in enumerate(sms_split(body)):
                rows.append(
                    Message.objects.create(
                        clinic=clinic,
                        conversation=conversation,
                        direction=Message.Direction.OUTBOUND,
                        kind=kind,
                        from_number=sender.number if sender else "",
                        to_number=to,
                        body=part,
                        media=[{"url": u} for u in media_urls] if index == 0 else [],
                        provider=sender.provider if sender else Provider.CONSOLE,
                        status=status,
                        idempotency_key=f"{idempotency_key}#{index}",
                        in_reply_to=in_reply_to,
                        due_at=due_at if status == Message.Status.SCHEDULED else None,
                    )
                )
    except IntegrityError:  # a concurrent call with the same key won
        return list(Message.objects.filter(idempotency_key__startswith=f"{idempotency_key}#").order_by("pk"))
    if status == Message.Status.QUEUED:
        from .tasks import send_message

        for row in rows:
            transaction.on_commit(lambda pk=row.pk: send_message.delay(pk))
    logger.info("message queued clinic=%s messages=%s kind=%s status=%s", clinic.pk, [r.pk for r in rows], kind, status)
    return rows


def _retry_delay(attempts: int) -> float:
    base = RETRY_DELAYS[min(attempts - 1, len(RETRY_DELAYS) - 1)]
    return base * (1 + random.random() / 4)  # noqa: S311  (jitter, not security)


def message_send(*, message_id: int) -> str:
    """Send one queued message. Safe to run twice: only the run that flips queued -> sending sends.

    Outcome: sent; dropped (opted out since it was queued); scheduled again with a growing delay (transient error,
    bounded by RETRY_DELAYS); unknown (the request may have left: the status webhook settles it, never a resend);
    failed (permanent error or out of retries: the conversation is flagged for staff; an opt-out error also
    records the opt-out).
    """
    claimed = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
        status=Message.Status.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    message = Message.objects.select_related("clinic").get(pk=message_id)
    if message.kind != Message.Kind.COMPLIANCE and is_opted_out(clinic=message.clinic, phone=message.to_number):
        _finish(message, Message.Status.DROPPED)
        return "dropped"
    sender = PhoneNumber.objects.filter(number=message.from_number).first()
    sms = OutboundSms(
        from_number=message.from_number,
        to_number=message.to_number,
        body=message.body,
        idempotency_key=message.idempotency_key,
        media_urls=[m["url"] for m in message.media],
        messaging_profile_id=sender.messaging_profile_id if sender else "",
        messaging_service_sid=sender.messaging_service_sid if sender else "",
    )
    started = time.perf_counter()
    try:
        result = get_sms_backend(message.provider).send(sms)  # outside any transaction
    except SendError as exc:
        SEND_SECONDS.observe(time.perf_counter() - started)
        return _send_failed(message, exc)
    SEND_SECONDS.observe(time.perf_counter() - started)
    _finish(message, Message.Status.SENT, provider_message_id=result.provider_message_id, sent_at=timezone.now())
    if message.conversation_id:
        Conversation.objects.filter(pk=message.conversation_id).update(last_outbound_at=timezone.now())
    SENDS.labels("sent").inc()
    logger.info("message sent message=%s attempt=%s", message.pk, message.attempts)
    return "sent"


def _finish(message, status, **fields):
    Message.objects.filter(pk=message.pk).update(status=status, updated_at=timezone.now(), **fields)


def _send_failed(message, exc: SendError) -> str:
    fields = {"error_code": exc.code, "error_detail": exc.detail}
    if exc.opted_out:
        optout_record(clinic=message.clinic, phone=message.to_number, source=OptOut.Source.PROVIDER, detail=exc.code)
        _finish(message, Message.Status.FAILED, **fields)
        outcome = "opted_out"
    elif exc.may_have_sent:
        _finish(message, Message.Status.UNKNOWN, **fields)
        outcome = "unknown"
    elif exc.transient and message.attempts <= len(RETRY_DELAYS):
        due = timezone.now() + timedelta(seconds=_retry_delay(message.attempts))
        _finish(message, Message.Status.SCHEDULED, due_at=due, **fields)
        outcome = "retry"
    else:
        _finish(message, Message.Status.FAILED, **fields)
        if message.conversation_id:
            Conversation.objects.filter(pk=message.conversation_id).update(needs_staff=True)
        outcome = "failed"
    SENDS.labels(outcome).inc()
    logger.warning("message send %s message=%s attempt=%s code=%s", outcome, message.pk, message.attempts, exc.code)
    return outcome


def messages_release_due(*, now=None) -> list[int]:
    """Scheduled messages whose time has come (sending window opened, retry delay over) go back to the queue."""
    now = now or timezone.now()
    released = []
    for pk in Message.objects.due(now).values_list("pk", flat=True)[:500]:
        if Message.objects.filter(pk=pk, status=Message.Status.SCHEDULED).update(status=Message.Status.QUEUED):
            released.append(pk)
    return released


def message_retry(*, message: Message, now=None) -> bool:
    """Staff asked to try a failed message again (admin action). Opt-outs are still checked at send time, and the
    retry respects the recipient's sending window: it is no longer an immediate answer to the patient, whatever it
    was at first (a compliance confirmation excepted), so outside the window it waits (status scheduled)."""
    now = now or timezone.now()
    due_at = None
    if message.kind != Message.Kind.COMPLIANCE:
        due_at = next_send_time(now, phone=message.to_number, clinic=message.clinic)
    waits = due_at is not None and due_at > now
    updated = Message.objects.filter(pk=message.pk, status=Message.Status.FAILED).update(
        status=Message.Status.SCHEDULED if waits else Message.Status.QUEUED,
        due_at=due_at if waits else None,
        attempts=0,
        error_code="",
        error_detail="",
        updated_at=now,
    )
    if updated and not waits:
        from .tasks import send_message

        transaction.on_commit(lambda: send_message.delay(message.pk))
    return bool(updated)


# Provider delivery states -> ours. Telnyx to[].status and Twilio MessageStatus.
DELIVERY_STATUS = {
    "queued": Message.Status.SENT,
    "sending": Message.Status.SENT,
    "sent": Message.Status.SENT,
    "accepted": Message.Status.SENT,
    "scheduled": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "delivery_unconfirmed": Message.Status.SENT,
    "sending_failed": Message.Status.FAILED,
    "delivery_failed": Message.Status.FAILED,
    "expired": Message.Status.FAILED,
    "failed": Message.Status.FAILED,
    "undelivered": Message.Status.FAILED,
    "canceled": Message.Status.FAILED,
}
STATUS_RANK = {Message.Status.SENT: 1, Message.Status.FAILED: 2, Message.Status.DELIVERED: 2}


def message_status_update(*, provider: str, provider_message_id: str, status: str, error_code: str = "") -> bool:
    """A delivery receipt. Moves a message forward only (a late 'sent' never undoes 'delivered'); settles a send
    whose request timed out (status unknown); an opt-out error records the opt-out."""
    ours = DELIVERY_STATUS.get(status)
    message = (
        Message.objects.select_related("clinic")
        .filter(provider=provider, provider_message_id=provider_message_id)
        .first()
    )
    if ours is None or message is None:
        return False
    current = STATUS_RANK.get(message.status, 0)
    if STATUS_RANK[ours] <= current and message.status != Message.Status.UNKNOWN:
        return False
    fields = {"status": ours, "updated_at": timezone.now()}
    if ours == Message.Status.DELIVERED:
        fields["delivered_at"] = timezone.now()
    if error_code:
        fields["error_code"] = error_code[:20]
        if error_code in ("40300", "21610"):
            optout_record(
                clinic=message.clinic, phone=message.to_number, source=OptOut.Source.PROVIDER, detail=error_code
            )
    Message.objects.filter(pk=message.pk).update(**fields)
    return True


# --- Inbound texts ----------------------------------------------------------------------------------------------


def confirmation_texts(clinic) -> dict:
    """The opt-out and opt-in confirmations (also registered with the 10DLC campaign)."""
    return {
        "opt_out": f"{clinic.name}: You're unsubscribed and will get no more texts. Reply START to resubscribe.",
        "opt_in": f"{clinic.name}: You're resubscribed to texts. Reply HELP for help, STOP to opt out.",
    }


def inbound_receive(
    *, provider: str, provider_message_id: str, from_number: str, to_number: str, body: str, media=()
) -> Message | None:
    """An inbound text. Stored once (a duplicate delivery returns None and changes nothing), then compliance decides
    before anything else: opt-out (one confirmation, only for a new opt-out), opt-in, HELP; otherwise, unless the
    sender is opted out, the conversation gets it."""
    number = phone_number_route(number=to_number)
    if number is None:
        logger.info("inbound to an unknown number ignored provider=%s", provider)
        INBOUND.labels("unknown_number").inc()
        return None
    clinic = number.clinic
    with contextlib.suppress(ValidationError):  # short codes and alphanumeric senders are kept as sent
        from_number = normalize_phone(from_number)
    conversation = conversation_for(clinic=clinic, patient_phone=from_number, origin=Conversation.Origin.INBOUND_TEXT)
    try:
        with transaction.atomic():
            message = Message.objects.create(
                clinic=clinic,
                conversation=conversation,
                direction=Message.Direction.INBOUND,
                kind=Message.Kind.PATIENT,
                from_number=from_number,
                to_number=to_number,
                body=body or "",
                media=list(media),
                provider=provider,
                provider_message_id=provider_message_id,
                status=Message.Status.RECEIVED,
            )
    except IntegrityError:
        INBOUND.labels("duplicate").inc()
        return None

    opted_out = is_opted_out(clinic=clinic, phone=from_number)
    decision = classify(body, opted_out=opted_out)

    def reply(body):  # a compliance reply to this text: one at most (keyed by the inbound message)
        message_queue(
            clinic=clinic,
            to=from_number,
            body=body,
            kind=Message.Kind.COMPLIANCE,
            idempotency_key=f"inbound:{message.pk}",
            conversation=conversation,
            in_reply_to=message,
        )

    if decision.intent == Intent.OPT_OUT:
        _, newly = optout_record_from_text(clinic=clinic, phone=from_number, classification=decision)
        Conversation.objects.filter(pk=conversation.pk).update(
            state=Conversation.State.OPTED_OUT, needs_staff=decision.alert_staff, last_inbound_at=timezone.now()
        )
        if newly:
            reply(confirmation_texts(clinic)["opt_out"])
        INBOUND.labels("opt_out").inc()
    elif decision.intent == Intent.OPT_IN and opted_out:
        optout_clear(clinic=clinic, phone=from_number)
        Conversation.objects.filter(pk=conversation.pk).update(
            state=Conversation.State.ENGAGED, last_inbound_at=timezone.now()
        )
        reply(confirmation_texts(clinic)["opt_in"])
        INBOUND.labels("opt_in").inc()
    elif decision.intent == Intent.HELP:
        reply(clinic.render_help())
        INBOUND.labels("help").inc()
    elif opted_out:
        # Texting us is not consent to be texted: only START is. Staff can read it; nothing is sent.
        Conversation.objects.filter(pk=conversation.pk).update(needs_staff=True, last_inbound_at=timezone.now())
        INBOUND.labels("opted_out_sender").inc()
    else:
        conversation_receive(message=message)
        INBOUND.labels("conversation").inc()
    return message


# --- Intro texts: missed calls and web leads --------------------------------------------------------------------


def intro_send(*, clinic: Clinic, phone: str, origin: str, now=None) -> list[Message]:
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
        now=now,
    )


MISSED_TELNYX_CAUSES = {"timeout", "no_answer", "user_busy", "call_rejected", "originator_cancel"}
MISSED_TWILIO_STATUSES = {"no-answer", "busy", "failed", "canceled"}


def missed_call_receive(*, to_number: str, from_number: str) -> list[Message]:
    """A call to a clinic number that nobody answered: open or resume the conversation and send the intro."""
    number = phone_number_route(number=to_number)
    if number is None:
        MISSED_CALLS.labels("unknown_number").inc()
        return []
    try:
        caller = normalize_phone(from_number)
    except ValidationError:
        MISSED_CALLS.labels("unknown_caller").inc()  # withheld or not a mobile number we can text
        return []
    messages = intro_send(clinic=number.clinic, phone=caller, origin=Conversation.Origin.MISSED_CALL)
    MISSED_CALLS.labels("intro" if messages else "intro_already_sent").inc()
    return messages
