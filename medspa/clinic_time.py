"""Clinic time in the back office, whatever the server's zone (UTC in production).

Django renders every aware date-time of a page (list columns, read-only fields, date filters, the date
hierarchy) in the *current* time zone. ``ClinicTimeMiddleware`` makes that the clinic's zone for the admin: the
zone of the user's clinics when they share one (nearly always); on a change page of a member of clinics in
several zones, ``medspa.admin.ClinicScopedAdmin`` switches to the row's clinic. The formats in
``medspa/formats/en`` end every date-time with the zone's abbreviation (EST, PDT), so a time is never ambiguous.
Columns that list rows of several clinics at once use ``clinic_local`` with the row's own clinic."""

import zoneinfo
from datetime import datetime

from django.utils import timezone
from django.utils.timesince import timesince

from .models import Clinic


def user_zone(user) -> zoneinfo.ZoneInfo | None:
    """The one time zone of the clinics ``user`` sees, or None (no clinic, or clinics in several zones)."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return None
    zones = list(Clinic.objects.for_user(user).order_by().values_list("timezone", flat=True).distinct()[:2])
    return zoneinfo.ZoneInfo(zones[0]) if len(zones) == 1 else None


class ClinicTimeMiddleware:
    """Admin pages render in the clinic's zone (``request.clinic_zone``; None: clinics in several zones)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.clinic_zone = None
        if not request.path.startswith("/admin/"):
            return self.get_response(request)
        request.clinic_zone = user_zone(request.user)
        if request.clinic_zone is None:
            return self.get_response(request)
        with timezone.override(request.clinic_zone):
            return self.get_response(request)


def clinic_local(moment: datetime | None, clinic, fmt: str = "%a %b %-d, %-I:%M %p %Z") -> str:
    """``moment`` on ``clinic``'s wall clock, with the zone's abbreviation: "Tue Dec 1, 3:12 AM EST"."""
    if moment is None:
        return ""
    return timezone.localtime(moment, clinic.tz).strftime(fmt)


def clinic_local_html(moment: datetime | None, clinic):
    """``clinic_local`` for a list cell: the date and the time each kept on one line, so a narrow column wraps
    between them ("Mon Nov 23," / "1:30 PM EST"), never inside."""
    from django.utils.html import format_html

    if moment is None:
        return ""
    local = timezone.localtime(moment, clinic.tz)
    return format_html(
        '<span class="fd-time"><span>{}</span> <span>{}</span></span>',
        local.strftime("%a %b %-d,"),
        local.strftime("%-I:%M %p %Z"),
    )


def age(moment: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit: "3 minutes", "2 hours" (the home page's and the lists' ages)."""
    if moment is None:
        return ""
    now = now or timezone.now()
    if (now - moment).total_seconds() < 60:
        return "less than a minute"
    return timesince(moment, now, depth=1)
