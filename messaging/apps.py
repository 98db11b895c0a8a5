from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from . import webhooks  # noqa: F401  (registers the Telnyx and Twilio handlers with the inbox)
