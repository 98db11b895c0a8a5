"""What leads answers when a lower app publishes an event (medspa/events.py; wired in settings.EVENT_HANDLERS)."""

from messaging.compliance import MARKETING_CONSENT_LINE

from .models import Lead


def marketing_consent(*, clinic, phone):
    """Prior express written consent to treatment-due texts: a web lead of this patient who ticked the SMS box
    next to wording that names them (docs/COMPLIANCE.md, "Texts after the booking")."""
    return (
        Lead.objects.for_clinic(clinic)
        .filter(phone=phone, sms_consent=True, consent_text__contains=MARKETING_CONSENT_LINE)
        .exists()
    )


def patient_email(*, clinic, phone):
    """The e-mail of this patient's latest web lead ("" when none): an EMR that needs one to open a chart (Nextech)
    gets it with the booking."""
    lead = Lead.objects.for_clinic(clinic).filter(phone=phone).exclude(email="").order_by("-created_at").first()
    return lead.email if lead else ""
