"""Telling clinic staff that something needs a person: one row per alert (the admin's "Needs attention" list) and
an email to the clinic's staff, sent by a task after commit. Texts carry ids and admin links, never patient data."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from .models import ClinicMembership, StaffAlert
from .queueing import enqueue

EMAIL_TASK = "medspa.email_staff_alert"

logger = logging.getLogger(__name__)


def staff_alert(*, clinic, kind: str, text: str, obj=None, dedupe_key: str = "") -> StaffAlert:
    """Raise an alert once per ``dedupe_key`` (default: kind and object) and email the clinic's staff."""
    object_type = obj._meta.label_lower if obj is not None else ""
    object_id = str(obj.pk) if obj is not None else ""
    dedupe_key = dedupe_key or f"{kind}:{object_type}:{object_id}"
    existing = StaffAlert.objects.filter(dedupe_key=dedupe_key).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            alert = StaffAlert.objects.create(
                clinic=clinic,
                kind=kind,
                text=text[:300],
                object_type=object_type,
                object_id=object_id,
                dedupe_key=dedupe_key,
            )
    except IntegrityError:  # raised concurrently by another worker
        return StaffAlert.objects.get(dedupe_key=dedupe_key)
    transaction.on_commit(lambda: enqueue(EMAIL_TASK, alert.pk))  # else staff_alerts_email_unsent sends it
    logger.info("staff alert raised alert=%s clinic=%s kind=%s", alert.pk, clinic.pk, kind)
    return alert


def staff_alert_email(*, alert_id: int) -> int:
    """Email one alert to the clinic's staff (members with an email address). Returns how many were addressed."""
    alert = StaffAlert.objects.select_related("clinic").get(pk=alert_id)
    if alert.emailed_at is not None:
        return 0
    recipients = sorted(
        set(
            ClinicMembership.objects.for_clinic(alert.clinic)
            .exclude(user__email="")
            .filter(user__is_active=True)
            .values_list("user__email", flat=True)
        )
    )
    if recipients:
        link = settings.PUBLIC_BASE_URL + reverse("admin:medspa_staffalert_change", args=[alert.pk])
        send_mail(
            subject=f"[{alert.clinic.name}] {alert.get_kind_display()}",
            message=f"{alert.text}\n\nOpen it in the admin: {link}\n",
            from_email=None,
            recipient_list=recipients,
        )
    StaffAlert.objects.filter(pk=alert.pk).update(emailed_at=timezone.now())
    logger.info("staff alert emailed alert=%s recipients=%s", alert.pk, len(recipients))
    return len(recipients)


def staff_alert_resolve(*, alert: StaffAlert, user) -> bool:
    updated = StaffAlert.objects.filter(pk=alert.pk, resolved_at__isnull=True).update(
        resolved_at=timezone.now(), resolved_by=user.get_username()
    )
    return bool(updated)


def staff_alerts_resolve_for(*, obj, kinds) -> int:
    """Close the open alerts about ``obj`` once the thing they asked for is done."""
    return StaffAlert.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk), kind__in=kinds, resolved_at__isnull=True
    ).update(resolved_at=timezone.now(), resolved_by="system")


def staff_alerts_email_unsent(*, now=None) -> list[int]:
    """Alerts whose email task was lost (broker down when raised, Redis flushed): queued again once they are a
    minute old, for a day (after that the admin list is where staff see them)."""
    now = now or timezone.now()
    ids = list(
        StaffAlert.objects.filter(
            emailed_at__isnull=True,
            resolved_at__isnull=True,
            created_at__lte=now - timedelta(minutes=1),
            created_at__gte=now - timedelta(days=1),
        ).values_list("pk", flat=True)[:200]
    )
    for pk in ids:
        enqueue(EMAIL_TASK, pk)
    return ids
