from django.contrib import admin

from medspa.admin import PatientDataAdmin

from .models import Booking


@admin.register(Booking)
class BookingAdmin(PatientDataAdmin):
    list_display = ["__str__", "start", "clinic", "service", "provider", "status", "hold_expires_at"]
    list_filter = ["clinic", "status", "provider"]
    list_select_related = ["clinic", "service", "provider"]
    date_hierarchy = "start"
    search_fields = ["patient_phone"]
    raw_id_fields = ["conversation"]
    show_full_result_count = False

    def has_add_permission(self, request):
        return False  # bookings are made through booking_hold (the assistant, later staff tools)
