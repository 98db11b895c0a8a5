"""CORS for the public lead endpoint: an origin is allowed when an active clinic lists it.

django-cors-headers asks ``check_request_enabled`` receivers before answering a cross-origin request (including
the preflight, which carries no body and so no clinic). The view then checks that the Origin belongs to the very
clinic the lead is for (``origin_allowed_for``), so one clinic's site cannot post another clinic's leads.
"""

import contextlib
import re

from corsheaders.signals import check_request_enabled
from django.conf import settings
from django.core.cache import cache
from django.dispatch import receiver

from medspa.http import origin_of
from medspa.models import Clinic
from medspa.queueing import CACHE_ERRORS

CACHE_KEY = "leads:cors-origins"
CACHE_SECONDS = 60


def all_clinic_origins() -> frozenset[str]:
    try:
        origins = cache.get(CACHE_KEY)
    except CACHE_ERRORS:  # the cache is a shortcut: the clinics' rows answer without it
        origins = None
    if origins is None:
        origins = set()
        for clinic in Clinic.objects.active().only("website", "allowed_origins"):
            origins |= clinic.lead_origins()
        origins = frozenset(origins)
        with contextlib.suppress(*CACHE_ERRORS):
            cache.set(CACHE_KEY, origins, CACHE_SECONDS)
    return origins


def origin_allowed_for(clinic: Clinic, origin: str) -> bool:
    """No Origin header (server-to-server, same-origin form post) or our own site or one the clinic lists."""
    if not origin:
        return True
    normalised = origin_of(origin)
    return normalised in clinic.lead_origins() or normalised == origin_of(settings.PUBLIC_BASE_URL)


@receiver(check_request_enabled)
def allow_clinic_origins(sender, request, **kwargs):
    # django-cors-headers lets a True here override CORS_URLS_REGEX, so the path is checked here as well.
    if not re.match(settings.CORS_URLS_REGEX, request.path_info):
        return False
    return origin_of(request.headers.get("Origin", "")) in all_clinic_origins()
