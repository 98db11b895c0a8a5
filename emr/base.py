"""The one interface every scheduling system (EMR) adapter implements.

Adapters: the built-in calendar (``emr.calendar``), Nextech (``emr.nextech``, FHIR STU3), Boulevard
(``emr.boulevard``, Client API GraphQL), Square Appointments (``emr.square_appointments``, Bookings API through the
squareup SDK), Zenoti (``emr.zenoti``, service booking REST API) and manual EMRs such as Aesthetic Record
(``emr.manual``). Times are aware
datetimes; references (``service_ref``, ``provider_ref``, ``location_ref``) are the EMR's own ids, mapped from ours by
the clinic's EMR configuration. Adapters raise ``EmrError`` (``transient`` says whether a retry may help) and
``SlotTakenError`` when the time was taken in the EMR (Nextech answers 409). Each is built by
``from_config(clinic, config)`` (``emr.services.emr_client``, which picks the class from ``EMR_CLIENTS``).

Capabilities are what the booking code asks before it writes (``bookings.services``): every client reads open
times, so only how it books (and whether it can hold a time itself) is declared.
"""

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date, datetime

WRITE = "write"  # writes appointments
MANUAL = "manual"  # a person books it in the EMR; we only record their confirmation
# holds a time in the EMR itself: ``hold_slot(slot, patient_id) -> EmrHold``, whose ``ref`` a later
# ``AppointmentRequest(hold_ref=...)`` confirms (Zenoti's "reserve a slot"); an unconfirmed hold lapses in the EMR
HOLD = "hold"

# The steps the EMR configuration page states, per clinic, as automated or not (``EmrClient.automation``).
STEPS = ("availability", "hold", "book", "cancel", "reschedule", "read status")


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    provider_ref: str
    service_ref: str = ""
    location_ref: str = ""
    emr_slot_id: str = ""
    purpose_ref: str = ""  # the EMR's own sub-kind of the service for this time, when it has one (Nextech's purpose)


@dataclass(frozen=True)
class PatientInfo:
    first_name: str
    last_name: str
    phone: str  # E.164
    email: str = ""
    # Known only when the patient gave them; an EMR that requires them to create a chart (Nextech's POST /Patient)
    # uses its other way (Nextech: a prospect created with the appointment) without them.
    birth_date: date | None = None
    postal_code: str = ""


@dataclass(frozen=True)
class AppointmentRequest:
    booking_id: int  # ours: carried into the EMR (comment / notes) so a retry can find what it already wrote
    slot: Slot
    patient: PatientInfo
    emr_patient_id: str = ""
    comment: str = ""
    hold_ref: str = ""  # an EmrHold.ref from this client's hold_slot (HOLD capability): the write confirms it


@dataclass(frozen=True)
class EmrHold:
    """A time held in the EMR itself until ``expires_at`` (None when the EMR does not say)."""

    ref: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class Appointment:
    emr_appointment_id: str
    status: str  # the EMR's own word (proposed, booked, cancelled, ...)
    start: datetime | None = None


class EmrError(Exception):
    def __init__(self, message, *, transient=False, status=None):
        super().__init__(message)
        self.transient, self.status = transient, status


class SlotTakenError(EmrError):
    """The time is no longer free in the EMR; offer the patient other times."""


class EmrConfigError(ValueError):
    """The clinic's EMR configuration cannot make a client; the message says what to fix."""


def from_credentials(cls, config, **fields):
    """``cls(**fields, **credentials)``, the credentials being the JSON object in ``config.credentials``; an
    ``EmrConfigError`` when they are not JSON or do not fit the constructor (a missing or unknown key)."""
    try:
        credentials = json.loads(config.credentials or "{}")
    except ValueError:
        raise EmrConfigError("EMR credentials are not valid JSON.") from None
    try:
        return cls(**fields, **credentials)
    except TypeError as exc:
        raise EmrConfigError(f"EMR credentials do not fit {config.get_kind_display()}: {exc}") from None


class EmrClient(ABC):
    capabilities: frozenset = frozenset()

    @classmethod
    @abstractmethod
    def from_config(cls, clinic, config):
        """The client for ``clinic`` from its ``EmrConfig`` (None for a clinic without one: the built-in calendar);
        raise ``EmrConfigError`` when the configuration cannot make one."""
        raise NotImplementedError

    def service_ref(self, service) -> str:
        """The EMR's id for one of our services (the clinic's mapping on the service)."""
        return service.emr_service_id

    def provider_ref(self, provider) -> str:
        """The EMR's id for one of our providers."""
        return provider.emr_ref

    def automation(self) -> dict:
        """For each of ``STEPS``, what happens with this clinic's configuration, in words for the admin's EMR page.
        By default from the capabilities; a client that knows better says so."""
        write = WRITE in self.capabilities
        return {
            "availability": "automatic",
            "hold": "our own hold only (the EMR is not asked to hold the time)",
            "book": "automatic" if write else "staff enter it in the EMR",
            "cancel": "automatic" if write else "staff remove it in the EMR",
            "reschedule": "automatic (the new time booked, the old cancelled)" if write else "staff, in the EMR",
            "read status": "not read from the EMR",
        }

    def connection_checks(self, *, service_ref: str, provider_refs: list, start: datetime, end: datetime) -> list:
        """What the admin's "test connection" exercises beyond open times (which it asks for itself): one
        ``(step, ok, text)`` per further step this configuration has, without writing anything."""
        return []

    def is_time_free(self, slot: Slot) -> bool:
        """Re-check, right before writing, that the EMR still offers this time."""
        offered = self.availability(
            service_ref=slot.service_ref, start=slot.start, end=slot.end, provider_ref=slot.provider_ref
        )
        return any(s.start == slot.start for s in offered)

    @abstractmethod
    def availability(self, *, service_ref: str, start: datetime, end: datetime, provider_ref: str = "") -> list[Slot]:
        """Free slots for a service between ``start`` and ``end`` (optionally one provider), sorted by start."""

    @abstractmethod
    def find_or_create_patient(self, patient: PatientInfo) -> str:
        """The EMR's patient id: found by phone, then by name, else created. "" when the EMR creates the patient
        with the appointment instead (Boulevard always; Nextech when its Patient create lacks required fields)."""

    @abstractmethod
    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        """Write the appointment; raise SlotTakenError when the time was taken meanwhile."""

    @abstractmethod
    def find_appointment(self, *, booking_id: int, patient_id: str, start: datetime) -> Appointment | None:
        """The appointment an earlier attempt for ``booking_id`` wrote, if any (a create that timed out may have
        succeeded): checked before a retry writes again."""

    @abstractmethod
    def cancel_appointment(self, emr_appointment_id: str) -> None:
        """Cancel it in the EMR."""

    def appointment_status(self, emr_appointment_id: str) -> Appointment | None:
        """The appointment as the EMR has it now (its status word and start), to follow changes staff made there
        (cancelled, moved, no-show, fulfilled); None when this EMR keeps no state of its own to read. Raise
        EmrError when it cannot be read. Adapters that can read it override this."""
        return None
