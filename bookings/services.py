"""Booking rules: hold a time (never twice), attach a deposit, confirm (write the EMR appointment exactly once, or
hand a manual EMR's booking to staff), cancel per the clinic's policy, expire holds, and tell the patient."""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from emr.availability import availability_invalidate
from emr.base import MANUAL, WRITE, AppointmentRequest, EmrError, PatientInfo, Slot, SlotTakenError
from emr.models import Provider
from emr.services import emr_client
from medspa.alerts import staff_alert, staff_alerts_resolve_for
from medspa.audit import audit_record
from medspa.clock import now as clock_now
from medspa.events import publish
from medspa.models import AuditEvent, StaffAlert, format_cents
from medspa.spanish import gsm7
from medspa.timetext import when_es, when_label
from messaging.services import message_queue

from .models import ACTIVE_STATUSES, Booking

ACTIVE = set(ACTIVE_STATUSES)

logger = logging.getLogger(__name__)

HOLD_MINUTES = 15


class SlotUnavailable(Exception):
    """The time overlaps another active booking of that provider, or the EMR no longer offers it."""


class BookingStateError(Exception):
    """The booking is not in a state that allows this step."""


class AlreadyBooked(Exception):
    """The patient already has an active booking of the same service, or one at an overlapping time: a second one
    needs their explicit yes (``allow_another``), and moving it is a reschedule (``replacing``)."""

    def __init__(self, booking):
        super().__init__(f"patient already has booking {booking.pk}")
        self.booking = booking


class CancellationTooLate(Exception):
    """The patient asked to cancel inside the clinic's notice window: staff decide (and about the deposit)."""


def _ensure_free(*, provider_id, start, end, exclude_pk=None) -> None:
    """Inside a transaction: lock the provider's row (serialising holds on SQLite and elsewhere) and raise
    SlotUnavailable when an active booking of theirs overlaps. PostgreSQL's exclusion constraint backs this up."""
    Provider.objects.select_for_update().filter(pk=provider_id).first()
    overlapping = Booking.objects.overlapping(provider=provider_id, start=start, end=end)
    if exclude_pk is not None:
        overlapping = overlapping.exclude(pk=exclude_pk)
    if overlapping.exists():
        raise SlotUnavailable(f"provider {provider_id} is busy then")


def _ensure_not_doubled(booking, *, replacing, allow_another, now) -> None:
    conflicts = Booking.objects.patients_conflicting(
        clinic=booking.clinic,
        patient_phone=booking.patient_phone,
        service=booking.service,
        start=booking.start,
        end=booking.end,
        now=now,
    )
    if replacing is not None:
        conflicts = conflicts.exclude(pk=replacing.pk)
    if allow_another:
        conflicts = conflicts.filter(start__lt=booking.end, end__gt=booking.start)
    existing = conflicts.select_related("service").order_by("start").first()
    if existing is not None:
        raise AlreadyBooked(existing)


def booking_hold(
    *,
    clinic,
    service,
    provider,
    start,
    patient_phone,
    patient_name="",
    conversation=None,
    language=Booking.Language.ENGLISH,
    hold_minutes=HOLD_MINUTES,
    replacing=None,
    allow_another=False,
    now=None,
) -> Booking:
    """Hold ``start`` for the service's duration with ``provider``, or raise SlotUnavailable.

    One provider's active bookings never overlap: on PostgreSQL the exclusion constraint refuses the insert even
    when many holds race; elsewhere the provider's row is locked while checking and inserting.

    One patient never holds two bookings of the same service, or two at overlapping times, by accident:
    AlreadyBooked names the one they have, unless it is the booking being moved (``replacing``) or the patient
    said yes to a second appointment (``allow_another``; an overlapping time is refused even then).

    ``language``: the patient's ("en" or "es"), for every text about the booking later (confirmation, reminders,
    rebooking, waitlist offer); the caller that knows it (the conversation, the waitlist entry) passes it."""
    now = now or timezone.now()
    end = start + timedelta(minutes=service.duration_minutes)

    booking = Booking(
        clinic=clinic,
        conversation=conversation,
        patient_phone=patient_phone,
        patient_name=patient_name,
        language=language if language in Booking.Language.values else Booking.Language.ENGLISH,
        service=service,
        provider=provider,
        start=start,
        end=end,
        status=Booking.Status.HELD,
        hold_expires_at=now + timedelta(minutes=hold_minutes),
    )
    booking.full_clean(exclude=["conversation"])
    try:
        with transaction.atomic():
            _ensure_free(provider_id=provider.pk, start=start, end=end)
            _ensure_not_doubled(booking, replacing=replacing, allow_another=allow_another, now=now)
            booking.save()
            transaction.on_commit(lambda: availability_invalidate(clinic_id=clinic.pk))
    except IntegrityError as exc:  # PostgreSQL's exclusion constraint: another hold won the race
        raise SlotUnavailable(f"provider {provider.pk} is busy then") from exc
    logger.info("booking held booking=%s provider=%s", booking.pk, provider.pk)
    return booking


def bookings_expire_holds(*, now=None) -> int:
    """Holds past their expiry free their time (periodic task); each one freed is announced
    (``bookings.hold_expired``, in the transaction that expires it) so that the waitlist can offer the time."""
    now = now or timezone.now()
    waiting = [Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT]
    with transaction.atomic():
        # Locked (rows another transaction is changing, such as a deposit link being attached, wait for the next run).
        due = list(
            Booking.objects.select_for_update(skip_locked=True)
            .filter(status__in=waiting, hold_expires_at__lte=now)
            .order_by("pk")
        )
        expired = Booking.objects.filter(pk__in=[b.pk for b in due], status__in=waiting).update(
            status=Booking.Status.EXPIRED, updated_at=now
        )
        for booking in due:
            booking.status, booking.updated_at = Booking.Status.EXPIRED, now
            publish("bookings.hold_expired", booking=booking)
    for clinic_id in {b.clinic_id for b in due}:
        availability_invalidate(clinic_id=clinic_id)
    if expired:
        logger.info("booking holds expired count=%s", expired)
    return expired


def booking_confirm(*, booking_id: int, client=None) -> Booking:
    """Write a held booking into the clinic's EMR, exactly once, and mark it confirmed.

    Safe to run again after a crash or a timeout: a booking already confirmed is returned as it is, and an
    appointment that an earlier attempt wrote is looked up by our booking id before anything is written. The time
    is re-checked with the EMR right before writing; if it is gone (or the EMR answers 409) the booking fails and
    SlotUnavailable tells the caller to offer other times. On a manual EMR the booking waits for staff instead
    (``awaiting_staff``) and they are alerted; ``booking_staff_confirm`` finishes it."""

    booking = Booking.objects.select_related("clinic", "service", "provider").get(pk=booking_id)
    if booking.status in (Booking.Status.CONFIRMED, Booking.Status.AWAITING_STAFF):
        return booking
    if booking.status not in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
        raise BookingStateError(f"booking {booking.pk} is {booking.status}")
    client = client or emr_client(clinic=booking.clinic)
    if MANUAL in client.capabilities:
        return _hand_to_staff(booking)
    first, _, last = (booking.patient_name or "Patient").partition(" ")
    # The e-mail the patient gave on the web form, if any (Nextech asks for one to open a chart): from leads, above us.
    email = next(
        iter(filter(None, publish("bookings.patient_email", clinic=booking.clinic, phone=booking.patient_phone))), ""
    )
    patient = PatientInfo(first_name=first, last_name=last or "-", phone=booking.patient_phone, email=email)
    slot = Slot(
        start=booking.start,
        end=booking.end,
        provider_ref=client.provider_ref(booking.provider),
        service_ref=client.service_ref(booking.service),
    )
    patient_id = client.find_or_create_patient(patient)
    appointment = client.find_appointment(booking_id=booking.pk, patient_id=patient_id, start=booking.start)
    if appointment is None:
        try:
            if not client.is_time_free(slot):
                raise SlotTakenError("the EMR no longer offers this time")
            appointment = client.create_appointment(
                AppointmentRequest(booking_id=booking.pk, slot=slot, patient=patient, emr_patient_id=patient_id)
            )
        except SlotTakenError as exc:
            Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.FAILED, updated_at=timezone.now())
            availability_invalidate(clinic_id=booking.clinic_id)
            logger.info("booking lost its time in the EMR booking=%s", booking.pk)
            raise SlotUnavailable(str(exc)) from exc
    Booking.objects.filter(pk=booking.pk).update(
        status=Booking.Status.CONFIRMED,
        emr_appointment_id=appointment.emr_appointment_id,
        hold_expires_at=None,
        updated_at=timezone.now(),
    )
    availability_invalidate(clinic_id=booking.clinic_id)
    logger.info("booking confirmed booking=%s", booking.pk)
    booking.refresh_from_db()
    return booking


def booking_revive(*, booking_id: int, hold_minutes=HOLD_MINUTES, now=None) -> Booking:
    """A payment arrived for a hold that had just expired: take its time again if nobody else has it (the same
    overlap rule as ``booking_hold``), else raise SlotUnavailable."""
    now = now or timezone.now()
    try:
        with transaction.atomic():
            booking = Booking.objects.select_for_update().get(pk=booking_id)
            if booking.status != Booking.Status.EXPIRED:
                raise BookingStateError(f"booking {booking.pk} is {booking.status}")
            _ensure_free(provider_id=booking.provider_id, start=booking.start, end=booking.end, exclude_pk=booking.pk)
            booking.status = Booking.Status.AWAITING_DEPOSIT
            booking.hold_expires_at = now + timedelta(minutes=hold_minutes)
            booking.save(update_fields=["status", "hold_expires_at", "updated_at"])
            transaction.on_commit(lambda: availability_invalidate(clinic_id=booking.clinic_id))
    except IntegrityError as exc:
        raise SlotUnavailable(f"booking {booking_id}: its time was taken") from exc
    logger.info("booking revived booking=%s", booking.pk)
    return booking


def booking_attach_deposit(*, booking_id: int, deposit_cents: int, hold_expires_at=None) -> Booking:
    """A deposit was requested for a held booking: it now waits for the payment (until ``hold_expires_at``, the
    payment link's expiry, when given)."""
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.status not in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
            raise BookingStateError(f"booking {booking.pk} is {booking.status}")
        booking.status = Booking.Status.AWAITING_DEPOSIT
        booking.deposit_cents = deposit_cents
        if hold_expires_at is not None:
            booking.hold_expires_at = hold_expires_at
        booking.save(update_fields=["status", "deposit_cents", "hold_expires_at", "updated_at"])
    return booking


def _hand_to_staff(booking: Booking) -> Booking:
    """A manual EMR: the booking keeps its time and becomes a task for the front desk."""

    with transaction.atomic():
        updated = Booking.objects.filter(
            pk=booking.pk, status__in=[Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT]
        ).update(status=Booking.Status.AWAITING_STAFF, hold_expires_at=None, updated_at=timezone.now())
        if updated:
            booking.refresh_from_db()
            when = when_label(booking.start, booking.clinic.tz)
            staff_alert(
                clinic=booking.clinic,
                kind=StaffAlert.Kind.MANUAL_BOOKING,
                text=(
                    f"Booking #{booking.pk} ({booking.service.name} with {booking.provider.name}, "
                    f"{when}) is ready. Enter it in your EMR, then mark it confirmed here."
                ),
                obj=booking,
            )
    logger.info("booking awaiting staff booking=%s", booking.pk)
    booking.refresh_from_db()
    return booking


def booking_staff_confirm(*, booking_id: int, user, emr_appointment_id: str = "", request=None) -> Booking:
    """The front desk entered a manual EMR's booking: mark it confirmed, close its alert, text the patient."""

    with transaction.atomic():
        booking = Booking.objects.select_for_update().select_related("clinic").get(pk=booking_id)
        if booking.status == Booking.Status.CONFIRMED:
            return booking
        if booking.status != Booking.Status.AWAITING_STAFF:
            raise BookingStateError(f"booking {booking.pk} is {booking.status}, not awaiting staff")
        booking.status = Booking.Status.CONFIRMED
        booking.emr_appointment_id = emr_appointment_id or booking.emr_appointment_id
        booking.save(update_fields=["status", "emr_appointment_id", "updated_at"])
        staff_alerts_resolve_for(obj=booking, kinds=[StaffAlert.Kind.MANUAL_BOOKING])
        audit_record(
            action=AuditEvent.Action.CHANGE, obj=booking, user=user, request=request, detail={"fields": ["status"]}
        )
        transaction.on_commit(lambda: booking_confirmation_send(booking_id=booking.pk, kind="notice"))
    logger.info("booking confirmed by staff booking=%s", booking.pk)
    return booking


def booking_cancel(
    *, booking_id: int, by: str, user=None, request=None, now=None, client=None, refund: bool = True
) -> Booking:
    """Cancel a booking. ``by`` is "patient" (through the assistant) or "staff" (the admin).

    A patient may cancel a confirmed appointment up to the clinic's ``cancellation_notice_hours`` before it; later
    than that CancellationTooLate is raised and staff decide. A held time is simply released. An appointment
    written to the EMR is cancelled there first (an EMR error leaves the booking as it was, for a retry); on a
    manual EMR staff are asked to remove it. A patient's cancellation within the policy refunds a paid deposit;
    after a staff cancellation staff decide (the Payments admin's refund action); ``refund=False`` keeps it (a
    reschedule moves it to the new booking). Cancelling twice changes nothing."""

    now = now or timezone.now()
    booking = Booking.objects.select_related("clinic", "service", "provider").get(pk=booking_id)
    if booking.status == Booking.Status.CANCELLED:
        return booking
    if booking.status not in ACTIVE:
        raise BookingStateError(f"booking {booking.pk} is {booking.status}")
    booked = booking.status in (Booking.Status.CONFIRMED, Booking.Status.AWAITING_STAFF)
    notice = timedelta(hours=booking.clinic.cancellation_notice_hours)
    if by == "patient" and booked and booking.start - now < notice:
        raise CancellationTooLate(f"booking {booking.pk} starts within {booking.clinic.cancellation_notice_hours}h")
    client = client or (emr_client(clinic=booking.clinic) if booked else None)
    if booking.status == Booking.Status.CONFIRMED and WRITE in client.capabilities and booking.emr_appointment_id:
        client.cancel_appointment(booking.emr_appointment_id)  # EmrError propagates; nothing changed here
    with transaction.atomic():
        updated = Booking.objects.filter(pk=booking.pk, status=booking.status).update(
            status=Booking.Status.CANCELLED, hold_expires_at=None, updated_at=now
        )
        if not updated:  # changed meanwhile (confirmed, expired, cancelled): look again
            raise BookingStateError(f"booking {booking.pk} changed while cancelling")
        staff_alerts_resolve_for(obj=booking, kinds=[StaffAlert.Kind.MANUAL_BOOKING])
        if booked and MANUAL in client.capabilities:
            staff_alert(
                clinic=booking.clinic,
                kind=StaffAlert.Kind.MANUAL_CANCEL,
                text=f"Booking #{booking.pk} was cancelled ({by}). If it is in your EMR, remove it there.",
                obj=booking,
            )
        audit_record(
            action=AuditEvent.Action.CHANGE if user else AuditEvent.Action.ASSISTANT,
            obj=booking,
            user=user,
            request=request,
            channel="admin" if user else "assistant",
            detail={"fields": ["status"], "by": by},
        )
        # A patient's cancellation within the policy refunds a paid deposit (payments decides how).
        publish(
            "bookings.booking_cancelled",
            booking=booking,
            refund=by == "patient" and booked and refund,
            reason="Cancelled by the patient within the cancellation policy",
        )
        transaction.on_commit(lambda: availability_invalidate(clinic_id=booking.clinic_id))
    logger.info("booking cancelled booking=%s by=%s", booking.pk, by)
    booking.refresh_from_db()
    return booking


def booking_reschedule(*, booking_id: int, new_booking_id: int, now=None) -> Booking:
    """Move a patient's appointment to a time they hold (``new_booking_id``), within the clinic's notice (else
    CancellationTooLate, and staff decide, as for a cancellation).

    The new time is written to the EMR first (``booking_confirm``: SlotUnavailable if it was taken meanwhile, and
    the old appointment stays), then the old one is cancelled there; a paid deposit moves to the new booking
    instead of being refunded. If the EMR refuses to cancel the old appointment, ours is cancelled anyway (the
    patient has moved) and staff are alerted to remove it from the EMR. On a manual EMR the new booking waits for
    staff like any other, and the usual "remove it" alert covers the old one."""

    now = now or timezone.now()
    old = Booking.objects.select_related("clinic").get(pk=booking_id)
    new = Booking.objects.get(pk=new_booking_id)
    if old.status not in (Booking.Status.CONFIRMED, Booking.Status.AWAITING_STAFF):
        raise BookingStateError(f"booking {old.pk} is {old.status}")
    if (new.clinic_id, new.patient_phone, new.service_id) != (old.clinic_id, old.patient_phone, old.service_id):
        raise BookingStateError(f"booking {new.pk} is not a new time for booking {old.pk}")
    if old.start - now < timedelta(hours=old.clinic.cancellation_notice_hours):
        raise CancellationTooLate(f"booking {old.pk} starts within {old.clinic.cancellation_notice_hours}h")
    Booking.objects.filter(pk=new.pk).update(
        rescheduled_from=old, deposit_cents=old.deposit_cents, patient_name=new.patient_name or old.patient_name
    )
    new = booking_confirm(booking_id=new.pk)
    with transaction.atomic():
        publish("bookings.booking_moved", old=old, new=new)  # a paid deposit moves with it
    try:
        booking_cancel(booking_id=old.pk, by="patient", now=now, refund=False)
    except EmrError:
        logger.warning("reschedule: the EMR kept the old appointment booking=%s new=%s", old.pk, new.pk)
        Booking.objects.filter(pk=old.pk).update(status=Booking.Status.CANCELLED, updated_at=now)
        staff_alert(
            clinic=old.clinic,
            kind=StaffAlert.Kind.EMR_ERROR,
            text=(
                f"Booking #{old.pk} was moved to #{new.pk}, but the EMR did not cancel the old appointment "
                f"({old.emr_appointment_id or 'no id'}). Remove it there."
            ),
            obj=old,
        )
    logger.info("booking rescheduled booking=%s new=%s", old.pk, new.pk)
    new.refresh_from_db()
    return new


def booking_in_spanish(booking: Booking) -> bool:
    """Texts about the booking are written in Spanish: it was made in Spanish (``Booking.language``, from the
    conversation) and the clinic still answers in Spanish (``Clinic.spanish``). Lifecycle and the waitlist ask this
    too, so every text about one booking is in one language."""
    return booking.language == Booking.Language.SPANISH and booking.clinic.spanish


def booking_confirmation_text(booking: Booking) -> str:
    clinic = booking.clinic
    if booking_in_spanish(booking):
        where = f" en {clinic.street}" if clinic.street else ""
        return gsm7(
            f"Su cita está confirmada: {booking.service.name} con {booking.provider.name}, "
            f"{when_es(booking.start, clinic.tz)}{where}. Para cancelar o cambiarla, responda aquí al menos "
            f"{clinic.cancellation_notice_hours} horas antes. - {clinic.name}"
        )
    when = when_label(booking.start, clinic.tz)
    where = f" at {clinic.street}" if clinic.street else ""
    notice = clinic.cancellation_notice_hours
    return (
        f"You're booked: {booking.service.name} with {booking.provider.name}, {when}"
        f"{where}. To cancel or reschedule, reply here at least {notice} hours before. - {clinic.name}"
    )


def booking_received_text(booking: Booking) -> str:
    if booking_in_spanish(booking):
        deposit = format_cents(booking.deposit_cents)
        paid = f"recibimos su depósito de {deposit}" if booking.deposit_cents else "recibido"
        return gsm7(
            f"Gracias, {paid}. Nuestra recepción está confirmando su cita de {booking.service.name} el "
            f"{when_es(booking.start, booking.clinic.tz)} y le escribirá pronto. - {booking.clinic.name}"
        )
    when = when_label(booking.start, booking.clinic.tz)
    paid = f"your {format_cents(booking.deposit_cents)} deposit is received" if booking.deposit_cents else "got it"
    return (
        f"Thanks, {paid}. Our front desk is confirming your {booking.service.name} on {when} "
        f"and will text you shortly. - {booking.clinic.name}"
    )


def booking_confirmation_send(*, booking_id: int, kind: str = "reply"):
    """Text the patient where their booking stands, once per state (keyed by the booking): confirmed, or (manual
    EMR) received and being confirmed by the front desk. ``kind`` "reply" goes out at once (it answers the
    patient's own payment); "notice" (a later staff confirmation) waits for quiet hours."""

    booking = Booking.objects.select_related("clinic", "service", "provider").get(pk=booking_id)
    if booking.status == Booking.Status.CONFIRMED:
        body, key = booking_confirmation_text(booking), f"booking-confirmed-{booking.pk}"
    elif booking.status == Booking.Status.AWAITING_STAFF:
        body, key = booking_received_text(booking), f"booking-received-{booking.pk}"
    else:
        return []
    publish("bookings.booking_changed", booking=booking)
    return message_queue(
        clinic=booking.clinic,
        to=booking.patient_phone,
        body=body,
        kind=kind,
        conversation=booking.conversation,
        idempotency_key=key,
    )


# --- After the booking: the patient's confirmation, the visit's outcome, the EMR's side ---------------------------

ENDED = {"completed": Booking.Status.COMPLETED, "no_show": Booking.Status.NO_SHOW}
# The EMR's own words (FHIR Appointment.status; Boulevard's cancelled flag is read as "cancelled").
EMR_CANCELLED = {"cancelled", "entered-in-error"}
EMR_ENDED = {"fulfilled": "completed", "checked-in": "completed", "arrived": "completed", "noshow": "no_show"}


def booking_patient_confirm(*, booking_id: int, now=None) -> Booking | None:
    """The patient answered a confirmation request or reminder with C / yes / confirm: staff see it on the
    booking. Only an upcoming confirmed (or awaiting-staff) booking; once (the first answer's time is kept)."""
    now = now or timezone.now()
    updated = Booking.objects.filter(
        pk=booking_id,
        status__in=[Booking.Status.CONFIRMED, Booking.Status.AWAITING_STAFF],
        start__gt=now,
        patient_confirmed_at__isnull=True,
    ).update(patient_confirmed_at=now, updated_at=now)
    booking = Booking.objects.select_related("clinic", "service", "provider").get(pk=booking_id)
    if updated:
        logger.info("booking confirmed by the patient booking=%s", booking.pk)
    return booking if booking.patient_confirmed_at else None


def booking_mark(*, booking_id: int, outcome: str, user=None, request=None, now=None, by: str = "staff") -> Booking:
    """Staff (or the EMR's status) say how the visit went: ``outcome`` "completed" or "no_show". Only for a
    confirmed booking whose time has started; marking it again the same way changes nothing. The
    ``bookings.booking_changed`` event lets the texts after the visit follow (review, rebooking, no-show)."""
    now = now or clock_now()
    status = ENDED[outcome]
    with transaction.atomic():
        booking = Booking.objects.select_for_update().get(pk=booking_id)
        if booking.status == status:
            return booking
        if booking.status != Booking.Status.CONFIRMED:
            raise BookingStateError(f"booking {booking.pk} is {booking.status}, not confirmed")
        if booking.start > now:
            raise BookingStateError(f"booking {booking.pk} has not started yet")
        booking.status = status
        booking.save(update_fields=["status", "updated_at"])
        audit_record(
            action=AuditEvent.Action.CHANGE if user else AuditEvent.Action.ASSISTANT,
            obj=booking,
            user=user,
            request=request,
            channel="admin" if user else "system",
            detail={"fields": ["status"], "by": by},
        )
        publish("bookings.booking_changed", booking=booking)
    logger.info("booking marked booking=%s outcome=%s by=%s", booking.pk, outcome, by)
    return booking


def booking_emr_refresh(*, booking_id: int, client=None, now=None) -> str:
    """Read the appointment's state in the EMR and follow it: cancelled there -> our booking is cancelled (no
    refund: staff cancelled it, staff decide); moved -> our booking moves (its texts follow); no-show or fulfilled
    -> marked so. Returns "unchanged", "cancelled", "moved", "completed", "no_show", or "not_read" (nothing to read:
    the built-in calendar, a manual EMR, no EMR id). An ``EmrError`` propagates: the caller decides (a reminder
    still goes, staff are told the check failed)."""
    now = now or timezone.now()
    booking = Booking.objects.select_related("clinic").get(pk=booking_id)
    if booking.status != Booking.Status.CONFIRMED or not booking.emr_appointment_id:
        return "not_read"
    client = client or emr_client(clinic=booking.clinic)
    appointment = client.appointment_status(booking.emr_appointment_id)
    if appointment is None:
        return "not_read"
    status = (appointment.status or "").lower()
    if status in EMR_CANCELLED:
        with transaction.atomic():
            updated = Booking.objects.filter(pk=booking.pk, status=Booking.Status.CONFIRMED).update(
                status=Booking.Status.CANCELLED, updated_at=now
            )
            if not updated:
                return "unchanged"
            booking.refresh_from_db()
            audit_record(
                action=AuditEvent.Action.ASSISTANT, obj=booking, channel="system", detail={"fields": ["status"]}
            )
            publish("bookings.booking_cancelled", booking=booking, refund=False, reason="Cancelled in the EMR")
            transaction.on_commit(lambda: availability_invalidate(clinic_id=booking.clinic_id))
        logger.info("booking cancelled in the EMR booking=%s", booking.pk)
        return "cancelled"
    if status in EMR_ENDED:
        if booking.start > now:
            return "unchanged"
        booking_mark(booking_id=booking.pk, outcome=EMR_ENDED[status], now=now, by="emr")
        return EMR_ENDED[status]
    if appointment.start is not None and appointment.start != booking.start:
        with transaction.atomic():
            locked = Booking.objects.select_for_update().get(pk=booking.pk)
            locked.end = appointment.start + (locked.end - locked.start)
            locked.start = appointment.start
            locked.save(update_fields=["start", "end", "updated_at"])
            publish("bookings.booking_changed", booking=locked)
            transaction.on_commit(lambda: availability_invalidate(clinic_id=booking.clinic_id))
        logger.info("booking moved in the EMR booking=%s", booking.pk)
        return "moved"
    return "unchanged"
