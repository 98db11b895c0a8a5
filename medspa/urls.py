from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from . import health, ops, two_factor
from .routes import slash_optional

urlpatterns = [
    # The front door is the back office: the admin's home is today's front desk (its login first).
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
    path("admin/two-factor/", include(two_factor.urlpatterns())),  # before the admin: its catch-all is a 404
    path("admin/outcomes/", include("reports.urls")),  # the outcomes page, in the admin (reports/views.py)
    path("admin/", admin.site.urls),
    *slash_optional("healthz", health.healthz, "healthz"),
    *slash_optional("readyz", health.readyz, "readyz"),
    # Behind METRICS_TOKEN / METRICS_ALLOWED_IPS; staff-only schema and docs unless API_DOCS_PUBLIC (medspa/ops.py).
    path("metrics", ops.metrics, name="prometheus-django-metrics"),
    *slash_optional("api/schema", ops.ApiSchemaView.as_view(), "schema"),
    *slash_optional("api/docs", ops.ApiDocsView.as_view(url_name="schema"), "api-docs"),
    path("", include("leads.urls")),
    path("", include("messaging.urls")),
    path("", include("knowledge.urls")),
    path("", include("payments.urls")),
    path("", include("bookings.urls")),
    path("", include("conversation.urls")),
]
