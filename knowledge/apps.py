from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge"

    def ready(self):
        from medspa.clinic_file import clinic_file_section

        from .services import clinic_file_documents_load

        clinic_file_section("documents", clinic_file_documents_load, order=20, progress=True)
