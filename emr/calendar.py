"""The built-in calendar: free slots from providers' weekly hours, minus time off and active bookings, in the
clinic's time zone. Days and hours are computed on the local wall clock and converted per slot, so DST changes
move nothing: 9:00 is 9:00 on both sides of the change."""

from datetime import datetime, timedelta

from django.db.models import Prefetch
from django.utils import timezone

from medspa.events import publish
from medspa.models import Service

from .base import WRITE, Appointment, AppointmentRequest, EmrClient, PatientInfo, Slot
from .models import EmrConfig, Provider, TimeOff, WorkingHours


class BuiltinCalendarClient(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(self, *, clinic, config: EmrConfig | None = None, now=None):
        self.clinic = clinic
        self.config = config or EmrConfig(clinic=clinic)
        self.now = now

    @classmethod
    def from_config(cls, clinic, config):
        return cls(clinic=clinic, config=config)

    def service_ref(self, service) -> str:
        return str(service.pk)  # the built-in calendar works on our own rows

    def provider_ref(self, provider) -> str:
        return str(provider.pk)

    def is_time_free(self, slot) -> bool:
        return True  # our own hold reserved it; the exclusion constraint keeps it ours

    def availability(self, *, service_ref, start, end, provider_ref=""):
        """``service_ref``: our Service id; ``provider_ref``: our Provider id (optional). Booked times come from
        the bookings app (the ``emr.busy_times`` event), each extended by the buffer."""
        service = Service.objects.for_clinic(self.clinic).get(pk=service_ref)
        providers = Provider.objects.for_clinic(self.clinic).filter(active=True, services=service)
        if provider_ref:
            providers = providers.filter(pk=provider_ref)
        now = self.now or timezone.now()
        start = max(start, now + timedelta(minutes=self.config.min_notice_minutes))
        end = min(end, now + timedelta(days=self.config.horizon_days))
        if start >= end:
            return []
        zone = self.clinic.tz
        duration = timedelta(minutes=service.duration_minutes)
        buffer = timedelta(minutes=self.config.buffer_minutes)
        step = timedelta(minutes=self.config.slot_minutes)
        slots = []
        # Every provider's weekly hours and time off in the window: two queries for all of them.
        providers = providers.prefetch_related(
            Prefetch("hours", queryset=WorkingHours.objects.all(), to_attr="weekly_hours"),
            Prefetch("time_off", queryset=TimeOff.objects.filter(start__lt=end, end__gt=start), to_attr="away"),
        )
        for provider in providers:
            hours = {}
            for row in provider.weekly_hours:
                hours.setdefault(row.weekday, []).append((row.start, row.end))
            booked = publish("emr.busy_times", provider=provider, start=start - buffer, end=end + buffer)
            busy = [(b_start, b_end + buffer) for times in booked for b_start, b_end in times]
            busy += [(t.start, t.end) for t in provider.away]
            day = start.astimezone(zone).date()
            while day <= end.astimezone(zone).date():
                for open_at, close_at in hours.get(day.weekday(), []):
                    local = datetime.combine(day, open_at)
                    closing = datetime.combine(day, close_at)
                    while local + duration <= closing:
                        slot_start = local.replace(tzinfo=zone)
                        slot_end = (local + duration).replace(tzinfo=zone)
                        if (
                            start <= slot_start
                            and slot_end <= end
                            and not any(b_start < slot_end + buffer and slot_start < b_end for b_start, b_end in busy)
                        ):
                            slots.append(
                                Slot(
                                    start=slot_start,
                                    end=slot_end,
                                    provider_ref=str(provider.pk),
                                    service_ref=str(service.pk),
                                )
                            )
                        local += step
                day += timedelta(days=1)
        return sorted(slots, key=lambda s: (s.start, s.provider_ref))

    def find_or_create_patient(self, patient: PatientInfo) -> str:
        return patient.phone  # the built-in calendar keeps patients on the booking itself

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        # The booking row is the appointment; its time was reserved by the hold (the constraint guards it).
        return Appointment(
            emr_appointment_id=f"builtin-{request.booking_id}", status="booked", start=request.slot.start
        )

    def find_appointment(self, *, booking_id, patient_id, start):
        """Nothing to look up: the booking row is the appointment, and creating it again gives the same id."""
        return None

    def cancel_appointment(self, emr_appointment_id: str) -> None:
        """Nothing to do outside our database: cancelling the booking frees the time."""

    def appointment_status(self, emr_appointment_id: str):
        """None: the booking row is the appointment; nothing outside our database can change it."""
        return None
