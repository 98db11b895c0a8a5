from medspa.routes import slash_optional

from . import api

urlpatterns = [
    *slash_optional("api/clinics/<slug:slug>/bookings", api.ClinicBookingListView.as_view(), "clinic-bookings"),
]
