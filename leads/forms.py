"""The clinic's hosted lead form (``/l/<slug>/``): its fields, the consent wording and the honeypot."""

from urllib.parse import urlsplit

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator

from medspa.models import Clinic, Service
from medspa.phones import normalize_phone
from messaging.compliance import consent_wording

from .models import Lead

NOT_SURE = ""
HONEYPOT = "website"
SOURCE_URL_MAX_LENGTH = Lead._meta.get_field("source_url").max_length
# What the public (this form and /api/leads) may write in a text field: what carriers deliver as one text (10
# segments of 160). Longer is refused with the field's error, not cut: the end may be what mattered, and the form
# keeps what was typed so it can be shortened. The field's maxlength stops a browser at it already. (The model and
# lead_create allow MESSAGE_MAX_LENGTH; this form and the API, the ways in, cap lower.)
PUBLIC_MESSAGE_MAX_LENGTH = 1600
PUBLIC_MESSAGE_TOO_LONG = f"Keep the message to {PUBLIC_MESSAGE_MAX_LENGTH} characters or fewer."


def valid_source_url(value: str) -> str:
    """An http(s) URL that fits the model field, else '' (it comes from the embedding page, not from the person)."""
    value = (value or "").strip()
    if not value or len(value) > SOURCE_URL_MAX_LENGTH or urlsplit(value).scheme not in ("http", "https"):
        return ""
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return ""
    return value


class LeadForm(forms.Form):
    """Shape checks with the messages ``lead_create`` uses; ``lead_create`` stays the authority and its
    ValidationError is added to the form field by field (``add_service_errors``)."""

    name = forms.CharField(
        label="Name",
        max_length=120,
        error_messages={"required": "Enter your name."},
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
    )
    phone = forms.CharField(
        label="Mobile phone",
        max_length=32,
        help_text="US number, e.g. (617) 555-0123.",
        error_messages={"required": "Enter a mobile phone number."},
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel", "inputmode": "tel"}),
    )
    email = forms.EmailField(
        label="Email (optional)",
        required=False,
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    service_of_interest = forms.ChoiceField(label="Service of interest", required=False)
    message = forms.CharField(
        label="Message (optional)",
        required=False,
        max_length=PUBLIC_MESSAGE_MAX_LENGTH,
        error_messages={"max_length": PUBLIC_MESSAGE_TOO_LONG},
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    sms_consent = forms.BooleanField(required=False)
    # Hidden from people and screen readers (template); a bot that fills every field fills this one too.
    website = forms.CharField(
        label="Leave this field empty", required=False, widget=forms.TextInput(attrs={"tabindex": "-1"})
    )
    source_url = forms.CharField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, clinic: Clinic, **kwargs):
        super().__init__(*args, **kwargs)
        self.clinic = clinic
        self.consent_text = consent_wording(clinic)
        self.fields["sms_consent"].label = self.consent_text
        names = Service.objects.for_clinic(clinic).filter(active=True).order_by("name").values_list("name", flat=True)
        self.fields["service_of_interest"].choices = [(NOT_SURE, "Not sure"), *((n, n) for n in names)]
        self.fields["service_of_interest"].error_messages["invalid_choice"] = "Choose a service from the list."
        self.fields[HONEYPOT].widget.attrs["autocomplete"] = "off"

    @property
    def is_spam(self) -> bool:
        return bool(self.data.get(HONEYPOT, "").strip())

    def clean_phone(self):
        raw = self.cleaned_data["phone"]
        normalize_phone(raw)  # the check lead_create makes, so every field's error shows at once
        return raw  # lead_create normalises; the form keeps what was typed

    def clean_source_url(self):
        return valid_source_url(self.cleaned_data["source_url"])

    def lead_fields(self, *, default_source_url: str) -> dict:
        """Keyword arguments for ``lead_create``: the consent wording is the one shown next to the box, the page
        is the embedding page when embed.js passed it on, else ``default_source_url`` (the hosted form)."""
        data = self.cleaned_data
        return {
            "name": data["name"],
            "phone": data["phone"],
            "email": data["email"],
            "service_of_interest": data["service_of_interest"],
            "message": data["message"],
            "sms_consent": data["sms_consent"],
            "consent_text": self.consent_text,
            "source_url": data["source_url"] or default_source_url,
        }

    def add_service_errors(self, error: ValidationError) -> None:
        """Put each message of ``lead_create``'s ValidationError on its field (others above the form)."""
        shown = {name for name, field in self.fields.items() if not field.widget.is_hidden and name != HONEYPOT}
        for field, messages in error.message_dict.items():
            self.add_error(field if field in shown else None, messages)
