"""Model and form fields shared by the apps."""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            "FIELD_ENCRYPTION_KEY must be one or more comma-separated Fernet keys "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        ) from exc


def fernet() -> MultiFernet:
    """The cipher for FIELD_ENCRYPTION_KEY: the first key encrypts, every listed key decrypts."""
    return _fernet(settings.FIELD_ENCRYPTION_KEY)


class EncryptedTextField(models.TextField):
    """Text stored encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256), e.g. provider credentials.

    The database only ever holds the token; reading a value that no configured key can decrypt raises
    instead of returning ciphertext, so a wrong key is noticed rather than silently sent to a provider.
    Rotation: put the new key first in FIELD_ENCRYPTION_KEY and keep the old one after it; values are written
    with the new key whenever they are saved, and the old key can go once every row has been re-saved.
    """

    description = "Text encrypted with FIELD_ENCRYPTION_KEY"

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return fernet().encrypt(value.encode()).decode()

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        try:
            return fernet().decrypt(value.encode()).decode()
        except InvalidToken as exc:
            raise ImproperlyConfigured(
                f"{self.model.__name__}.{self.name}: stored value cannot be decrypted with FIELD_ENCRYPTION_KEY"
            ) from exc


class DollarsField(forms.DecimalField):
    """A form field showing and accepting dollars ("12.50") for a model field that stores whole cents."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", 0)
        super().__init__(max_digits=9, decimal_places=2, **kwargs)

    def prepare_value(self, value):
        if isinstance(value, int):
            return f"{value / 100:.2f}"
        return value

    def clean(self, value):
        dollars = super().clean(value)
        return None if dollars is None else int(dollars * 100)

    def has_changed(self, initial, data):
        try:
            return self.clean(data) != initial
        except forms.ValidationError:
            return True


class CommaSeparatedListField(forms.CharField):
    """A form field editing a JSON list of short strings as 'a, b, c'."""

    def prepare_value(self, value):
        if isinstance(value, list | tuple):
            return ", ".join(value)
        return value

    def to_python(self, value):
        if isinstance(value, list | tuple):
            return list(value)
        value = super().to_python(value)
        seen = []
        for item in value.split(","):
            item = " ".join(item.split())
            if item and item.lower() not in (s.lower() for s in seen):
                seen.append(item)
        return seen
