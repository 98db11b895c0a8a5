from django.urls import path

from medspa.routes import slash_optional

from . import views, webhooks

app_name = "payments"

urlpatterns = [
    *slash_optional("webhooks/square", webhooks.SquareWebhook.as_view(), "square-webhook"),
    path("pay/<str:token>/", views.sandbox_checkout, name="sandbox-checkout"),
    path("pay/<str:token>/thanks/", views.thanks, name="thanks"),
]
