from medspa.routes import slash_optional

from . import api

urlpatterns = [
    *slash_optional("api/leads", api.LeadCreateView.as_view(), "lead-create"),
    *slash_optional("api/clinics/<slug:slug>/leads", api.ClinicLeadListView.as_view(), "clinic-leads"),
]
