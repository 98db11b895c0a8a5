from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self):
        from . import webhooks  # noqa: F401  (registers the Square and sandbox handlers with the inbox)
