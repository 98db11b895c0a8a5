"""Guarded operator endpoints: ``/metrics`` for Prometheus, and the OpenAPI schema with its Swagger UI page.

``/metrics`` answers a scrape that passes every guard configured: ``METRICS_TOKEN`` (``Authorization: Bearer``,
compared in constant time) and ``METRICS_ALLOWED_IPS`` (addresses or networks, matched against
``medspa.http.client_ip``, so behind ``TRUSTED_PROXY_COUNT`` proxies). With neither set it is open, as in
development; ``manage.py check --deploy`` warns about that when DEBUG is off (``medspa.checks``).

``/api/schema`` and ``/api/docs`` are for staff (``is_staff``, by session or token) unless ``API_DOCS_PUBLIC``; a
public caller who is not staff gets the schema of what it may call, i.e. lead capture without the staff endpoints.
docs/DECISIONS.md, "CSP, metrics and API docs".
"""

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_prometheus.exports import ExportToDjangoView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated
from rest_framework.permissions import BasePermission

from .http import client_ip


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    """``METRICS_ALLOWED_IPS`` as networks (a bare address is a /32 or /128); ValueError names a bad entry."""
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"METRICS_ALLOWED_IPS: {entry!r} is not an IP address or network") from exc
    return tuple(networks)


def metrics_networks():
    return _networks(tuple(e for e in settings.METRICS_ALLOWED_IPS if e.strip()))


def _bearer(request) -> str:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else ""


def _ip_allowed(request) -> bool:
    try:
        address = ipaddress.ip_address(client_ip(request) or "")
    except ValueError:
        return False
    try:
        networks = metrics_networks()
    except ValueError:
        return False  # a bad entry (system check medspa.E005) lets nobody in rather than everybody
    return any(address in network for network in networks)


@require_GET
@never_cache
def metrics(request):
    """django-prometheus's exporter behind METRICS_TOKEN and/or METRICS_ALLOWED_IPS."""
    token = settings.METRICS_TOKEN
    if settings.METRICS_ALLOWED_IPS and not _ip_allowed(request):
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    if token and not hmac.compare_digest(_bearer(request).encode(), token.encode()):
        response = HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return ExportToDjangoView(request)


def _is_staff(request) -> bool:
    return bool(request.user and request.user.is_staff)


class ApiDocsPermission(BasePermission):
    """Staff, or anyone when API_DOCS_PUBLIC is on (read at request time)."""

    def has_permission(self, request, view):
        return settings.API_DOCS_PUBLIC or _is_staff(request)


class ApiSchemaView(SpectacularAPIView):
    permission_classes = [ApiDocsPermission]

    def _get_schema_response(self, request):
        # Staff see every endpoint; anyone else (API_DOCS_PUBLIC) only those whose permissions they pass.
        self.serve_public = _is_staff(request)
        return super()._get_schema_response(request)


class ApiDocsView(SpectacularSwaggerView):
    """Swagger UI from our static files, its inline script and style with the CSP nonce."""

    permission_classes = [ApiDocsPermission]
    template_name = "medspa/swagger_ui.html"

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):  # a browser that is not signed in: the admin's login, then back here
            return redirect_to_login(self.request.get_full_path(), reverse("admin:login"))
        return super().handle_exception(exc)
