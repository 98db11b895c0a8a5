"""Booking rules: holding a time (never twice), expiring holds. Confirmation, deposits and EMR writes build on
these in the deposits and assistant work."""

import logging
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from emr.availability import availability_invalidate
from emr.models import Provider

from .models import Booking

logger = logging.getLogger(__name__)

HOLD_MINUTES = 15


class SlotUnavailable(Exception):
    """The time overlaps another active booking of that provider, or the EMR no longer offers it."""


class BookingStateError(Exception):
    """The booking is not in a state that allows this step."""


def booking_hold(
    *,
    clinic,
    service,
    provider,
    start,
    patient_phone,
    patient_name="",
    conversation=None,
    hold_minutes=HOLD_MINUTES,
    now=None,
) -> Booking:
    """Hold ``start`` for the service's duration with ``provider``, or raise SlotUnavailable.

    One provider's active bookings never overlap: on PostgreSQL the exclusion constraint refuses the insert even
    when many holds race; elsewhere the provider's row is locked while checking and inserting."""
    now = now or timezone.now()
    end = start + timedelta(minutes=service.duration_minutes)
    booking = Booking(
        clinic=clinic,
        conversation=conversation,
        patient_phone=patient_phone,
        patient_name=patient_name,
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
            Provider.objects.select_for_update().filter(pk=provider.pk).first()
            if Booking.objects.overlapping(provider=provider, start=start, end=end).exists():
                raise SlotUnavailable(f"provider {provider.pk} is busy then")
            booking.save()
            transaction.on_commit(lambda: availability_invalidate(clinic_id=clinic.pk))
    except IntegrityError as exc:  # PostgreSQL's exclusion constraint: another hold won the race
        raise SlotUnavailable(f"provider {provider.pk} is busy then") from exc
    logger.info("booking held booking=%s provider=%s", booking.pk, provider.pk)
    return booking


def bookings_expire_holds(*, now=None) -> int:
    """Holds past their expiry free their time (periodic task)."""
    now = now or timezone.now()
    due = Booking.objects.filter(
        status__in=[Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT], hold_expires_at__lte=now
    )
    clinic_ids = set(due.values_list("clinic_id", flat=True))
    expired = due.update(status=Booking.Status.EXPIRED, updated_at=now)
    for clinic_id in clinic_ids:
        availability_invalidate(clinic_id=clinic_id)
    if expired:
        logger.info("booking holds expired count=%s", expired)
    return expired


def booking_confirm(*, booking_id: int, client=None) -> Booking:
    """Write a held booking into the clinic's EMR, exactly once, and mark it confirmed.

    Safe to run again after a crash or a timeout: a booking already confirmed is returned as it is, and an
    appointment that an earlier attempt wrote is looked up by our booking id before anything is written. The time
    is re-checked with the EMR right before writing; if it is gone (or the EMR answers 409) the booking fails and
    SlotUnavailable tells the caller to offer other times."""
    from emr.base import AppointmentRequest, PatientInfo, Slot, SlotTakenError
    from emr.services import emr_client

    booking = Booking.objects.select_related("clinic", "service", "provider").get(pk=booking_id)
    if booking.status == Booking.Status.CONFIRMED:
        return booking
    if booking.status not in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
        raise BookingStateError(f"booking {booking.pk} is {booking.status}")
    client = client or emr_client(clinic=booking.clinic)
    first, _, last = (booking.patient_name or "Patient").partition(" ")
    patient = PatientInfo(first_name=first, last_name=last or "-", phone=booking.patient_phone)
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
