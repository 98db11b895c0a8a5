from django.urls import path

from medspa.routes import slash_optional

from . import api, views

urlpatterns = [
    *slash_optional("api/leads", api.LeadCreateView.as_view(), "lead-create"),
    *slash_optional("api/clinics/<slug:slug>/leads", api.ClinicLeadListView.as_view(), "clinic-leads"),
    # The hosted form a clinic links to or embeds (embed.js frames /l/<slug>/?embed=1).
    *slash_optional("l/<slug:slug>", views.lead_form, "lead-form"),
    path("l/<slug:slug>/embed.js", views.embed_js, name="lead-form-embed"),
]
