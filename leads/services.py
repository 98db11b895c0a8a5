"""Creating leads. ``lead_create`` is the only way a Lead comes to exist."""

import hashlib
import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from conversation.models import Conversation
from conversation.services import intro_send
from medspa.models import Clinic, Service
from medspa.phones import normalize_phone

from .models import MESSAGE_MAX_LENGTH, Lead

logger = logging.getLogger(__name__)


def service_match(*, clinic: Clinic, text: str) -> Service | None:
    """The clinic's active service named (or aliased) by ``text``, if exactly one matches."""
    if not text.strip():
        return None
    matches = [s for s in Service.objects.for_clinic(clinic).filter(active=True) if s.matches(text)]
    return matches[0] if len(matches) == 1 else None


def _fingerprint(**fields) -> str:
    canonical = "\x1f".join(f"{k}={' '.join(str(v).lower().split())}" for k, v in sorted(fields.items()))
    return hashlib.sha256(canonical.encode()).hexdigest()


def lead_create(
    *,
    clinic: Clinic,
    name: str,
    phone: str,
    email: str = "",
    service_of_interest: str = "",
    message: str = "",
    source: str = Lead.Source.WEB_FORM,
    source_url: str = "",
    sms_consent: bool = False,
    consent_text: str = "",
    ip: str | None = None,
    user_agent: str = "",
) -> tuple[Lead, bool]:
    """Validate and store a lead; return ``(lead, created)``.

    The phone is normalised to E.164. Consent to texts needs the exact wording the person was shown; the time,
    IP and user agent are recorded with it. The same submission again within LEAD_DUPLICATE_WINDOW (a double
    click, a retried request) returns the first lead with ``created=False`` and changes nothing.
    Raises ValidationError with a message per field.
    """
    errors = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = "Enter your name."
    try:
        phone = normalize_phone(phone)
    except ValidationError as exc:
        errors["phone"] = exc.messages[0]
    consent_text = (consent_text or "").strip()
    if sms_consent and not consent_text:
        errors["consent_text"] = "Consent to texts was given, so the consent wording shown must be sent with it."
    message = (message or "").strip()
    if len(message) > MESSAGE_MAX_LENGTH:
        errors["message"] = f"Keep the message under {MESSAGE_MAX_LENGTH} characters."
    if errors:
        raise ValidationError(errors)

    email = (email or "").strip().lower()
    service_text = " ".join((service_of_interest or "").split())
    fingerprint = _fingerprint(
        name=name, phone=phone, email=email, service=service_text, message=message, consent=sms_consent
    )
    now = timezone.now()
    lead = Lead(
        clinic=clinic,
        name=name,
        phone=phone,
        email=email,
        service_of_interest=service_match(clinic=clinic, text=service_text),
        service_text=service_text,
        message=message,
        source=source,
        source_url=source_url,
        fingerprint=fingerprint,
        sms_consent=sms_consent,
        consent_text=consent_text if sms_consent else "",
        consent_at=now if sms_consent else None,
        consent_ip=ip if sms_consent else None,
        consent_user_agent=(user_agent or "")[:400] if sms_consent else "",
    )
    lead.full_clean(exclude=["fingerprint"])

    with transaction.atomic():
        # One writer per clinic at a time, so two copies of one submission cannot both pass the duplicate check.
        Clinic.objects.select_for_update().filter(pk=clinic.pk).first()
        existing = (
            Lead.objects.for_clinic(clinic)
            .filter(fingerprint=fingerprint, created_at__gte=now - settings.LEAD_DUPLICATE_WINDOW)
            .order_by("created_at")
            .first()
        )
        if existing is not None:
            logger.info("lead duplicate clinic=%s lead=%s", clinic.pk, existing.pk)
            return existing, False
        lead.save()
        if sms_consent:
            # The intro text, once the lead is committed; quiet hours defer it to the patient's sending window.
            transaction.on_commit(lambda: intro_send(clinic=clinic, phone=phone, origin=Conversation.Origin.WEB_LEAD))
    logger.info("lead created clinic=%s lead=%s consent=%s", clinic.pk, lead.pk, sms_consent)
    return lead, True
