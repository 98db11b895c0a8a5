"""The admin's home page: today's front desk, scoped to the user's clinics.

The core cannot import the apps above it, so each app tells the home page what it has, the way it registers its
clinic-file section: ``needs_person(order)`` for the things that need a person now (each an ``Attention``: what,
why, since when, where to act), ``panel(order, template)`` for a section of the page (today's and tomorrow's
bookings, conversations in progress). Apps register from their admin module, which the admin loads at start-up.
Every source receives the clinics the user may see and must read only their rows (``for_user`` querysets)."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.utils import timezone

from .models import Clinic
from .tenancy import user_clinic_ids


@dataclass(frozen=True)
class Attention:
    """One thing that needs a person: ``key`` ("app.model:id") lets two sources name the same row once (the first
    source in order wins: a conversation's own entry before the alert raised about it)."""

    key: str
    kind: str  # a short class for its colour: handoff, urgent, failed, payment, manual, emr, other
    title: str  # what: "Jane Doe (+1 617-555-0123)", "Booking #12"
    reason: str  # why it needs a person, and what to do
    since: datetime
    url: str
    clinic: object
    extra: dict = field(default_factory=dict)


_NEEDS: list[tuple[int, Callable]] = []
_PANELS: list[tuple[int, str, Callable]] = []


def needs_person(order: int):
    """Register ``func(request, clinics) -> Iterable[Attention]``; lower orders come first."""

    def register(func):
        _NEEDS.append((order, func))
        _NEEDS.sort(key=lambda entry: entry[0])
        return func

    return register


def panel(order: int, template: str):
    """Register ``func(request, clinics) -> dict | None`` (a context for ``template``; None: nothing to show)."""

    def register(func):
        _PANELS.append((order, template, func))
        _PANELS.sort(key=lambda entry: entry[0])
        return func

    return register


def attention_list(request, clinics) -> list[Attention]:
    """Everything that needs a person in ``clinics``, oldest first (the longest wait on top), each row once."""
    seen, items = set(), []
    for _, source in _NEEDS:
        for item in source(request, clinics) or ():
            if item.key not in seen:
                seen.add(item.key)
                items.append(item)
    return sorted(items, key=lambda item: item.since)


def panels(request, clinics) -> Iterable[tuple[str, dict]]:
    for _, template, source in _PANELS:
        context = source(request, clinics)
        if context is not None:
            yield template, context


def clinic_today(clinic, now=None):
    """The clinic-local date now."""
    return timezone.localtime(now or timezone.now(), clinic.tz).date()


def display_phone(phone: str) -> str:
    """A number as people read it: "+1 617-555-0123" (the stored E.164 if it does not parse)."""
    import phonenumbers

    try:
        return phonenumbers.format_number(phonenumbers.parse(phone), phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    except phonenumbers.NumberParseException:
        return phone


def patient_html(name: str, phone: str):
    """A patient in a list cell: the name, then the number (kept on one line)."""
    from django.utils.html import format_html

    if name:
        return format_html('{} <span class="fd-phone">({})</span>', name, display_phone(phone))
    return format_html('<span class="fd-phone">{}</span>', display_phone(phone))


def several_clinics(user) -> bool:
    """Whether ``user`` sees more than one clinic (then lists show each row's clinic)."""
    ids = user_clinic_ids(user)
    if ids is None:
        return Clinic.objects.count() > 1
    return len(set(ids)) > 1
