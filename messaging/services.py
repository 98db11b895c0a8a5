"""Messaging business rules: the opt-out ledger, numbers, sending, inbound texts, delivery receipts, missed calls."""

import contextlib
import logging
import time
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, Exists, F, OuterRef, Q, Subquery, When
from django.utils import timezone

from medspa.alerts import staff_alert, staff_alerts_resolve_for
from medspa.events import publish
from medspa.models import Clinic, StaffAlert
from medspa.phones import normalize_phone
from medspa.queueing import PRIORITY, enqueue, queue_idle, queued_ids
from medspa.retry import RetrySchedule

from .backends import OutboundSms, SendError, get_sms_backend
from .compliance import Classification, Intent, classify, confirmation_texts_es, help_text_es, next_send_time
from .metrics import INBOUND, MISSED_CALLS, RECONCILED, SEND_SECONDS, SENDS, STUCK
from .models import Message, OptOut, PhoneNumber, Provider
from .text import sms_split

logger = logging.getLogger(__name__)

SOURCE_FOR_REASON = {"keyword": OptOut.Source.KEYWORD, "revocation phrase": OptOut.Source.PHRASE}


def _active_optouts(*, clinic, phone):
    """The opt-out row that stops texts to ``phone`` from ``clinic`` (either may be an ``OuterRef``)."""
    return OptOut.objects.for_clinic(clinic).active().filter(phone=phone)


def is_opted_out(*, clinic: Clinic, phone: str) -> bool:
    """Checked when a message is queued and again right before it is sent."""
    return _active_optouts(clinic=clinic, phone=phone).exists()


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


def _senders(clinic: Clinic):
    return PhoneNumber.objects.for_clinic(clinic).filter(status=PhoneNumber.Status.ACTIVE, sms=True)


def clinic_sender(*, clinic: Clinic) -> PhoneNumber | None:
    """The clinic's default sender (chosen in the admin), else its first active SMS number: for a patient who has
    not used any of the clinic's numbers yet (a web lead)."""
    return _senders(clinic).order_by("-is_default", "number").first()


def patient_sender(*, clinic: Clinic, phone: str, conversation=None, in_reply_to=None) -> PhoneNumber | None:
    """The number to text this patient from: the clinic number of the latest text or call exchanged with them (a
    patient always hears back from the number they used, whichever provider it is on), else the default sender.
    A reply to an inbound text (``in_reply_to``) goes from the number that text was sent to, while it is active."""
    if in_reply_to is not None and in_reply_to.direction == Message.Direction.INBOUND and in_reply_to.to_number:
        number = _senders(clinic).filter(number=in_reply_to.to_number).order_by().first()
        if number is not None:
            return number
    exchanged = Message.objects.filter(clinic=clinic)
    if conversation is not None:
        exchanged = exchanged.filter(conversation=conversation)
    else:
        exchanged = exchanged.filter(
            Q(direction=Message.Direction.INBOUND, from_number=phone)
            | Q(direction=Message.Direction.OUTBOUND, to_number=phone)
        )
    ours = Case(When(direction=Message.Direction.INBOUND, then=F("to_number")), default=F("from_number"))
    latest = exchanged.exclude(from_number="").order_by("-pk").annotate(ours=ours).values("ours")[:1]
    # One query: the latest's number, if active (numbers are unique: no ordering, so no join to order by clinic).
    number = _senders(clinic).filter(number=Subquery(latest)).order_by().first()
    if number is not None:
        return number
    return clinic_sender(clinic=clinic)


def phone_number_route(*, number: str) -> PhoneNumber | None:
    """The clinic number an inbound message or call was sent to (None: not ours)."""
    return PhoneNumber.objects.select_related("clinic").filter(number=number, clinic__active=True).first()


def inbound_numbers(
    *, to_number: str, from_number: str | None, opt_out: bool = False
) -> tuple[PhoneNumber | None, bool]:
    """For an inbound text or call, in one read: the clinic number it was sent to (``phone_number_route``), and
    whether it came from one of the numbers we text from, of any clinic (a loop, or a spoofed caller ID; False
    when ``from_number`` is None). ``opt_out``: the same read also tells whether the sender is opted out of the
    number's clinic (``is_opted_out``), as ``route.sender_opted_out``."""
    wanted = {to_number} if from_number is None else {to_number, from_number}
    # Unordered: PhoneNumber's default ordering (by clinic name) would join and sort for nothing.
    rows = PhoneNumber.objects.select_related("clinic").filter(number__in=wanted).order_by()
    if opt_out and from_number is not None:
        rows = rows.annotate(sender_opted_out=Exists(_active_optouts(clinic=OuterRef("clinic_id"), phone=from_number)))
    rows = list(rows)
    route = next((row for row in rows if row.number == to_number and row.clinic.active), None)
    return route, any(row.number == from_number for row in rows)


def phone_numbers_load(*, clinic: Clinic, entries: list, report, replace: bool = False) -> None:
    """The ``phone_numbers`` section of a clinic file: upsert by number (``replace`` deactivates nothing: a
    number is released in the admin, never by a file)."""
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
URGENT_KINDS = {Message.Kind.INTRO, Message.Kind.COMPLIANCE}  # sent from the priority queue
SEND_TASK = "messaging.send_message"
RETRIES = RetrySchedule((2, 8, 30, 120, 600), jitter=0.25)  # seconds before attempts 2..6, each up to 25% longer


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
    sender: PhoneNumber | None = None,
    send_here: bool = False,
    new_key: bool = False,
    now=None,
) -> list[Message]:
    """Write outbound message rows (one per part of a long text) before anything is sent, then enqueue the send
    (``send_here``: send in this process after commit while the sms queue is idle, ``send_here_or_enqueue``).

    They go from ``sender``, by default the number the patient last used (``patient_sender``).
    The same ``idempotency_key`` again returns the rows already written. A number opted out of this clinic gets
    nothing but compliance replies (the row is kept, status dropped). Texts that are not direct replies wait for
    the recipient's sending window (status scheduled, ``due_at``) and are sent by ``send_due_messages``.
    ``new_key``: the caller made the key from a row it created in its own, still open, transaction (a turn's id),
    so no rows can hold it yet and no concurrent call can use it: neither is looked for.
    """

    if not new_key:
        existing = list(Message.objects.filter(idempotency_key__startswith=f"{idempotency_key}#").order_by("pk"))
        if existing:
            return existing
    now = now or timezone.now()
    sender = sender or patient_sender(clinic=clinic, phone=to, conversation=conversation, in_reply_to=in_reply_to)
    if kind != Message.Kind.COMPLIANCE and is_opted_out(clinic=clinic, phone=to):
        status, due_at = Message.Status.DROPPED, None
    elif kind in DIRECT_KINDS:
        status, due_at = Message.Status.QUEUED, None
    else:
        due_at = next_send_time(now, phone=to, clinic=clinic)
        status = Message.Status.QUEUED if due_at <= now else Message.Status.SCHEDULED

    def write():
        return [
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
            for index, part in enumerate(sms_split(body))
        ]

    if new_key:  # no key conflict is possible: no savepoint to recover from one
        rows = write()
    else:
        try:
            with transaction.atomic():
                rows = write()
        except IntegrityError:  # a concurrent call with the same key won
            return list(Message.objects.filter(idempotency_key__startswith=f"{idempotency_key}#").order_by("pk"))
    if status == Message.Status.QUEUED:
        for row in rows:
            if send_here:  # the row as written, with its sender's settings: no second read to send it
                row.sender_profile_id = sender.messaging_profile_id if sender else ""
                row.sender_service_sid = sender.messaging_service_sid if sender else ""
                transaction.on_commit(lambda pk=row.pk, row=row: send_here_or_enqueue(pk, kind=kind, written=row))
            else:
                transaction.on_commit(lambda pk=row.pk: send_enqueue(pk, kind=kind))
    logger.info("message queued clinic=%s messages=%s kind=%s status=%s", clinic.pk, [r.pk for r in rows], kind, status)
    return rows


def send_enqueue(message_id: int, *, kind: str = "") -> None:
    """Queue a queued row's send after commit; with the broker down the reconcile sweep queues it again. Intros and
    compliance confirmations go on the priority queue: a burst of replies never holds them back."""
    enqueue(SEND_TASK, message_id, queue=PRIORITY if kind in URGENT_KINDS else None)


SEND_HERE_SLOW_SECONDS = 2.0  # a send here that took longer than this: the provider is slow...
SEND_HERE_PAUSE_SECONDS = 60.0  # ...so this process queues its texts' sends for this long
_send_here_paused_until = 0.0  # per process (time.monotonic)
_sent_here = False  # the process's first send builds the provider's client (its TLS context): never counted slow


def send_here_or_enqueue(message_id: int, *, kind: str = "", written: Message | None = None) -> None:
    """After commit, a task's own text (a turn's reply): sent by this process at once when nothing waits in the sms
    queue, which saves a task (a broker round trip and a worker's dispatch) per reply; else queued as usual, so a
    reply never jumps ahead of the replies already waiting. A slow provider must not hold up the caller's worker
    (the turns, and the default and EMR work beside them): after a send here slower than SEND_HERE_SLOW_SECONDS
    this process queues its sends for SEND_HERE_PAUSE_SECONDS, and the sms workers wait on the provider instead
    (its first send, which builds the provider's client, is not counted).
    The send is ``message_send`` either way: the same claim, opt-out check and outcomes; a process that dies
    mid-send leaves the row to the reconcile sweep, like a send task's. Intros and compliance texts always go
    through the priority queue. ``written``: the row as ``message_queue`` wrote it (``message_send`` reads it
    otherwise)."""
    global _send_here_paused_until, _sent_here
    if kind in URGENT_KINDS or time.monotonic() < _send_here_paused_until or not queue_idle(SEND_TASK):
        send_enqueue(message_id, kind=kind)
        return
    started = time.monotonic()
    try:
        message_send(message_id=message_id, written=written)
    except Exception as exc:  # the row says what is left: the send task takes it from there (or finds it done)
        logger.warning("message send here failed message=%s error=%s: queued", message_id, type(exc).__name__)
        send_enqueue(message_id, kind=kind)
    finally:
        first, _sent_here = not _sent_here, True
        if time.monotonic() - started > SEND_HERE_SLOW_SECONDS and not first:
            _send_here_paused_until = time.monotonic() + SEND_HERE_PAUSE_SECONDS
            logger.info("message send here slow message=%s: sends queued for %ss", message_id, SEND_HERE_PAUSE_SECONDS)


def message_send(*, message_id: int, written: Message | None = None) -> str:
    """Send one queued message. Safe to run twice: only the run that flips queued -> sending sends.
    ``written``: the row as this process wrote it moments ago (never sent, with its sender's settings), read again
    otherwise; were it no longer as written, the check before the send finds the claim not this run's.

    Outcome: sent; dropped (opted out since it was queued); scheduled again with a growing delay (transient error,
    bounded by RETRIES); unknown (the request may have left: the status webhook settles it, never a resend);
    failed (permanent error or out of retries: the conversation is flagged for staff; an opt-out error also
    records the opt-out).
    """
    claimed = Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
        status=Message.Status.SENDING, attempts=F("attempts") + 1, updated_at=timezone.now()
    )
    if not claimed:
        return "skipped"
    if written is not None and written.attempts == 0:
        message = written
        message.status, message.attempts = Message.Status.SENDING, 1
    else:
        # Not joined to its clinic: only the rare failure paths need it (read then); the row alone is a cheaper query.
        message = _with_sender(Message.objects.all()).get(pk=message_id)
    sms = _outbound_sms(message)
    # One look right before the send: the claim is still this run's (if this worker stalled for SMS_STUCK_SECONDS
    # since its claim, the reconcile sweep may have taken the row back, provider: never got it, and queued it
    # again), and the recipient has not opted out of the clinic (compliance confirmations excepted).
    still_ours = Message.objects.filter(pk=message.pk, status=Message.Status.SENDING, attempts=message.attempts)
    opted_out = (
        still_ours.annotate(opted_out=Exists(_active_optouts(clinic=OuterRef("clinic"), phone=OuterRef("to_number"))))
        .values_list("opted_out", flat=True)
        .first()
    )
    if opted_out is None:
        return "skipped"
    if opted_out and message.kind != Message.Kind.COMPLIANCE:
        _finish(message, Message.Status.DROPPED)
        return "dropped"
    started = time.perf_counter()
    try:
        result = get_sms_backend(message.provider).send(sms)  # outside any transaction
    except SendError as exc:
        SEND_SECONDS.observe(time.perf_counter() - started)
        return _send_failed(message, exc)
    SEND_SECONDS.observe(time.perf_counter() - started)
    _finish(message, Message.Status.SENT, provider_message_id=result.provider_message_id, sent_at=timezone.now())
    publish("messaging.message_sent", message=message)
    SENDS.labels("sent").inc()
    logger.info("message sent message=%s attempt=%s", message.pk, message.attempts)
    return "sent"


def _with_sender(messages):
    """Messages read with their sender number's provider settings (``_outbound_sms`` needs no second read)."""
    sender = PhoneNumber.objects.filter(number=OuterRef("from_number")).order_by()  # unique: no join to order by
    return messages.annotate(
        sender_profile_id=Subquery(sender.values("messaging_profile_id")[:1]),
        sender_service_sid=Subquery(sender.values("messaging_service_sid")[:1]),
    )


def _outbound_sms(message) -> OutboundSms:
    """The provider request for a message read by ``_with_sender`` (its sender's settings: None when the sender is
    not one of our numbers)."""
    return OutboundSms(
        from_number=message.from_number,
        to_number=message.to_number,
        body=message.body,
        idempotency_key=message.idempotency_key,
        media_urls=[m["url"] for m in message.media],
        messaging_profile_id=message.sender_profile_id or "",
        messaging_service_sid=message.sender_service_sid or "",
    )


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
    elif exc.transient and message.attempts < RETRIES.max_attempts:
        due = RETRIES.next_at(timezone.now(), message.attempts)
        _finish(message, Message.Status.SCHEDULED, due_at=due, **fields)
        outcome = "retry"
    else:
        _finish(message, Message.Status.FAILED, **fields)
        publish("messaging.message_failed", message=message)
        outcome = "failed"
    SENDS.labels(outcome).inc()
    logger.warning("message send %s message=%s attempt=%s code=%s", outcome, message.pk, message.attempts, exc.code)
    return outcome


def messages_release_due(*, now=None) -> list[int]:
    """Scheduled messages whose time has come (sending window opened, retry delay over) go back to the queue."""
    now = now or timezone.now()
    released = []
    for pk in Message.objects.due(now).values_list("pk", flat=True)[:500]:
        if Message.objects.filter(pk=pk, status=Message.Status.SCHEDULED).update(
            status=Message.Status.QUEUED,
            updated_at=timezone.now(),  # queued since: the reconcile sweep's clock
        ):
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
        transaction.on_commit(lambda: send_enqueue(message.pk, kind=message.kind))
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


# --- Stuck texts: the reconcile sweep ----------------------------------------------------------------------------

QUEUED_STALE_SECONDS = 30  # queued this long: its task was lost (Redis flushed or restarted); enqueue it again
STUCK_FLOOR_SECONDS = 60  # SMS_STUCK_SECONDS is never taken below this: longer than a send attempt can last
LOOKUP_SKEW = timedelta(seconds=60)  # our clock against the provider's, when searching for a text we wrote
RECONCILE_WITHIN = timedelta(hours=24)  # a text staff were told about is asked about for a day, then left to them
PROVIDER_ERROR_GRACE = 5  # provider errors are retried quietly for 5 x SMS_STUCK_SECONDS before staff are told
RECONCILE_BATCH = 50  # stuck rows asked about per sweep (each may be a provider request)
RECONCILE_BUDGET_SECONDS = 10  # then the sweep stops asking, leaving the rest to the next: the sms worker is shared
UNSETTLED_ALERT = "sms-unsettled:"  # + message id: the StaffAlert dedupe key


def messages_reconcile(*, now=None) -> dict[str, list[int]]:
    """Beat (``messaging.reconcile_messages``, every 30 s): outbound texts that got stuck.

    - ``queued`` for QUEUED_STALE_SECONDS: the send task was lost (a flushed Redis). Enqueued again, at most once
      per QUEUED_STALE_SECONDS; the conditional claim in ``message_send`` lets one task send.
    - ``sending`` or ``unknown`` for SMS_STUCK_SECONDS (a worker killed mid-send, the database write after a send
      lost, a read timeout): the provider is asked, by id (``fetch_status``) or, without one, by a search
      (``find_sent``). It has it: its status is recorded (and its id). It certainly never got it: queued again
      through the normal path under the same idempotency key. It cannot tell: status ``unknown``, the
      conversation flagged for staff, one StaffAlert; asked again every SMS_STUCK_SECONDS for RECONCILE_WITHIN,
      and the alert is closed if it settles. docs/DECISIONS.md says what counts as "certainly never got it".

    Every change is a conditional update on the status and ``updated_at`` the sweep read, so a worker or a webhook
    that moved the row in the meantime wins and the sweep does nothing (outcome ``raced``). Returns the message
    ids by outcome.
    """
    from django.core.cache import cache

    now = now or timezone.now()
    report: dict[str, list[int]] = {}
    if not cache.add("messaging:reconcile", 1, 300):  # the previous sweep is still asking providers
        return report
    try:
        for pk, outcome in _queued_requeue(now=now):
            report.setdefault(outcome, []).append(pk)
        started = time.monotonic()
        for message, outcome in _stuck_reconcile(now=now):
            report.setdefault(outcome, []).append(message.pk)
            RECONCILED.labels(message.provider, outcome).inc()
            log = logger.info if outcome in ("sent", "delivered", "still_unsettled") else logger.warning
            log("stuck text reconciled message=%s provider=%s outcome=%s", message.pk, message.provider, outcome)
            if time.monotonic() - started > RECONCILE_BUDGET_SECONDS:
                break
    finally:
        cache.delete("messaging:reconcile")
    return report


def _queued_requeue(*, now) -> list[tuple[int, str]]:
    done = []
    stale = Message.objects.select_related("clinic").filter(
        direction=Message.Direction.OUTBOUND,
        status=Message.Status.QUEUED,
        updated_at__lte=now - timedelta(seconds=QUEUED_STALE_SECONDS),
    )
    found = list(stale.order_by("updated_at")[:500])
    waiting = queued_ids(SEND_TASK, [message.pk for message in found])  # only waiting in a long queue
    for message in found:
        if message.pk in waiting:
            continue
        due = _window_due(message, now=now)
        fields = {"updated_at": now}  # moves on: a worker that is only slow gets one more task per bound, no more
        if due is not None:
            fields.update(status=Message.Status.SCHEDULED, due_at=due)
        if not Message.objects.filter(pk=message.pk, status=message.status, updated_at=message.updated_at).update(
            **fields
        ):
            continue
        STUCK.labels("queued").inc()
        outcome = "requeued" if due is None else "deferred"
        RECONCILED.labels(message.provider, outcome).inc()
        if due is None:
            transaction.on_commit(lambda pk=message.pk, kind=message.kind: send_enqueue(pk, kind=kind))
        done.append((message.pk, outcome))
    if done:
        logger.warning("queued texts whose task was lost messages=%s", done)
    return done


def _window_due(message, *, now):
    """None: it may go now. Else when its sending window opens: a text that is not a direct answer to the patient
    (intro, notice, staff) and comes back late (hours after an outage) still respects quiet hours."""
    if message.kind in DIRECT_KINDS:
        return None
    due = next_send_time(now, phone=message.to_number, clinic=message.clinic)
    return due if due > now else None


def _stuck_reconcile(*, now):
    from django.conf import settings
    from django.db.models import CharField, Value
    from django.db.models.functions import Cast, Concat

    bound = timedelta(seconds=max(settings.SMS_STUCK_SECONDS, STUCK_FLOOR_SECONDS))
    alerts = StaffAlert.objects.filter(
        dedupe_key=Concat(Value(UNSETTLED_ALERT), Cast(OuterRef("pk"), output_field=CharField()))
    )
    rows = (
        _with_sender(Message.objects.select_related("clinic"))
        .filter(
            direction=Message.Direction.OUTBOUND,
            status__in=[Message.Status.SENDING, Message.Status.UNKNOWN],
            updated_at__lte=now - bound,
        )
        .annotate(staff_told=Exists(alerts))
        .filter(~Exists(alerts.filter(created_at__lt=now - RECONCILE_WITHIN)))
        .order_by("updated_at")[:RECONCILE_BATCH]
    )
    for message in rows:
        if not message.staff_told:
            STUCK.labels(message.status).inc()
        yield message, _stuck_settle(message, now=now, bound=bound)


def _stuck_settle(message, *, now, bound) -> str:
    backend = get_sms_backend(message.provider)
    found = None
    try:
        if message.provider_message_id:  # the provider accepted it: ask what became of it (never a resend)
            word = backend.fetch_status(message.provider_message_id)
            verdict = "has" if word else "cannot_tell"
        else:
            verdict, found = _provider_search(message, backend)
            word = found.status if found else ""
    except Exception as exc:  # a SendError, or anything unexpected: one row never stops the sweep
        if now - message.updated_at < bound * PROVIDER_ERROR_GRACE:
            code = exc.code if isinstance(exc, SendError) else type(exc).__name__  # not str(exc): it may hold numbers
            logger.warning("stuck text: provider lookup failed message=%s code=%s", message.pk, code)
            return "provider_error"  # untouched: asked again on the next sweep
        verdict, word = "cannot_tell", ""
    if verdict == "never":
        return _stuck_resend(message, now=now)
    ours = DELIVERY_STATUS.get(word) if verdict == "has" else None
    if ours is None:
        return _stuck_unsettled(message, now=now, found=found)
    fields = {"status": ours, "updated_at": now}
    if found is not None:
        fields["provider_message_id"] = found.provider_message_id
    if ours in (Message.Status.SENT, Message.Status.DELIVERED) and message.sent_at is None:
        fields["sent_at"] = (found.created_at if found else None) or now
    if ours == Message.Status.DELIVERED:
        fields["delivered_at"] = now
    try:
        with transaction.atomic():
            taken = _stuck_take(message, **fields)
    except IntegrityError:  # that provider id is already another row's
        return _stuck_unsettled(message, now=now)
    if not taken:
        return "raced"
    if ours == Message.Status.FAILED:
        publish("messaging.message_failed", message=message)
    _stuck_alert_resolve(message)
    return ours


def _provider_search(message, backend):
    """("has", the provider's message) / ("never", None) / ("cannot_tell", None) for a row without a provider id.

    "never" only when the provider's list is complete (``find_sent`` did not answer None) and holds no outbound
    message from our sender to this recipient since the row was written, apart from those other rows of ours
    already own. "has" when one of the others has exactly this text. Anything else cannot be told apart."""
    listed = backend.find_sent(_outbound_sms(message), since=message.created_at - LOOKUP_SKEW)
    if listed is None:
        return "cannot_tell", None
    ids = [m.provider_message_id for m in listed]
    owned = set(
        Message.objects.filter(provider=message.provider, provider_message_id__in=ids)
        .exclude(pk=message.pk)
        .values_list("provider_message_id", flat=True)
    )
    unowned = [m for m in listed if m.provider_message_id not in owned]
    if not unowned:
        return "never", None
    same = [m for m in unowned if m.body == message.body]
    if same:
        return "has", min(same, key=lambda m: (m.created_at is None, m.created_at or 0))  # the earliest
    return "cannot_tell", None


def _stuck_take(message, **fields) -> bool:
    """The sweep's only way to write: only if the row is as it was read."""
    return bool(
        Message.objects.filter(pk=message.pk, status=message.status, updated_at=message.updated_at).update(**fields)
    )


def _stuck_resend(message, *, now) -> str:
    if message.attempts >= RETRIES.max_attempts:  # stuck again and again (a worker dying on it): a person decides
        detail = f"not sent: the send stopped without an answer {message.attempts} times"
        if not _stuck_take(message, status=Message.Status.FAILED, error_detail=detail, updated_at=now):
            return "raced"
        publish("messaging.message_failed", message=message)
        _stuck_alert_resolve(message)
        return "gave_up"
    # Back to queued under the same idempotency key (message_send's conditional claim sends it once), or to
    # scheduled when its sending window has closed meanwhile (messages_release_due sends it then).
    due = _window_due(message, now=now)
    fields = {"status": Message.Status.QUEUED, "updated_at": now}
    if due is not None:
        fields.update(status=Message.Status.SCHEDULED, due_at=due)
    if not Message.objects.filter(
        pk=message.pk, status=message.status, updated_at=message.updated_at, provider_message_id__isnull=True
    ).update(**fields):
        return "raced"
    if due is None:
        transaction.on_commit(lambda: send_enqueue(message.pk, kind=message.kind))
    _stuck_alert_resolve(message)
    return "resent" if due is None else "resent_later"


def _stuck_unsettled(message, *, now, found=None) -> str:
    """Cannot tell: never resent. Status unknown (a search that found it under an unmapped status keeps its id,
    so its delivery receipt can settle it); the first time, the conversation is flagged and staff get one alert."""

    fields = {"status": Message.Status.UNKNOWN, "updated_at": now}
    if found is not None:
        fields["provider_message_id"] = found.provider_message_id
    try:
        with transaction.atomic():
            taken = _stuck_take(message, **fields)
    except IntegrityError:
        fields.pop("provider_message_id")
        taken = _stuck_take(message, **fields)
    if not taken:
        return "raced"
    if message.staff_told:
        return "still_unsettled"
    publish("messaging.message_failed", message=message)
    where = f"conversation #{message.conversation_id}" if message.conversation_id else "the patient"
    staff_alert(
        clinic=message.clinic,
        kind=StaffAlert.Kind.HANDOFF,
        text=(
            f"Text #{message.pk} may not have reached the patient: it stopped while sending and {message.provider} "
            f"cannot confirm it. Check the provider's message log; if it did not go, reply to {where}."
        ),
        obj=message,
        dedupe_key=f"{UNSETTLED_ALERT}{message.pk}",
        conversation_id=message.conversation_id,
    )
    return "unsettled"


def _stuck_alert_resolve(message) -> None:

    if getattr(message, "staff_told", False):
        staff_alerts_resolve_for(obj=message, kinds=[StaffAlert.Kind.HANDOFF])


# --- Inbound texts ----------------------------------------------------------------------------------------------


def confirmation_texts(clinic, language: str = "en") -> dict:
    """The opt-out and opt-in confirmations (also registered with the 10DLC campaign); in Spanish for a Spanish
    keyword when the clinic answers in Spanish."""
    if language == "es" and clinic.spanish:
        return confirmation_texts_es(clinic)
    return {
        "opt_out": f"{clinic.name}: You're unsubscribed and will get no more texts. Reply START to resubscribe.",
        "opt_in": f"{clinic.name}: You're resubscribed to texts. Reply HELP for help, STOP to opt out.",
    }


def inbound_receive(
    *, provider: str, provider_message_id: str, from_number: str, to_number: str, body: str, media=()
) -> Message | None:
    """An inbound text. Stored once (a duplicate delivery returns None and changes nothing), then compliance decides
    before anything else: opt-out (one confirmation, only for a new opt-out), opt-in, HELP; otherwise, unless the
    sender is opted out, the conversation gets it. Then ``messaging.text_received`` tells the conversation, which
    files the text (and its confirmation) in the patient's conversation and answers it."""
    with contextlib.suppress(ValidationError):  # short codes and alphanumeric senders are kept as sent
        from_number = normalize_phone(from_number)
    number, from_ours = inbound_numbers(to_number=to_number, from_number=from_number, opt_out=True)
    if number is None:
        logger.info("inbound to an unknown number ignored provider=%s", provider)
        INBOUND.labels("unknown_number").inc()
        return None
    clinic = number.clinic
    if from_ours:  # a loop, never answered
        logger.info("inbound from one of our own numbers ignored provider=%s", provider)
        INBOUND.labels("our_own_number").inc()
        return None
    try:
        with transaction.atomic():
            message = Message.objects.create(
                clinic=clinic,
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

    opted_out = number.sender_opted_out  # read with the number, before the text was stored
    decision = classify(body, opted_out=opted_out)

    def reply(body):  # a compliance reply to this text: one at most (keyed by the inbound message)
        message_queue(
            clinic=clinic,
            to=from_number,
            body=body,
            kind=Message.Kind.COMPLIANCE,
            idempotency_key=f"inbound:{message.pk}",
            sender=number,
            in_reply_to=message,
        )

    if decision.intent == Intent.OPT_OUT:
        _, newly = optout_record_from_text(clinic=clinic, phone=from_number, classification=decision)
        if newly:
            reply(confirmation_texts(clinic, decision.language)["opt_out"])
        outcome = "opt_out"
    elif decision.intent == Intent.OPT_IN and opted_out:
        optout_clear(clinic=clinic, phone=from_number)
        reply(confirmation_texts(clinic, decision.language)["opt_in"])
        outcome = "opt_in"
    elif decision.intent == Intent.HELP:
        reply(help_text_es(clinic) if decision.language == "es" and clinic.spanish else clinic.render_help())
        outcome = "help"
    elif opted_out:
        outcome = "opted_out_sender"  # texting us is not consent to be texted: only START is; nothing is sent
    else:
        outcome = "conversation"
    INBOUND.labels(outcome).inc()
    publish("messaging.text_received", message=message, decision=outcome, alert_staff=decision.alert_staff)
    return message


def messages_file(*, message: Message, conversation_id: int) -> None:
    """File an inbound text, and the replies already queued to it, under a conversation (the conversation app
    calls this when it is told of the text)."""
    Message.objects.filter(Q(pk=message.pk) | Q(in_reply_to=message)).update(conversation_id=conversation_id)
    message.conversation_id = conversation_id


# --- Missed calls (the conversation sends the intro: conversation.services.intro_send) -------------------------


MISSED_TELNYX_CAUSES = {"timeout", "no_answer", "user_busy", "call_rejected", "originator_cancel"}
MISSED_TWILIO_STATUSES = {"no-answer", "busy", "failed", "canceled"}


def missed_call_receive(*, to_number: str, from_number: str) -> list[Message]:
    """A call to a clinic number that nobody answered: ``messaging.call_missed`` (the conversation opens or resumes
    and sends the intro, from the number the patient called). The intro messages queued, [] if none."""
    try:
        caller = normalize_phone(from_number)
    except ValidationError:
        caller = None  # withheld or not a mobile number we can text
    number, from_ours = inbound_numbers(to_number=to_number, from_number=caller)
    if number is None:
        MISSED_CALLS.labels("unknown_number").inc()
        return []
    if caller is None:
        MISSED_CALLS.labels("unknown_caller").inc()
        return []
    if from_ours:  # never text ourselves
        MISSED_CALLS.labels("our_own_number").inc()
        return []
    messages = [m for queued in publish("messaging.call_missed", number=number, caller=caller) for m in queued]
    MISSED_CALLS.labels("intro" if messages else "intro_already_sent").inc()
    return messages
