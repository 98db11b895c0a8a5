"""Phone numbers: parsed and normalised with Google's libphonenumber (the ``phonenumbers`` package)."""

import phonenumbers
from django.core.exceptions import ValidationError

DEFAULT_REGION = "US"


def normalize_phone(raw: str, *, region: str = DEFAULT_REGION) -> str:
    """Return ``raw`` as E.164 (+16175550123) or raise ValidationError with a message a patient understands."""
    text = (raw or "").strip()
    if not text:
        raise ValidationError("Enter a mobile phone number.", code="required")
    if len(text) > 32:
        raise ValidationError("That is too long for a phone number.", code="invalid")
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise ValidationError("Enter a valid phone number, e.g. (617) 555-0123.", code="invalid") from None
    if not phonenumbers.is_possible_number(number):
        raise ValidationError("Enter a valid phone number, e.g. (617) 555-0123.", code="invalid")
    if not phonenumbers.is_valid_number(number):
        raise ValidationError("That phone number does not exist; check the digits.", code="invalid")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_e164(value: str) -> None:
    """Model validator: the value must already be E.164 (``+`` and 8-15 digits)."""
    if value and not (value.startswith("+") and value[1:].isdigit() and 8 <= len(value) - 1 <= 15):
        raise ValidationError("Use E.164 format: + country code and number, e.g. +16175550123.")
