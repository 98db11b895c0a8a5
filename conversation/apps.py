from django.apps import AppConfig


class ConversationConfig(AppConfig):
    name = "conversation"
    verbose_name = "Conversations"

    def ready(self):
        from . import startup_checks  # noqa: F401  (registers the system checks)
