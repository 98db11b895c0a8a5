"""Telling clinic staff that something needs a person: one row per alert (the admin's "Needs attention" list), an
email to the clinic's chosen staff (memberships with ``notify``) and, for a patient who needs a person (hand-off,
urgent, a failed text), a text to the clinic's ``staff_mobile``; sent by a task after commit. About one
conversation, staff are told at most once an hour (the later alerts are listed, not sent). Emails and texts carry
ids and a link, never patient names, numbers or message bodies."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from .events import publish
from .models import Clinic, ClinicMembership, StaffAlert
from .queueing import enqueue

EMAIL_TASK = "medspa.email_staff_alert"
CONVERSATION = "conversation.conversation"
# A patient who needs a person: these are also texted to the clinic's staff mobile.
TEXTED_KINDS = (StaffAlert.Kind.HANDOFF, StaffAlert.Kind.URGENT)
QUIET_FOR = timedelta(hours=1)  # at most one notice per conversation in this time

logger = logging.getLogger(__name__)


def staff_alert(
    *, clinic, kind: str, text: str, obj=None, dedupe_key: str = "", conversation_id: int | None = None
) -> StaffAlert:
    """Raise an alert once per ``dedupe_key`` (default: kind and object) and tell the clinic's staff.

    ``conversation_id``: the patient's conversation it is about (taken from ``obj`` when it is one), which links the
    notice to the thread and limits notices to one an hour per conversation."""
    object_type = obj._meta.label_lower if obj is not None else ""
    object_id = str(obj.pk) if obj is not None else ""
    if conversation_id is None and object_type == CONVERSATION:
        conversation_id = obj.pk
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
                conversation_ref=conversation_id,
            )
    except IntegrityError:  # raised concurrently by another worker
        return StaffAlert.objects.get(dedupe_key=dedupe_key)
    transaction.on_commit(lambda: enqueue(EMAIL_TASK, alert.pk))  # else staff_alerts_email_unsent sends it
    logger.info("staff alert raised alert=%s clinic=%s kind=%s", alert.pk, clinic.pk, kind)
    return alert


def staff_alert_link(alert: StaffAlert) -> str:
    """Where to act: the conversation's thread when the alert is about one, else the alert in the admin."""
    if alert.conversation_ref:
        path = reverse("admin:conversation_conversation_change", args=[alert.conversation_ref])
    else:
        path = reverse("admin:medspa_staffalert_change", args=[alert.pk])
    return settings.PUBLIC_BASE_URL + path


def _notice_claim(alert_id: int, now) -> StaffAlert | None:
    """Decide, once, whether staff are told of this alert: not when they were told about the same conversation in
    the last hour (``throttled``). The clinic's row is locked meanwhile, so two alerts about one conversation
    raised together are told once. Returns the alert to send, or None."""
    with transaction.atomic():
        alert = StaffAlert.objects.select_for_update().select_related("clinic").get(pk=alert_id)
        if alert.emailed_at is not None or alert.throttled:
            return None
        if alert.notified_at is not None:  # claimed before, its send failed: this is the retry
            return alert
        if alert.conversation_ref is not None:
            Clinic.objects.select_for_update().filter(pk=alert.clinic_id).first()
            told = (
                StaffAlert.objects.filter(
                    clinic_id=alert.clinic_id,
                    conversation_ref=alert.conversation_ref,
                    notified_at__gte=now - QUIET_FOR,
                    throttled=False,
                )
                .exclude(pk=alert.pk)
                .exists()
            )
            if told:
                StaffAlert.objects.filter(pk=alert.pk).update(notified_at=now, throttled=True)
                logger.info("staff alert throttled alert=%s conversation=%s", alert.pk, alert.conversation_ref)
                return None
        StaffAlert.objects.filter(pk=alert.pk).update(notified_at=now)
        alert.notified_at = now
    return alert


def staff_alert_recipients(clinic) -> list[str]:
    """The email addresses of the clinic's active staff who chose to be told."""
    return sorted(
        set(
            ClinicMembership.objects.for_clinic(clinic)
            .filter(notify=True, user__is_active=True)
            .exclude(user__email="")
            .values_list("user__email", flat=True)
        )
    )


def staff_alert_email(*, alert_id: int) -> int:
    """Tell the clinic's chosen staff of one alert: an email, and a text to the staff mobile for a patient who needs
    a person (queued through messaging by the ``medspa.staff_text`` event, under a key, so a retry does not text
    twice). Returns how many emails were addressed."""
    now = timezone.now()
    alert = _notice_claim(alert_id, now)
    if alert is None:
        return 0
    link = staff_alert_link(alert)
    subject = f"[{alert.clinic.name}] {alert.get_kind_display()}"
    if alert.kind in TEXTED_KINDS and alert.clinic.staff_mobile:
        publish(
            "medspa.staff_text",
            clinic=alert.clinic,
            to=alert.clinic.staff_mobile,
            body=f"{subject}: {link}",
            key=f"staff-alert:{alert.pk}",
        )
    recipients = staff_alert_recipients(alert.clinic)
    if recipients:
        send_mail(
            subject=subject,
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
            throttled=False,
            resolved_at__isnull=True,
            created_at__lte=now - timedelta(minutes=1),
            created_at__gte=now - timedelta(days=1),
        ).values_list("pk", flat=True)[:200]
    )
    for pk in ids:
        enqueue(EMAIL_TASK, pk)
    return ids


def staff_notified_set(*, clinic, memberships) -> int:
    """The clinic's staff who are emailed: exactly ``memberships`` (of this clinic). Returns how many."""
    chosen = {m.pk for m in memberships if m.clinic_id == clinic.pk}
    members = ClinicMembership.objects.filter(clinic=clinic)
    members.exclude(pk__in=chosen).update(notify=False)
    return members.filter(pk__in=chosen).update(notify=True)
