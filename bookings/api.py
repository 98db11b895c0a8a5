from rest_framework import serializers

from medspa.api import ClinicScopedListView

from .models import Booking


class BookingSerializer(serializers.ModelSerializer):
    service = serializers.SlugRelatedField(slug_field="name", read_only=True)
    provider = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Booking
        fields = [
            "id",
            "status",
            "service",
            "provider",
            "start",
            "end",
            "patient_name",
            "patient_phone",
            "conversation",
            "hold_expires_at",
            "deposit_cents",
            "emr_appointment_id",
            "created_at",
            "updated_at",
        ]


class ClinicBookingListView(ClinicScopedListView):
    """GET /api/clinics/{slug}/bookings: the clinic's bookings, newest first (staff token); ``?status=`` filters."""

    model = Booking
    serializer_class = BookingSerializer

    def get_queryset(self):
        queryset = super().get_queryset().select_related("service", "provider")
        status = self.request.query_params.get("status")
        return queryset.filter(status=status) if status else queryset
