from django.apps import AppConfig


class EmrConfig(AppConfig):
    name = "emr"
    verbose_name = "Scheduling systems"

    def ready(self):
        from medspa.clinic_file import clinic_file_section

        from .services import providers_load

        # Always: a clinic file without providers still gets its (built-in calendar) EMR configuration.
        clinic_file_section("providers", providers_load, order=30, always=True)
