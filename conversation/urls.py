from medspa.routes import slash_optional

from . import api

urlpatterns = [
    *slash_optional(
        "api/clinics/<slug:slug>/conversations", api.ClinicConversationListView.as_view(), "clinic-conversations"
    ),
]
