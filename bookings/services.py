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
    """The time overlaps another active booking of that provider."""


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
