from django.apps import AppConfig


class ConversationConfig(AppConfig):
    name = "conversation"
    verbose_name = "Conversations"

    def ready(self):
        from celery import signals

        from . import intent, startup_checks  # noqa: F401  (startup_checks registers the system checks)

        signals.worker_ready.connect(intent.warm_up, weak=False)
