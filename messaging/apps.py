from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    verbose_name = "Messaging"

    def ready(self):
        from medspa.clinic_file import clinic_file_section

        from . import webhooks  # noqa: F401  (registers the Telnyx and Twilio handlers with the inbox)
        from .services import phone_numbers_load

        clinic_file_section("phone_numbers", phone_numbers_load, order=10)
