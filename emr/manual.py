"""Manual integration for EMRs with no API (Aesthetic Record): open times come from our built-in calendar (the
clinic keeps its providers' hours here), and a paid booking becomes a task for the front desk, who enter it in
their EMR and mark it confirmed in our admin. Nothing is written to their EMR by us; the admin says so."""

from .base import MANUAL, EmrError
from .calendar import BuiltinCalendarClient


class ManualEmrClient(BuiltinCalendarClient):
    capabilities = frozenset({MANUAL})

    def create_appointment(self, request):
        raise EmrError("This clinic's EMR is manual: staff enter the appointment (bookings.services).")

    def find_appointment(self, *, booking_id, patient_id, start):
        return None  # only staff know; they record the EMR's id when they mark the booking confirmed

    def cancel_appointment(self, emr_appointment_id: str) -> None:
        raise EmrError("This clinic's EMR is manual: staff remove the appointment there.")
