from medspa.routes import slash_optional

from . import api

urlpatterns = [
    *slash_optional("api/clinics/<slug:slug>/knowledge", api.KnowledgeView.as_view(), "clinic-knowledge"),
    *slash_optional(
        "api/clinics/<slug:slug>/knowledge/search", api.KnowledgeSearchView.as_view(), "clinic-knowledge-search"
    ),
]
