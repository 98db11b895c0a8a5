from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import health
from .routes import slash_optional

urlpatterns = [
    path("admin/", admin.site.urls),
    *slash_optional("healthz", health.healthz, "healthz"),
    *slash_optional("readyz", health.readyz, "readyz"),
    path("", include("django_prometheus.urls")),  # /metrics
    *slash_optional("api/schema", SpectacularAPIView.as_view(), "schema"),
    *slash_optional("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), "api-docs"),
    path("", include("leads.urls")),
    path("", include("messaging.urls")),
    path("", include("knowledge.urls")),
    path("", include("payments.urls")),
    path("", include("bookings.urls")),
    path("", include("conversation.urls")),
]
