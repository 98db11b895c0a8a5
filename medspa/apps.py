from django.apps import AppConfig


class MedspaConfig(AppConfig):
    """The tenant core: clinics, staff membership, the service catalog, audit log."""

    name = "medspa"
    verbose_name = "Clinics"

    def ready(self):
        from . import checks  # noqa: F401  (registers the system checks)
