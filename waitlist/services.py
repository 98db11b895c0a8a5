"""Waitlist rules: who waits for what, and how a freed time is offered.

A patient joins through the conversation (the assistant asks "want me to text you if something opens?" when no
time fits; ``waitlist_propose`` records the question, ``waitlist_answer`` the yes). When a time frees up (bookings'
``booking_cancelled`` and ``hold_expired`` events, the old time of a reschedule included), ``freed_time_record``
writes a ``FreedTime`` row in the transaction that freed it and queues ``freed_time_offer``, which offers it to the
matching waiting patients one at a time, in order of joining: the time is held for the first one who can take it
(``bookings.services.booking_hold``, for the clinic's ``hold_minutes``), the conversation takes the offer (the
``waitlist.offer_made`` event; a busy conversation says no and the next patient is tried) and ``offer_send`` texts
it, with the deposit link when the patient's name is known. If they do not take it, the hold expires (or they say
no and it is released), the time is freed again and the next patient gets it.

Never two patients at once, never double-booked: a clinic's offers are made one at a time under a row lock on its
``WaitlistSettings``, a freed time's row is locked and moves on from ``pending`` once, at most one open offer per
freed time (a unique constraint), and the hold itself is bookings' (PostgreSQL's exclusion constraint refuses an
overlap even under a race). Patients are skipped, not held for, when they opted out, when it is quiet hours where
they are, when they had ``max_offers_per_day`` offers today, when they already hold an offer, or when this time was
already offered to them.
"""

import logging
from datetime import datetime, time, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bookings.models import Booking
from bookings.services import AlreadyBooked, BookingStateError, SlotUnavailable, booking_hold, booking_in_spanish
from emr.availability import availability_for_day, availability_invalidate
from emr.base import EmrError
from emr.services import EmrConfigError, emr_client
from medspa.alerts import staff_alert
from medspa.events import publish
from medspa.models import StaffAlert
from medspa.queueing import enqueue
from medspa.retry import RetrySchedule
from medspa.spanish import gsm7
from medspa.timetext import time_label, when_es, when_label
from messaging.compliance import next_send_time
from messaging.models import Message
from messaging.services import is_opted_out, message_queue
from payments.services import PaymentConfigError, PaymentError, deposit_amount, deposit_request

from .models import FreedTime, WaitlistEntry, WaitlistOffer, WaitlistSettings

logger = logging.getLogger(__name__)

OFFER_TASK = "waitlist.offer_freed_time"
PROPOSAL_LASTS = timedelta(hours=12)  # an unanswered "want me to text you?" lapses
LONGEST_WAIT = timedelta(days=60)  # a window further out than this waits this long at most
SWEEP_GRACE = timedelta(seconds=15)  # rows younger than this still have their task on the way
RETRIES = RetrySchedule((30, 120, 600, 1800, 3600))  # the scheduling system down: seconds before attempts 2..6

Entry, Freed, Offer = WaitlistEntry.State, FreedTime.State, WaitlistOffer.State
HOLDING = (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT)


# --- Settings -----------------------------------------------------------------------------------------------------


def waitlist_settings(clinic) -> WaitlistSettings:
    """The clinic's settings, or the defaults (unsaved) when it has none."""
    return WaitlistSettings.objects.filter(clinic=clinic).first() or WaitlistSettings(clinic=clinic)


# --- Joining ------------------------------------------------------------------------------------------------------


def waitlist_worth_offering(*, clinic, service, start, end) -> bool:
    """Whether asking "want me to text you if something opens?" makes sense: the clinic has the waitlist on and
    someone holds a time in the window with a provider who does the service (only a booked time can free up;
    a Sunday nobody works never opens)."""
    if not waitlist_settings(clinic).enabled:
        return False
    return (
        Booking.objects.for_clinic(clinic)
        .active()
        .filter(start__gte=start, start__lt=end, provider__services=service)
        .exists()
    )


def waitlist_propose(
    *,
    conversation,
    service,
    start,
    end,
    label: str,
    day_start=None,
    day_end=None,
    patient_name="",
    language=Booking.Language.ENGLISH,
    now=None,
) -> WaitlistEntry:
    """The assistant asked whether to text the patient if a time opens: remembered until they answer (an earlier
    unanswered question of the conversation lapses). ``language``: the conversation's, for the offer's text."""
    now = now or timezone.now()
    with transaction.atomic():
        WaitlistEntry.objects.filter(conversation=conversation, state=Entry.PROPOSED).update(
            state=Entry.CANCELLED, updated_at=now
        )
        entry = WaitlistEntry(
            clinic=conversation.clinic,
            conversation=conversation,
            patient_phone=conversation.patient_phone,
            patient_name=patient_name[:120],
            language=language if language in Booking.Language.values else Booking.Language.ENGLISH,
            service=service,
            window_start=max(start, now),
            window_end=min(end, now + LONGEST_WAIT),
            day_start=day_start,
            day_end=day_end,
            label=label[:80],
            state=Entry.PROPOSED,
            expires_at=min(end, now + LONGEST_WAIT),
        )
        entry.full_clean(exclude=["conversation"])
        entry.save()
    logger.info("waitlist proposed entry=%s conversation=%s", entry.pk, conversation.pk)
    return entry


def waitlist_proposal(*, conversation, now=None) -> WaitlistEntry | None:
    """The conversation's open "want me to text you?" question, if it was asked lately and is still unanswered."""
    now = now or timezone.now()
    return (
        WaitlistEntry.objects.filter(
            conversation=conversation, state=Entry.PROPOSED, created_at__gte=now - PROPOSAL_LASTS, expires_at__gt=now
        )
        .select_related("service")
        .order_by("-pk")
        .first()
    )


def waitlist_answer(*, entry: WaitlistEntry, join: bool, now=None) -> WaitlistEntry:
    """The patient's answer: yes puts them on the waitlist (their place is the time of the yes), no drops it. An
    earlier waiting entry of theirs for the same service is replaced by this one (its window is the newer wish)."""
    now = now or timezone.now()
    with transaction.atomic():
        if join:
            WaitlistEntry.objects.filter(
                clinic=entry.clinic, patient_phone=entry.patient_phone, service=entry.service, state=Entry.WAITING
            ).exclude(pk=entry.pk).update(state=Entry.CANCELLED, updated_at=now)
        updated = WaitlistEntry.objects.filter(pk=entry.pk, state=Entry.PROPOSED).update(
            state=Entry.WAITING if join else Entry.CANCELLED, joined_at=now if join else None, updated_at=now
        )
    entry.refresh_from_db()
    if updated:
        logger.info("waitlist answered entry=%s joined=%s", entry.pk, join)
    return entry


def waitlist_join(
    *,
    conversation,
    service,
    start,
    end,
    label: str,
    day_start=None,
    day_end=None,
    language=Booking.Language.ENGLISH,
    now=None,
):
    """Ask and answer at once (the LLM engine calls it after the patient's yes)."""
    entry = waitlist_propose(
        conversation=conversation,
        service=service,
        start=start,
        end=end,
        label=label,
        day_start=day_start,
        day_end=day_end,
        patient_name=conversation.patient_name,
        language=language,
        now=now,
    )
    return waitlist_answer(entry=entry, join=True, now=now)


def waitlist_name_set(*, clinic, patient_phone: str, name: str) -> int:
    """The patient gave their name: their open entries book under it."""
    return WaitlistEntry.objects.filter(
        clinic=clinic, patient_phone=patient_phone, state__in=[Entry.PROPOSED, Entry.WAITING]
    ).update(patient_name=name[:120], updated_at=timezone.now())


def entries_cancel(*, entry_ids, now=None) -> int:
    """Staff take patients off the waitlist (their open offers run out by themselves)."""
    return WaitlistEntry.objects.filter(pk__in=list(entry_ids), state__in=[Entry.PROPOSED, Entry.WAITING]).update(
        state=Entry.CANCELLED, updated_at=now or timezone.now()
    )


def waitlist_waiting(*, conversation, now=None) -> WaitlistEntry | None:
    """The conversation's latest waiting entry."""
    now = now or timezone.now()
    return (
        WaitlistEntry.objects.filter(conversation=conversation, state=Entry.WAITING, expires_at__gt=now)
        .order_by("-joined_at")
        .first()
    )


def offer_for_booking(*, booking_id) -> WaitlistOffer | None:
    """The open waitlist offer that holds this booking, if it is one."""
    if not booking_id:
        return None
    return WaitlistOffer.objects.filter(booking_id=booking_id, state=Offer.OFFERED).first()


# --- A time frees up ----------------------------------------------------------------------------------------------


def freed_time_record(*, booking, reason: str, now=None) -> FreedTime | None:
    """A booking let its time go (in the caller's transaction): remember the time for the waitlist and queue its
    offer after commit, when anyone waits for a time then (the sweep queues it again if the task is lost)."""
    now = now or timezone.now()
    if booking.start <= now:
        return None
    waiting = WaitlistEntry.objects.filter(
        clinic_id=booking.clinic_id,
        state=Entry.WAITING,
        expires_at__gt=now,
        window_start__lte=booking.start,
        window_end__gt=booking.start,
    ).filter(Q(provider__isnull=True) | Q(provider_id=booking.provider_id))
    if not waiting.exists():
        return None
    freed = FreedTime.objects.create(
        clinic_id=booking.clinic_id,
        provider_id=booking.provider_id,
        start=booking.start,
        end=booking.end,
        source_booking=booking,
        reason=reason[:20],
    )
    transaction.on_commit(lambda: enqueue(OFFER_TASK, freed.pk))
    logger.info("waitlist freed time recorded freed=%s booking=%s reason=%s", freed.pk, booking.pk, reason)
    return freed


def offer_closed(*, booking, state: str, now=None) -> bool:
    """The booking an offer held was paid (taken), released (declined) or let expire."""
    now = now or timezone.now()
    offer = WaitlistOffer.objects.filter(booking_id=booking.pk, state=Offer.OFFERED).first()
    if offer is None:
        return False
    WaitlistOffer.objects.filter(pk=offer.pk, state=Offer.OFFERED).update(state=state, closed_at=now)
    if state == Offer.TAKEN:
        WaitlistEntry.objects.filter(pk=offer.entry_id).update(state=Entry.BOOKED, updated_at=now)
    logger.info("waitlist offer closed offer=%s state=%s", offer.pk, state)
    return True


def entries_booked(*, booking, now=None) -> int:
    """The patient booked the service (through an offer or not): their open entries for it are done."""
    now = now or timezone.now()
    return WaitlistEntry.objects.filter(
        clinic_id=booking.clinic_id,
        patient_phone=booking.patient_phone,
        service_id=booking.service_id,
        state__in=[Entry.PROPOSED, Entry.WAITING],
    ).update(state=Entry.BOOKED, updated_at=now)


class _ConversationBusy(Exception):
    """The patient's conversation cannot take an offer now (a turn in progress, staff, another booking going)."""


def _candidates(freed: FreedTime, now) -> list[WaitlistEntry]:
    """Waiting entries the freed time fits (window, hours of day, provider, a service the provider does), in order
    of joining."""
    entries = (
        WaitlistEntry.objects.filter(
            clinic_id=freed.clinic_id,
            state=Entry.WAITING,
            expires_at__gt=now,
            window_start__lte=freed.start,
            window_end__gt=freed.start,
            service__active=True,
            service__in=freed.provider.services.all(),
        )
        .filter(Q(provider__isnull=True) | Q(provider_id=freed.provider_id))
        .select_related("service", "clinic")
        .order_by("joined_at", "pk")
    )
    local = timezone.localtime(freed.start, freed.clinic.tz).time()
    return [e for e in entries if (e.day_start or time.min) <= local and (e.day_end is None or local < e.day_end)]


def _open_services(freed: FreedTime, services) -> tuple[set[int], bool]:
    """The ids of ``services`` for which the clinic's scheduling system offers the freed start with its provider
    (only real open times are offered), and whether it could not be read for some of them. Read before any
    transaction is opened: it may be an EMR call."""
    clinic, open_ids, unreadable = freed.clinic, set(), False
    try:
        client = emr_client(clinic=clinic)
    except EmrConfigError:
        logger.warning("waitlist: EMR not configured clinic=%s freed=%s", clinic.pk, freed.pk)
        return open_ids, unreadable
    provider_ref = client.provider_ref(freed.provider)
    day = timezone.localtime(freed.start, clinic.tz).date()
    # The freeing transaction's own invalidation may run after this (on-commit order): the cached day is stale.
    availability_invalidate(clinic_id=clinic.pk)
    for service in services:
        try:
            slots = availability_for_day(client=client, clinic=clinic, service=service, day=day)
        except EmrError:
            logger.warning("waitlist: EMR error clinic=%s freed=%s", clinic.pk, freed.pk, exc_info=True)
            unreadable = True
            continue
        if any(s.start == freed.start and s.provider_ref == provider_ref for s in slots):
            open_ids.add(service.pk)
    return open_ids, unreadable


def _day_start(now, tz) -> datetime:
    return datetime.combine(timezone.localtime(now, tz).date(), time.min, tzinfo=tz)


def _skip_reason(entry: WaitlistEntry, freed: FreedTime, settings_row: WaitlistSettings, now) -> str:
    """Why this patient is not offered this time now ("" when nothing stands in the way)."""
    clinic = freed.clinic
    if is_opted_out(clinic=clinic, phone=entry.patient_phone):
        WaitlistEntry.objects.filter(pk=entry.pk).update(state=Entry.CANCELLED, updated_at=now)
        return "opted out"
    if next_send_time(now, phone=entry.patient_phone, clinic=clinic) > now:
        return "quiet hours"
    offers = WaitlistOffer.objects.filter(clinic=clinic, patient_phone=entry.patient_phone)
    if offers.filter(state=Offer.OFFERED).exists():
        return "holds another offer"
    if offers.filter(provider_id=freed.provider_id, start=freed.start).exists():
        return "offered this time before"
    if offers.filter(offered_at__gte=_day_start(now, clinic.tz)).count() >= settings_row.max_offers_per_day:
        return "daily limit"
    return ""


def freed_time_offer(*, freed_id: int, now=None) -> WaitlistOffer | None:
    """Offer a freed time to the first waiting patient who can take it, holding it for them; then text them.
    Safe to run twice or concurrently: the second run finds the time no longer pending (or held) and does nothing."""
    now = now or timezone.now()
    freed = FreedTime.objects.select_related("clinic", "provider").get(pk=freed_id)
    if freed.state != Freed.PENDING:
        return None
    candidates = _candidates(freed, now) if freed.start > now else []
    services = {c.service_id: c.service for c in candidates}.values()
    open_ids, unreadable = _open_services(freed, services) if candidates else (set(), False)
    offer = None
    with transaction.atomic():
        # One clinic's offers are made one at a time: a patient never gets two at once from two freed times.
        settings_row, _ = WaitlistSettings.objects.get_or_create(clinic=freed.clinic)
        settings_row = WaitlistSettings.objects.select_for_update().get(pk=settings_row.pk)
        freed = FreedTime.objects.select_for_update().select_related("clinic", "provider").get(pk=freed_id)
        if freed.state != Freed.PENDING:
            return None
        outcome = Freed.UNMATCHED
        for candidate in candidates:
            entry = WaitlistEntry.objects.select_for_update().select_related("service").get(pk=candidate.pk)
            if entry.state != Entry.WAITING:
                continue
            reason = _skip_reason(entry, freed, settings_row, now)
            if reason or entry.service_id not in open_ids:
                logger.info("waitlist skipped entry=%s freed=%s reason=%s", entry.pk, freed.pk, reason or "not open")
                continue
            try:
                offer = _hold_for(entry, freed, settings_row, now)
            except SlotUnavailable:
                outcome = Freed.GONE  # someone else holds it now
                break
            except (AlreadyBooked, _ConversationBusy) as exc:
                logger.info("waitlist skipped entry=%s freed=%s reason=%s", entry.pk, freed.pk, type(exc).__name__)
                continue
            outcome = Freed.OFFERED
            break
        if outcome == Freed.UNMATCHED and unreadable and freed.attempts + 1 < RETRIES.max_attempts:
            _retry_later(freed, now)
            return None
        FreedTime.objects.filter(pk=freed.pk).update(state=outcome, processed_at=now)
    logger.info("waitlist freed time processed freed=%s outcome=%s", freed.pk, outcome)
    if offer is not None:
        offer_send(offer_id=offer.pk, now=now)
    return offer


def _retry_later(freed: FreedTime, now) -> None:
    """The scheduling system could not be read: try again later (backoff), and tell staff (once an hour)."""
    attempts = freed.attempts + 1
    FreedTime.objects.filter(pk=freed.pk).update(attempts=attempts, next_attempt_at=RETRIES.next_at(now, attempts))
    staff_alert(
        clinic=freed.clinic,
        kind=StaffAlert.Kind.EMR_ERROR,
        text=f"Freed time #{freed.pk} could not be offered to the waitlist: the EMR did not answer. It is retried; "
        "check the EMR connection (Integrations, test connection).",
        obj=freed.clinic,
        dedupe_key=f"waitlist-emr:{freed.clinic_id}:{now:%Y%m%d%H}",
    )
    logger.warning("waitlist: freed time retried later freed=%s attempts=%s", freed.pk, attempts)


def _hold_for(entry, freed, settings_row, now) -> WaitlistOffer:
    """Hold the freed time for ``entry``'s patient and hand the offer to their conversation, or roll both back."""
    with transaction.atomic():
        booking = booking_hold(
            clinic=freed.clinic,
            service=entry.service,
            provider=freed.provider,
            start=freed.start,
            patient_phone=entry.patient_phone,
            patient_name=entry.patient_name,
            conversation=entry.conversation,
            language=entry.language,
            hold_minutes=settings_row.hold_minutes,
            now=now,
        )
        offer = WaitlistOffer.objects.create(
            clinic=freed.clinic,
            entry=entry,
            freed=freed,
            booking=booking,
            patient_phone=entry.patient_phone,
            provider=freed.provider,
            start=freed.start,
            offered_at=now,
            expires_at=booking.hold_expires_at,
        )
        link = bool(entry.patient_name) and deposit_amount(booking=booking) > 0
        if not all(publish("waitlist.offer_made", offer=offer, link=link)):
            raise _ConversationBusy(f"entry {entry.pk}")
    logger.info("waitlist offer made offer=%s entry=%s booking=%s", offer.pk, entry.pk, booking.pk)
    return offer


def offer_text(offer: WaitlistOffer, payment=None) -> str:
    clinic, booking = offer.clinic, offer.booking
    tz = clinic.tz
    if booking_in_spanish(booking):
        return _offer_text_es(offer, payment)
    opening = (
        f"Good news from {clinic.name}: a {booking.service.name} time opened up, {when_label(offer.start, tz)} with "
        f"{offer.provider.name}. It's held for you until {time_label(offer.expires_at, tz)}."
    )
    if payment is not None and payment.link_url:
        return f"{opening} To book it, pay the {payment.amount_text} deposit here: {payment.link_url} (or reply NO)"
    if not offer.entry.patient_name:
        return f"{opening} Want it? Reply YES with the name to book under, or NO to pass."
    return f"{opening} Want it? Reply YES to book it, or NO to pass."


def _offer_text_es(offer: WaitlistOffer, payment=None) -> str:
    """The offer in Spanish (the held booking's language, from the entry): formal, GSM-7 safe (medspa/spanish.py);
    the patient answers SI / NO, which the conversation reads in Spanish."""
    clinic, booking, tz = offer.clinic, offer.booking, offer.clinic.tz
    until = timezone.localtime(offer.expires_at, tz)
    article = "la" if until.hour % 12 == 1 else "las"  # "hasta la 1:15 PM", "hasta las 2:15 PM"
    opening = (
        f"Buenas noticias de {clinic.name}: se abrió un horario de {booking.service.name}, "
        f"{when_es(offer.start, tz)} con {offer.provider.name}. Se lo apartamos hasta {article} "
        f"{time_label(offer.expires_at, tz)}."
    )
    if payment is not None and payment.link_url:
        text = f"{opening} Para reservarlo, pague el depósito de {payment.amount_text} aquí: {payment.link_url} (o "
        text += "responda NO)"
    elif not offer.entry.patient_name:
        text = f"{opening} Le interesa? Responda SI y el nombre para la cita, o NO si no lo quiere."
    else:
        text = f"{opening} Le interesa? Responda SI para reservarlo, o NO si no lo quiere."
    return gsm7(text)


def offer_send(*, offer_id: int, now=None) -> list:
    """Text an offer once: with the deposit link (created outside any transaction) when the patient's name is known
    and a deposit is due; without it (reply YES) otherwise, or when the payment provider is down (staff hear)."""
    now = now or timezone.now()
    offer = WaitlistOffer.objects.select_related(
        "clinic", "entry", "provider", "booking", "booking__service", "entry__conversation"
    ).get(pk=offer_id)
    if offer.state != Offer.OFFERED or offer.texted_at is not None:
        return []
    booking = offer.booking
    if booking.status not in HOLDING or (booking.hold_expires_at and booking.hold_expires_at <= now):
        return []
    payment = None
    if offer.entry.patient_name and deposit_amount(booking=booking) > 0:
        try:
            payment = deposit_request(booking_id=booking.pk, now=now, expires_at=offer.expires_at)
        except (PaymentError, PaymentConfigError, BookingStateError):
            logger.warning("waitlist: deposit link failed offer=%s booking=%s", offer.pk, booking.pk, exc_info=True)
            staff_alert(
                clinic=offer.clinic,
                kind=StaffAlert.Kind.PAYMENT,
                text=f"Waitlist offer #{offer.pk}: the deposit link could not be created; the patient was asked to "
                "reply YES instead. Check the payment settings.",
                obj=offer,
            )
    with transaction.atomic():
        claimed = WaitlistOffer.objects.filter(pk=offer.pk, state=Offer.OFFERED, texted_at__isnull=True).update(
            texted_at=now
        )
        if not claimed:
            return []
        messages = message_queue(
            clinic=offer.clinic,
            to=offer.patient_phone,
            body=offer_text(offer, payment),
            kind=Message.Kind.NOTICE,
            idempotency_key=f"waitlist-offer-{offer.pk}",
            conversation=offer.entry.conversation,
            now=now,
        )
    logger.info("waitlist offer texted offer=%s messages=%s", offer.pk, [m.pk for m in messages])
    return messages


# --- The sweep ----------------------------------------------------------------------------------------------------


def waitlist_sweep(*, now=None) -> dict:
    """What a lost task left (beat): freed times still pending, offers made but not texted; and entries whose
    window passed expire."""
    now = now or timezone.now()
    done = {"freed": [], "texted": [], "expired": 0}
    pending = (
        FreedTime.objects.filter(state=Freed.PENDING)
        .filter(Q(next_attempt_at__isnull=True, created_at__lte=now - SWEEP_GRACE) | Q(next_attempt_at__lte=now))
        .order_by("pk")
    )
    for freed_id in list(pending.values_list("pk", flat=True)[:50]):
        freed_time_offer(freed_id=freed_id, now=now)
        done["freed"].append(freed_id)
    unsent = WaitlistOffer.objects.filter(
        state=Offer.OFFERED, texted_at__isnull=True, offered_at__lte=now - SWEEP_GRACE, expires_at__gt=now
    )
    for offer_id in list(unsent.values_list("pk", flat=True)[:50]):
        if offer_send(offer_id=offer_id, now=now):
            done["texted"].append(offer_id)
    done["expired"] = WaitlistEntry.objects.filter(
        state__in=[Entry.PROPOSED, Entry.WAITING], expires_at__lte=now
    ).update(state=Entry.EXPIRED, updated_at=now)
    return done
