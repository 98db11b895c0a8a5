"""The hosted lead form (``/l/<slug>/``) and the script that embeds it in a clinic's website (``embed.js``).

The form page is made to be embedded: it is exempt from X-Frame-Options, and its Content-Security-Policy
``frame-ancestors`` lists our own origin and the clinic's (``Clinic.lead_origins``: its website and allowed origins,
the list CORS uses for the lead API); every other page keeps ``frame-ancestors 'none'``.
Submitting goes through ``leads.services.lead_create`` like the API. Spam: a honeypot field (a filled one looks
like a success and stores nothing) and a per-client-IP, per-clinic limit at the API's LEAD_RATE_LIMIT. Size: the
API's body and field limits (leads/limits.py), checked before the body is read, answered with the form page.

Cross-site request forgery: Django's CSRF check needs its cookie, and a form inside another site's iframe gets no
cookie (SameSite=Lax is withheld from cross-site frames; Safari and private windows block third-party cookies
outright), so every embedded submission would fail. Instead a POST must come from our own page: browsers say so
in ``Sec-Fetch-Site`` (older ones in ``Origin``), which no page on another site can forge.
"""

import json
import logging
import math
import time

import phonenumbers
from csp.constants import SELF
from csp.decorators import csp_replace
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import cache_control, never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_safe
from rest_framework.throttling import ScopedRateThrottle

from medspa.http import client_ip, origin_of
from medspa.models import Clinic
from medspa.queueing import CACHE_ERRORS

from .forms import LeadForm, valid_source_url
from .limits import BodyRefused, check_body
from .metrics import LEAD_SUBMISSIONS
from .models import Lead
from .services import lead_create

logger = logging.getLogger(__name__)

EMBED_SCRIPT_MAX_AGE = 3600


def _clinic(slug) -> Clinic:
    clinic = Clinic.objects.active().filter(slug=slug).first()
    if clinic is None:
        raise Http404("No such clinic.")
    return clinic


def form_url(clinic: Clinic) -> str:
    """The form page's absolute address (what embed.js frames and a clinic may link to)."""
    return settings.PUBLIC_BASE_URL + reverse("lead-form-slash", kwargs={"slug": clinic.slug})


def rate_limit_wait(*, clinic: Clinic, ip: str | None) -> int:
    """Count a submission; 0 while within LEAD_RATE_LIMIT for this IP and clinic, else seconds to wait.

    A fixed window in the Django cache (``add`` then ``incr``: atomic on Redis and in process memory alike). The
    rate is read the way DRF reads it for the API (``"10/minute"``). With the cache down nothing is counted (0).
    """
    rate = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get("leads")
    if not rate:
        return 0
    limit, period = ScopedRateThrottle().parse_rate(rate)
    now = time.time()
    window = int(now // period)
    key = f"leads:form-rate:{clinic.pk}:{ip or 'unknown'}:{window}"
    try:
        cache.add(key, 0, timeout=period + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, timeout=period + 1)
            count = 1
    except CACHE_ERRORS as exc:  # the patient's request is worth more than a minute of rate limiting
        logger.warning("lead form rate limit skipped: the cache is unavailable (%s)", type(exc).__name__)
        return 0
    if count <= limit:
        return 0
    return max(1, math.ceil((window + 1) * period - now))


def _cross_site(request) -> bool:
    """True for a browser POST made by another site's page. Our form posts to itself, framed or not."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not sent by a browser form (curl, a server): nothing to forge
    ours = {origin_of(request.build_absolute_uri("/")), origin_of(settings.PUBLIC_BASE_URL)}
    return origin_of(origin) not in ours


def _phone_display(number: str) -> str:
    try:
        return phonenumbers.format_number(phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        return number


def _page(request, clinic, form, *, status=200, notice="", thanks=False, consent=False):
    context = {
        "clinic": clinic,
        "form": form,
        "consent_text": form.consent_text,
        "embed": request.GET.get("embed") == "1",
        "submitted": request.method == "POST",
        "notice": notice,
        "consent": consent,
        "phone_display": _phone_display(clinic.front_desk_phone),
    }
    template = "leads/thanks.html" if thanks else "leads/form.html"
    response = render(request, template, context, status=status)
    return frameable_by_clinic(response, clinic)


def frameable_by_clinic(response, clinic):
    """The form's CSP ``frame-ancestors``: 'self' and the clinic's own sites (the origins its leads may come from)."""
    ancestors = [SELF, *sorted(clinic.lead_origins())]
    return csp_replace({"frame-ancestors": ancestors})(lambda: response)()  # django-csp's decorator, on this response


@csrf_exempt  # see the module docstring: _cross_site() refuses POSTs from other sites' pages instead
@xframe_options_exempt
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def lead_form(request, slug):
    clinic = _clinic(slug)
    if request.method != "POST":
        src = valid_source_url(request.GET.get("src", ""))  # the embedding page, passed on by embed.js
        return _page(request, clinic, LeadForm(clinic=clinic, initial={"source_url": src}))

    try:
        check_body(request, endpoint="lead_form")
    except BodyRefused as refused:
        # Nothing of the body was parsed (too large: not even read), so the form comes back empty, with a notice.
        LEAD_SUBMISSIONS.labels("invalid").inc()
        notice = (
            "Your request was too large to send. Please keep the message shorter and send again."
            if refused.status == 413
            else "Your request could not be read. Please fill in the form and send again."
        )
        return _page(request, clinic, LeadForm(clinic=clinic), status=refused.status, notice=notice)

    if _cross_site(request):
        LEAD_SUBMISSIONS.labels("origin_refused").inc()
        return _page(
            request,
            clinic,
            LeadForm(clinic=clinic),
            status=403,
            notice="This form can only be sent from its own page. Please fill it in here.",
        )

    form = LeadForm(request.POST, clinic=clinic)
    wait = rate_limit_wait(clinic=clinic, ip=client_ip(request))
    if wait:
        LEAD_SUBMISSIONS.labels("throttled").inc()
        minutes = max(1, math.ceil(wait / 60))
        call = f", or call us at {_phone_display(clinic.front_desk_phone)}" if clinic.front_desk_phone else ""
        notice = (
            "Too many requests were sent from your network in a short time. "
            f"Please wait {minutes} minute{'s' if minutes != 1 else ''} and send again{call}."
        )
        response = _page(request, clinic, form, status=429, notice=notice)
        response["Retry-After"] = str(wait)
        return response

    if form.is_spam:
        LEAD_SUBMISSIONS.labels("honeypot").inc()
        logger.info("lead form honeypot clinic=%s", clinic.pk)
        return _page(request, clinic, form, thanks=True, consent=bool(request.POST.get("sms_consent")))

    if form.is_valid():
        try:
            lead, created = lead_create(
                clinic=clinic,
                source=Lead.Source.WEB_FORM,
                ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
                **form.lead_fields(default_source_url=form_url(clinic)),
            )
        except ValidationError as exc:
            form.add_service_errors(exc)
        else:
            LEAD_SUBMISSIONS.labels("created" if created else "duplicate").inc()
            return _page(request, clinic, form, thanks=True, consent=lead.sms_consent)
    LEAD_SUBMISSIONS.labels("invalid").inc()
    return _page(request, clinic, form, status=400)


@require_safe
@cache_control(public=True, max_age=EMBED_SCRIPT_MAX_AGE)
def embed_js(request, slug):
    """``<script src=".../l/<slug>/embed.js" async></script>``: puts the form in an iframe where the tag is."""
    clinic = _clinic(slug)
    values = {
        "form_url": form_url(clinic),
        "form_origin": origin_of(settings.PUBLIC_BASE_URL),
        "title": f"Appointment request form: {clinic.name}",
        "script_path": reverse("lead-form-embed", kwargs={"slug": clinic.slug}),
    }
    return render(
        request,
        "leads/embed.js",
        {name: _js_string(value) for name, value in values.items()},
        content_type="application/javascript; charset=utf-8",
    )


def _js_string(value: str) -> str:
    """A JavaScript string literal: JSON (quotes, backslashes, non-ASCII escaped) and no ``<`` ``>`` ``&``."""
    literal = json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return mark_safe(literal)  # noqa: S308  (built above from json.dumps, nothing raw left)
