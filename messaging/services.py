"""Messaging business rules. For now: the opt-out ledger, the one place that says whether a number may be texted."""

import logging

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from medspa.models import Clinic

from .compliance import Classification
from .models import OptOut

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
                        clinic=clinic, phone=phone, source=source, detail=detail, needs_review=needs_review,
                        opted_out_at=now,
                    )  # fmt: skip
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
