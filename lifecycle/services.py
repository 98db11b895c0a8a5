"""Texts after a booking, as rows: planned when a booking is confirmed, moved or ended, cancelled with it, and
released by beat when their time comes (``texts_due`` -> ``text_send``).

Every text keeps the product's rules: it goes through ``messaging.services.message_queue`` (recorded before it is
sent, STOP checked again at send time, quiet hours), under the idempotency key ``lifecycle-<id>`` and after a
conditional claim of its row, so it is never sent twice; its ``send_at`` is already inside the recipient's sending
window (``messaging.compliance.next_send_time``), so what staff see is when it really goes.
"""

import logging
import re
import unicodedata
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bookings.models import ACTIVE_STATUSES, Booking
from bookings.services import booking_emr_refresh, booking_in_spanish, booking_patient_confirm
from emr.base import EmrConfigError, EmrError
from emr.models import Provider
from emr.services import emr_client
from medspa.alerts import staff_alert
from medspa.clock import now as clock_now
from medspa.events import publish
from medspa.models import StaffAlert
from medspa.queueing import enqueue, queued_ids
from medspa.spanish import gsm7
from medspa.timetext import when_es, zone_label
from messaging.compliance import next_send_time
from messaging.models import Message
from messaging.services import message_queue
from payments.services import payment_keep

from .models import SPANISH_STOP_LINE, SPANISH_TEMPLATES, LifecycleSettings, ScheduledText

logger = logging.getLogger(__name__)

SEND_TASK = "lifecycle.send_text"
CLAIM_LEASE = timedelta(minutes=5)  # a row claimed this long ago by a worker that died is taken again
REBOOK_SEARCH_DAYS = 14
Kind, State = ScheduledText.Kind, ScheduledText.State
BEFORE_VISIT = (Kind.CONFIRMATION, Kind.REMINDER)


def settings_for(clinic) -> LifecycleSettings:
    """The clinic's settings, or the defaults (unsaved) when staff never changed them."""
    return LifecycleSettings.objects.filter(clinic=clinic).first() or LifecycleSettings(clinic=clinic)


def _local(value, clinic) -> datetime:
    return timezone.localtime(value, clinic.tz)


def _morning_after(moment, clinic, settings) -> datetime:
    """The clinic-local morning (``settings.morning_time``) of the day after ``moment``: on local dates, so DST
    does not move it."""
    day = _local(moment, clinic).date() + timedelta(days=1)
    return datetime.combine(day, settings.morning_time, tzinfo=clinic.tz)


def _wall_clock_before(moment, hours, clinic) -> datetime:
    """``hours`` before ``moment`` on the clinic's wall clock: 48 h before Monday 9:00 is Saturday 9:00, also
    across a DST change (the patient hears at the time of day they booked)."""
    local = _local(moment, clinic).replace(tzinfo=None) - timedelta(hours=hours)
    return local.replace(tzinfo=clinic.tz)


def _in_window(moment, booking) -> datetime:
    return next_send_time(moment, phone=booking.patient_phone, clinic=booking.clinic)


# --- Planning ----------------------------------------------------------------------------------------------------


def _plan_before_visit(booking, settings, now, *, planned: dict) -> dict:
    """{kind: (due_at, why)} for the confirmation request and the same-day reminder of a confirmed booking, or
    {kind: (None, why not)} when it will not be sent. ``planned``: {kind: (due_at, why)} of the rows it already
    has (planning again never pushes a confirmation request whose lead time has passed to another morning)."""
    plans = {}
    reminder_due = booking.start - timedelta(minutes=settings.reminder_lead_minutes)
    if settings.reminder_on:
        plans[Kind.REMINDER] = (reminder_due, f"{settings.reminder_lead_minutes} min before booking #{booking.pk}")
    else:
        plans[Kind.REMINDER] = (None, "same-day reminders are off")
    if not settings.confirmation_on:
        plans[Kind.CONFIRMATION] = (None, "confirmation requests are off")
        return plans
    due = _wall_clock_before(booking.start, settings.confirmation_lead_hours, booking.clinic)
    why = f"{settings.confirmation_lead_hours} h before booking #{booking.pk}"
    if due <= now and Kind.CONFIRMATION in planned:  # planned already: it keeps its time
        due, why = planned[Kind.CONFIRMATION]
    elif due <= now:  # booked inside the lead time: the next morning, if that is still before the reminder
        due = _morning_after(now, booking.clinic, settings)
        why = f"booking #{booking.pk} made inside {settings.confirmation_lead_hours} h: the next morning"
    latest = reminder_due if settings.reminder_on else booking.start - timedelta(hours=1)
    if _in_window(due, booking) >= latest:
        plans[Kind.CONFIRMATION] = (None, "too close to the visit: the reminder covers it")
    else:
        plans[Kind.CONFIRMATION] = (due, why)
    return plans


def _put(booking, kind, due, why, now) -> ScheduledText | None:
    """Create the (booking, kind) text, or move it if still pending; a text already sent or cancelled stays."""
    row = ScheduledText.objects.select_for_update().filter(booking=booking, kind=kind).first()
    if due is None:
        if row is not None and row.state == State.PENDING:
            _close(ScheduledText.objects.filter(pk=row.pk), State.CANCELLED, why, now)
        return None
    send_at = _in_window(due, booking)
    if row is None:
        return ScheduledText.objects.create(
            clinic=booking.clinic,
            booking=booking,
            patient_phone=booking.patient_phone,
            kind=kind,
            due_at=due,
            send_at=send_at,
            why=why[:300],
        )
    if row.state == State.PENDING and (row.due_at, row.send_at) != (due, send_at):
        row.due_at, row.send_at, row.why = due, send_at, why[:300]
        row.save(update_fields=["due_at", "send_at", "why", "updated_at"])
    return row


def _close(rows, state, outcome, now) -> int:
    return rows.update(state=state, outcome=outcome[:300], updated_at=now)


def texts_plan(*, booking, now=None) -> list[ScheduledText]:
    """A confirmed booking's confirmation request and reminder (created, or moved with the booking's time)."""
    now = now or clock_now()
    if booking.status != Booking.Status.CONFIRMED or booking.start <= now:
        return []
    settings = settings_for(booking.clinic)
    with transaction.atomic():
        rows = ScheduledText.objects.filter(booking=booking).values_list("kind", "due_at", "why")
        planned = {kind: (due, why) for kind, due, why in rows}
        plans = _plan_before_visit(booking, settings, now, planned=planned)
        rows = [_put(booking, kind, due, why, now) for kind, (due, why) in plans.items()]
    return [r for r in rows if r is not None]


def texts_cancel(*, booking, reason: str, kinds=None, now=None) -> int:
    """The booking's pending texts will not be sent (in the caller's transaction)."""
    now = now or clock_now()
    rows = ScheduledText.objects.filter(booking=booking, state=State.PENDING)
    if kinds:
        rows = rows.filter(kind__in=kinds)
    cancelled = _close(rows, State.CANCELLED, reason, now)
    if cancelled:
        logger.info("scheduled texts cancelled booking=%s count=%s", booking.pk, cancelled)
    return cancelled


def texts_move(*, old, new, now=None) -> None:
    """A rescheduled booking: its pending texts follow it to the new booking and its time."""
    now = now or clock_now()
    new.refresh_from_db()
    if new.status != Booking.Status.CONFIRMED:  # a manual EMR's new time waits for staff: planned once confirmed
        texts_cancel(booking=old, reason=f"moved to booking #{new.pk}", now=now)
        return
    for row in ScheduledText.objects.filter(booking=old, state=State.PENDING):
        if ScheduledText.objects.filter(booking=new, kind=row.kind).exists():
            _close(ScheduledText.objects.filter(pk=row.pk), State.CANCELLED, f"moved to booking #{new.pk}", now)
        else:
            ScheduledText.objects.filter(pk=row.pk).update(booking=new, updated_at=now)
    texts_plan(booking=new, now=now)


def _plan_after_visit(booking, now) -> None:
    """A completed visit: the review request and the rebooking text; a no-show: the kind text the next morning."""
    settings = settings_for(booking.clinic)
    if booking.status == Booking.Status.COMPLETED:
        if settings.review_on and settings.review_url:
            due = max(booking.end + timedelta(hours=settings.review_delay_hours), now)
            _put(booking, Kind.REVIEW, due, f"{settings.review_delay_hours} h after visit #{booking.pk}", now)
        days = booking.service.rebook_after_days
        if settings.rebook_on and days:
            local_day = _local(booking.start, booking.clinic).date() + timedelta(days=days)
            due = datetime.combine(local_day, settings.morning_time, tzinfo=booking.clinic.tz)
            why = f"{booking.service.name} rebook after {days} days, from visit #{booking.pk}"
            _put(booking, Kind.REBOOK, due, why, now)
    elif booking.status == Booking.Status.NO_SHOW and settings.no_show_text_on:
        due = _morning_after(booking.start, booking.clinic, settings)
        _put(booking, Kind.NO_SHOW, max(due, now), f"no-show at booking #{booking.pk}: the next morning", now)


def booking_followed(*, booking, now=None) -> None:
    """What a booking's change means for its texts (``bookings.booking_changed``, in the publisher's transaction)."""
    now = now or clock_now()
    if booking.status == Booking.Status.CONFIRMED:
        texts_plan(booking=booking, now=now)
    elif booking.status in (Booking.Status.COMPLETED, Booking.Status.NO_SHOW):
        texts_cancel(booking=booking, reason=f"visit marked {booking.get_status_display()}", kinds=BEFORE_VISIT)
        with transaction.atomic():
            _plan_after_visit(booking, now)
        if booking.status == Booking.Status.NO_SHOW and settings_for(booking.clinic).no_show_keeps_deposit:
            payment_keep(booking=booking, reason="No-show: the deposit is kept per the clinic's deposit policy")
    elif booking.status not in ACTIVE_STATUSES:
        texts_cancel(booking=booking, reason=f"booking {booking.get_status_display().lower()}")


# --- Sending -------------------------------------------------------------------------------------------------------


def texts_due(*, now=None) -> list[int]:
    """Rows whose send time came (or whose worker died mid-send), for the sweep to queue."""
    now = now or clock_now()
    return list(
        ScheduledText.objects.filter(
            Q(state=State.PENDING, send_at__lte=now) | Q(state=State.SENDING, claimed_at__lte=now - CLAIM_LEASE)
        ).values_list("pk", flat=True)[:500]
    )


def texts_sweep(*, now=None) -> list[int]:
    """Beat: queue each due text's send, unless its task is still waiting in the queue (Redis lost: all again)."""
    ids = texts_due(now=now)
    waiting = queued_ids(SEND_TASK, ids)
    queued = [pk for pk in ids if pk not in waiting]
    for pk in queued:
        enqueue(SEND_TASK, pk)
    return queued


def _claim(pk, now) -> bool:
    return bool(
        ScheduledText.objects.filter(
            Q(state=State.PENDING) | Q(state=State.SENDING, claimed_at__lte=now - CLAIM_LEASE), pk=pk
        ).update(state=State.SENDING, claimed_at=now, updated_at=now)
    )


def _skip(row, outcome, now) -> str:
    _close(ScheduledText.objects.filter(pk=row.pk), State.SKIPPED, outcome, now)
    logger.info("scheduled text not sent text=%s kind=%s", row.pk, row.kind)  # the reason is on the row
    return "skipped"


def text_send(*, text_id: int, now=None) -> str:
    """Send one due text, once: claim it, check it still makes sense (the booking in the EMR, the patient's next
    booking, consent), render it and hand it to messaging. Returns sent, skipped or claimed (someone else has it)."""
    now = now or clock_now()
    if not _claim(text_id, now):
        return "claimed"
    row = ScheduledText.objects.select_related("clinic", "booking__service", "booking__provider").get(pk=text_id)
    booking = row.booking
    handed = Message.objects.filter(idempotency_key=f"lifecycle-{row.pk}#0").first()
    if handed is not None:  # a worker died after handing it to messaging: finish the row, send nothing again
        ScheduledText.objects.filter(pk=row.pk).update(state=State.SENT, message=handed, sent_at=now, updated_at=now)
        return "sent"
    emr_note = ""
    if row.kind in BEFORE_VISIT:
        try:
            if booking_emr_refresh(booking_id=booking.pk, now=now) == "moved":
                # Staff moved it in the EMR: this text is planned again for the new time (now, or later).
                ScheduledText.objects.filter(pk=row.pk).update(state=State.PENDING, claimed_at=None, updated_at=now)
                booking.refresh_from_db()
                texts_plan(booking=booking, now=now)
                return "moved"
        except (EmrError, EmrConfigError) as exc:
            emr_note = "; the EMR could not be read (sent anyway, staff told)"
            _emr_unreadable(booking, exc, now)
        booking.refresh_from_db()
        if booking.status != Booking.Status.CONFIRMED or booking.start <= now:
            return _skip(row, f"booking is {booking.get_status_display().lower()}", now)
    body, extra = _render(row, booking, now)
    if body is None:
        return _skip(row, extra, now)
    messages = message_queue(
        clinic=row.clinic,
        to=row.patient_phone,
        body=body,
        kind=Message.Kind.NOTICE,
        conversation=booking.conversation,
        idempotency_key=f"lifecycle-{row.pk}",
        now=now,
    )
    first = messages[0] if messages else None
    if first is not None and first.status == Message.Status.DROPPED:
        ScheduledText.objects.filter(pk=row.pk).update(message=first)
        return _skip(row, "the patient opted out (STOP)", now)
    ScheduledText.objects.filter(pk=row.pk).update(
        state=State.SENT, message=first, sent_at=now, outcome=f"handed to messaging{emr_note}"[:300], updated_at=now
    )
    if extra:
        publish("lifecycle.times_offered", booking=booking, slots=extra)
    logger.info("scheduled text sent text=%s kind=%s message=%s", row.pk, row.kind, first.pk if first else None)
    return "sent"


def _emr_unreadable(booking, exc, now) -> None:
    logger.warning("lifecycle: EMR check failed booking=%s error=%s", booking.pk, type(exc).__name__)
    staff_alert(
        clinic=booking.clinic,
        kind=StaffAlert.Kind.EMR_ERROR,
        text=f"Booking #{booking.pk}: the EMR could not be read before its text ({type(exc).__name__}); it was sent "
        "anyway. Check the appointment in the EMR and the EMR connection.",
        obj=booking,
        dedupe_key=f"lifecycle-emr:{booking.pk}:{now:%Y%m%d}",
    )


def _when(value, clinic) -> tuple[str, str]:
    local = _local(value, clinic)
    return local.strftime("%a %b %-d at %-I:%M %p"), zone_label(value, clinic.tz)


def _when_es(value, clinic, *, zone=True) -> str:
    """ "vie 27 nov, 11:00 AM ET" (``when_es``), or without its zone when a list of times names it once."""
    text = when_es(value, clinic.tz)
    return text if zone else text.removesuffix(f" {zone_label(value, clinic.tz)}")


def _template(settings, name: str, spanish: bool) -> str:
    """The clinic's template (English), or the product's Spanish one with the clinic's opt-out line kept: an
    English template that tells how to opt out (STOP) gets the Spanish ALTO line (docs/COMPLIANCE.md)."""
    english = getattr(settings, name)
    if not spanish:
        return english
    if re.search(r"\bSTOP\b", english):  # the keyword as texts write it; "stop by" is not an opt-out line
        return f"{SPANISH_TEMPLATES[name]} {SPANISH_STOP_LINE}"
    return SPANISH_TEMPLATES[name]


def _values(booking, clinic, settings, spanish: bool) -> dict:
    when, zone = _when(booking.start, clinic)
    local = _local(booking.start, clinic)
    values = {
        "clinic": clinic.name,
        "service": booking.service.name,
        "provider": booking.provider.name,
        "when": when,
        "zone": zone,
        "time": local.strftime("%-I:%M %p"),
        "address": ", ".join(p for p in (clinic.street, clinic.city) if p) or "at the clinic",
        "parking": settings.parking_line,
        "review_url": settings.review_url,
    }
    if spanish:
        values["when"] = _when_es(booking.start, clinic)
        values["at_time"] = f"{'a la' if local.hour % 12 == 1 else 'a las'} {values['time']}"  # a la 1:00, a las 2:00
        values["address"] = ", ".join(p for p in (clinic.street, clinic.city) if p) or "en la clínica"
    return values


def _render(row, booking, now) -> tuple[str | None, object]:
    """(body, slots offered) or (None, why not). In Spanish for a booking made in Spanish."""
    clinic, settings = row.clinic, settings_for(row.clinic)
    spanish = booking_in_spanish(booking)
    values = _values(booking, clinic, settings, spanish)

    def fill(name):
        text = _template(settings, name, spanish).format(**values)
        return gsm7(text) if spanish else text

    if row.kind == Kind.CONFIRMATION:
        return fill("confirmation_template"), None
    if row.kind == Kind.REMINDER:
        return re.sub(r"\s+", " ", fill("reminder_template")).strip(), None
    if row.kind == Kind.NO_SHOW:
        if _has_upcoming(booking, now, same_service=False):
            return None, "the patient has booked again"
        return fill("no_show_template"), None
    if row.kind == Kind.REVIEW:
        if not settings.review_url:
            return None, "no review link"
        if any(publish("lifecycle.review_blocked", booking=booking)):
            return None, "the conversation was handed to staff (complaint or urgent symptom)"
        return fill("review_template"), None
    if row.kind == Kind.REBOOK:
        if _has_upcoming(booking, now, same_service=True):
            return None, f"the patient already has an upcoming {booking.service.name}"
        if not any(publish("lifecycle.consent_asked", clinic=clinic, phone=row.patient_phone)):
            return None, "no written consent to texts about treatments due (docs/COMPLIANCE.md)"
        slots = _soonest(booking, now)
        if not slots:
            return None, "no open times in the next two weeks"
        starts = [datetime.fromisoformat(s["start"]) for s in slots]
        if spanish:
            listed = "; ".join(f"{i}) {_when_es(start, clinic, zone=False)}" for i, start in enumerate(starts, 1))
        else:
            listed = "; ".join(f"{i}) {_when(start, clinic)[0]}" for i, start in enumerate(starts, 1))
        values["times"] = f"{listed} ({_when(starts[0], clinic)[1]})"
        return fill("rebook_template"), slots
    return None, f"unknown kind {row.kind}"


def _has_upcoming(booking, now, *, same_service) -> bool:
    rows = Booking.objects.filter(
        clinic=booking.clinic, patient_phone=booking.patient_phone, status__in=ACTIVE_STATUSES, start__gt=now
    )
    return (rows.filter(service=booking.service) if same_service else rows).exists()


def _soonest(booking, now) -> list[dict]:
    """The soonest three open times for the visit's service, as the conversation keeps offered times."""
    try:
        client = emr_client(clinic=booking.clinic)
        slots = client.availability(
            service_ref=client.service_ref(booking.service), start=now, end=now + timedelta(days=REBOOK_SEARCH_DAYS)
        )
    except (EmrError, EmrConfigError):
        logger.warning("lifecycle: open times unreadable booking=%s", booking.pk)
        return []
    providers = {client.provider_ref(p): p for p in Provider.objects.for_clinic(booking.clinic).filter(active=True)}
    chosen, seen = [], set()
    for slot in slots:
        provider = providers.get(slot.provider_ref)
        if provider is None or slot.start in seen:
            continue
        seen.add(slot.start)
        chosen.append(
            {
                "start": slot.start.isoformat(),
                "end": slot.end.isoformat(),
                "provider_id": provider.pk,
                "provider": provider.name,
            }
        )
        if len(chosen) == 3:
            break
    return chosen


# --- The EMR's side ---------------------------------------------------------------------------------------------


def emr_sync(*, now=None) -> dict:
    """Beat: the next days' confirmed bookings checked against their EMR (cancelled or moved there by staff). An
    EMR that cannot be read is a staff alert (once per clinic per hour); the bookings stay as they are. The last
    day's visits are read too (a no-show or a fulfilled visit recorded there); a coming booking without its texts
    (confirmed before they existed) gets them planned."""
    now = now or clock_now()
    counts: dict[str, int] = {}
    longest = max(
        [LifecycleSettings().emr_sync_days, *LifecycleSettings.objects.values_list("emr_sync_days", flat=True)]
    )
    horizon = now + timedelta(days=longest)
    bookings = (
        Booking.objects.filter(status=Booking.Status.CONFIRMED, start__gt=now - timedelta(days=1), start__lte=horizon)
        .select_related("clinic")
        .order_by("clinic_id", "start")
    )
    clients = {}
    for booking in bookings:
        settings = settings_for(booking.clinic)
        if booking.start > now + timedelta(days=settings.emr_sync_days):
            continue
        try:
            if booking.clinic_id not in clients:
                clients[booking.clinic_id] = emr_client(clinic=booking.clinic)
            outcome = booking_emr_refresh(booking_id=booking.pk, client=clients[booking.clinic_id], now=now)
        except (EmrError, EmrConfigError) as exc:
            outcome = "failed"
            logger.warning("lifecycle: EMR sync failed booking=%s error=%s", booking.pk, type(exc).__name__)
            staff_alert(
                clinic=booking.clinic,
                kind=StaffAlert.Kind.EMR_ERROR,
                text=f"The EMR could not be read to check the coming bookings ({type(exc).__name__}); changes made "
                "there (cancellations, moves) are not seen here. Check the EMR connection.",
                obj=booking.clinic,
                dedupe_key=f"lifecycle-sync:{booking.clinic_id}:{now:%Y%m%d%H}",
            )
        if outcome in ("unchanged", "not_read", "failed"):
            booking.refresh_from_db()
            texts_plan(booking=booking, now=now)  # nothing changes for a booking that has its texts
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts


# --- Replies to a confirmation request or reminder (the conversation routes them here) ---------------------------

# Whole replies, lower case, accents and punctuation dropped ("Sí." -> "si"); English and Spanish both (the
# Spanish texts ask for the same C and R, and a patient may answer in words).
CONFIRM_WORDS = {"c", "y", "yes", "yep", "yeah", "confirm", "confirmed", "ok", "okay"} | {
    "si",
    "confirmo",
    "confirmar",
    "confirmado",
    "confirmada",
    "si confirmo",
    "confirmo la cita",
    "confirmo mi cita",
    "claro",
    "de acuerdo",
}
RESCHEDULE_WORDS = {"r", "reschedule", "resched", "move it", "change it"} | {
    "cambiar",
    "cambiarla",
    "cambiar cita",
    "cambiar la cita",
    "cambiar mi cita",
    "reprogramar",
    "reprogramarla",
    "quiero cambiarla",
    "quiero cambiar la cita",
    "quiero cambiar mi cita",
}
CANCEL_PATTERN = re.compile(r"\bcancel(l?ed|ling)?\b|\bcancel(ar|arla|o)\b")


def _folded(text: str) -> str:
    """Lower case without accents ("Sí" -> "si"), as the Spanish words above are written."""
    decomposed = unicodedata.normalize("NFKD", (text or "").lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def reply_keyword(text: str) -> str | None:
    """What a reply to a confirmation request or reminder asks: "confirm", "reschedule", "cancel", or None
    (anything else: the assistant answers, with the booking as context), in English or Spanish ("confirmo", "sí",
    "cambiar", "cancelar mi cita"). A whole-message CANCEL or CANCELAR never gets here: compliance takes it as an
    opt-out (flagged for staff), as carriers do."""
    words = re.sub(r"[^\w\s]", " ", _folded(text)).split()
    normal = " ".join(words)
    if normal in CONFIRM_WORDS:
        return "confirm"
    if normal in RESCHEDULE_WORDS:
        return "reschedule"
    if CANCEL_PATTERN.search(normal) and len(words) <= 6:
        return "cancel"
    return None


def reply_context(*, clinic, phone: str, after_message_id: int = 0, now=None) -> ScheduledText | None:
    """The confirmation request or reminder a text from ``phone`` answers: the latest one sent (after the
    conversation's last reply, ``after_message_id``) about a confirmed booking that has not started."""
    now = now or clock_now()
    return (
        ScheduledText.objects.filter(
            clinic=clinic,
            patient_phone=phone,
            kind__in=BEFORE_VISIT,
            state=State.SENT,
            message_id__gt=after_message_id,
            booking__status=Booking.Status.CONFIRMED,
            booking__start__gt=now,
        )
        .select_related("booking__service", "booking__provider")
        .order_by("-sent_at", "-pk")
        .first()
    )


def reply_confirm(*, text: ScheduledText, now=None) -> str:
    """C / yes / confirm: the booking is patient-confirmed (staff see it); the reply to send."""
    booking = booking_patient_confirm(booking_id=text.booking_id, now=now) or text.booking
    if booking_in_spanish(booking):
        when = _when_es(booking.start, booking.clinic)
        return gsm7(f"Gracias, su cita está confirmada: {booking.service.name} el {when}. Lo esperamos.")
    when, zone = _when(booking.start, booking.clinic)
    return f"Thanks, you're confirmed: {booking.service.name} on {when} ({zone}). See you then!"


def texts_for_phone(*, clinic, phone: str):
    """The automated texts planned or sent to a patient, newest first (the conversation's admin)."""
    return ScheduledText.objects.filter(clinic=clinic, patient_phone=phone).order_by("-send_at")
