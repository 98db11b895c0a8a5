"""Zenoti, through its public REST API (docs.zenoti.com, "Service Booking" workflow), with an API key per clinic.

Base URL ``https://api.zenoti.com``, header ``Authorization: apikey <key>``. The documented booking flow, one
service booking at a time:

1. ``POST /v1/bookings`` ("Create a service booking") ``{center_id, date, is_only_catalog_employees, guests: [{id,
   items: [{item: {id: service}, therapist: {id}}]}]}`` -> ``{id: booking_id, error}``;
2. ``GET /v1/bookings/{booking_id}/slots`` ("Retrieve available slots") -> ``{slots: [{Time, Available, ...}],
   future_days, next_available_day, Error}`` (one day: the booking's date);
3. ``PUT /v1/bookings/{booking_id}/slots/reserve`` ("Reserve a slot") ``{slot_time}`` -> ``{is_reserved,
   reservation_id, expiry_time, blocking_time, error}``: Zenoti's own hold, which this client offers as the
   ``HOLD`` capability (``hold_slot``);
4. ``POST /v1/bookings/{booking_id}/slots/confirm`` ("Confirm a service booking") ``{notes}`` -> ``{is_confirmed,
   invoice: {invoice_id, ...}, error}``: the appointment, known afterwards by its invoice;
5. ``PUT /v1/invoices/{invoice_id}/cancel?comments=`` ("Cancel a service booking") -> ``{success,
   is_charge_applied, error}``.

Guests: ``GET /v1/guests/search?center_id=&phone=`` and ``POST /v1/guests`` (``personal_info`` with the mobile
phone). Staff map our services to Zenoti service ids and our providers to therapist ids (``GET
/v1/centers/{center_id}/services``, ``GET /v1/centers/{center_id}/therapists``, listed by ``catalog()``); the
center is ``EmrConfig.location_ref``.

References: ``service_ref`` the Zenoti service id, ``provider_ref`` the therapist id (optional: a question naming
none is asked once per therapist our providers map to, since Zenoti's slots do not say who is free), times: Zenoti
answers slot times as the center's local wall clock without an offset; they are read (and ``slot_time`` written)
in the clinic's time zone.

UNVERIFIED (the reference describes the fields; we have not run it against a Zenoti account):

* a booking created only to list slots, without a guest id (availability is asked before we know the patient);
  the booking is never reserved or confirmed, so nothing is written;
* the guest search parameter ``phone`` matching the 10-digit national number (the reference lists ``phone`` but
  not its format); a created guest's mobile phone is ``{country_code: 225, number}`` as "Create a guest" says;
* the confirm's ``notes`` appearing as the appointment group's ``notes`` in "List all appointments of a guest"
  (``GET /v1/guests/{guest_id}/appointments?start_date=&end_date=``), which ``find_appointment`` reads to find
  what an earlier, timed-out confirm wrote;
* slot durations: the slot answer carries none, so a slot lasts ``duration_minutes`` (60 unless configured).

Errors: 429, 5xx and transport failures are retried with exponential backoff (injectable ``sleep``), then
``EmrError(transient=True)``; 4xx are permanent. A reserve answered ``is_reserved: false`` (or an error) is
``SlotTakenError``, as is a confirm refused because the reservation is gone. Logs carry operation names, Zenoti
booking / invoice ids and statuses only, never names, phones or emails.
"""

import logging
import re
import time
from datetime import datetime, timedelta

import httpx

from .base import (
    HOLD,
    WRITE,
    Appointment,
    AppointmentRequest,
    EmrClient,
    EmrConfigError,
    EmrError,
    EmrHold,
    PatientInfo,
    Slot,
    SlotTakenError,
    from_credentials,
)
from .models import Provider

logger = logging.getLogger(__name__)

BASE_URL = "https://api.zenoti.com"
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
US_COUNTRY_CODE = 225  # "Create a guest": "country_code as 225 (for the United States of America)"
VOIDED = 99  # invoice_status: Open = 0, Processed = 1, ..., Closed = 4, NotSpecified = 11, Voided = 99
GONE_WORDS = re.compile(r"expired|not available|unavailable|no longer|already booked|reserv", re.IGNORECASE)


def _note(booking_id) -> str:
    return f"medspa booking {booking_id}"


def _error_text(answer) -> str:
    """Zenoti's ``error`` (or ``Error``) object as "code: message"; "" when there is none."""
    if not isinstance(answer, dict):
        return ""
    error = answer.get("error") or answer.get("Error")
    if not error:
        return ""
    if isinstance(error, dict):
        code, message = error.get("code", ""), error.get("message") or error.get("error_message") or ""
        return f"{code}: {message}" if code and message else str(code or message)
    return str(error)


class ZenotiClient(EmrClient):
    capabilities = frozenset({WRITE, HOLD})

    def __init__(
        self,
        *,
        api_key,
        center_id,
        base_url=BASE_URL,
        duration_minutes=60,
        timeout=10.0,
        max_attempts=3,
        sleep=time.sleep,
        transport=None,
        zone=None,
        therapists_for=None,
    ):
        """``zone``: the center's time zone (the clinic's), in which Zenoti's offset-less times are read and
        written; without one, the zone of each question's ``start``. ``therapists_for(service_ref)``: the therapist
        ids to ask when a question names none (Zenoti's slots do not say who is free, so each therapist is asked
        in turn and the slots carry their id); without it such a question is asked once, for anyone."""
        if not api_key or not center_id:
            raise EmrConfigError("Zenoti needs an API key (credentials) and the center id (EMR location id).")
        self.center_id = center_id
        self.zone = zone
        self.therapists_for = therapists_for
        self.duration = timedelta(minutes=int(duration_minutes))
        self.max_attempts = max(1, int(max_attempts))
        self.sleep = sleep
        self._http = httpx.Client(
            base_url=(base_url or BASE_URL).rstrip("/"),
            timeout=timeout,
            transport=transport,
            headers={"Authorization": f"apikey {api_key}", "Accept": "application/json"},
        )

    @classmethod
    def from_config(cls, clinic, config):
        """Credentials ``{api_key}`` (optionally ``base_url``, ``duration_minutes``); the center is
        ``location_ref``."""

        def therapists_for(service_ref):
            """Our active providers mapped to a Zenoti therapist who do the service mapped to ``service_ref``."""
            rows = Provider.objects.for_clinic(clinic).filter(active=True, services__emr_service_id=service_ref)
            return sorted(set(rows.exclude(emr_ref="").values_list("emr_ref", flat=True)))

        return from_credentials(
            cls, config, center_id=config.location_ref, zone=clinic.tz, therapists_for=therapists_for
        )

    def __repr__(self):  # never the key
        return f"<ZenotiClient center={self.center_id}>"

    def close(self):
        self._http.close()

    # --- transport ---

    def _request(self, operation, method, path, **kwargs):
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                logger.warning("zenoti %s: %s", operation, type(exc).__name__)
                error = EmrError(f"Zenoti {operation}: {type(exc).__name__}", transient=True)
            else:
                status = response.status_code
                if status < 400:
                    try:
                        return response.json()
                    except ValueError:
                        raise EmrError(
                            f"Zenoti {operation}: unreadable answer", transient=True, status=status
                        ) from None
                transient = status == 429 or status >= 500
                logger.warning("zenoti %s: HTTP %s (transient=%s)", operation, status, transient)
                try:
                    detail = _error_text(response.json())
                except ValueError:
                    detail = ""
                error = EmrError(
                    f"Zenoti {operation} HTTP {status}" + (f": {detail}" if detail else ""),
                    transient=transient,
                    status=status,
                )
            if not error.transient or attempt == self.max_attempts:
                raise error
            self.sleep(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _create_booking(self, *, day, service_ref, provider_ref="", guest_id=""):
        item = {"item": {"id": service_ref}}
        if provider_ref:
            item["therapist"] = {"id": provider_ref}
        guest = {"items": [item]}
        if guest_id:
            guest = {"id": guest_id, **guest}
        body = {
            "center_id": self.center_id,
            "date": day.isoformat(),
            "is_only_catalog_employees": False,
            "guests": [guest],
        }
        answer = self._request("create booking", "POST", "/v1/bookings", json=body)
        if _error_text(answer) or not answer.get("id"):
            raise EmrError(f"Zenoti create booking: {_error_text(answer) or 'no booking id'}")
        return answer["id"]

    # --- reading ---

    def availability(self, *, service_ref, start, end, provider_ref=""):
        if start.tzinfo is None or end.tzinfo is None:
            raise EmrError("availability needs aware datetimes")
        if start >= end:
            return []
        if provider_ref or self.therapists_for is None:
            therapists = [provider_ref]
        else:
            # No provider mapped yet: asked once for anyone (the connection test still reaches Zenoti; such slots
            # name no provider, so the assistant offers none of them until staff map the therapists).
            therapists = list(self.therapists_for(service_ref)) or [""]
        zone = self.zone or start.tzinfo
        slots = []
        for therapist in therapists:
            day, last = start.astimezone(zone).date(), end.astimezone(zone).date()
            while day <= last:
                booking_id = self._create_booking(day=day, service_ref=service_ref, provider_ref=therapist)
                answer = self._request("slots", "GET", f"/v1/bookings/{booking_id}/slots")
                for item in answer.get("slots") or []:
                    if not item.get("Available") or not item.get("Time"):
                        continue
                    begins = datetime.fromisoformat(item["Time"])
                    begins = begins.replace(tzinfo=zone) if begins.tzinfo is None else begins
                    if begins.date() == day and start <= begins < end:
                        slots.append(
                            Slot(
                                start=begins,
                                end=begins + self.duration,
                                provider_ref=therapist,
                                service_ref=service_ref,
                                location_ref=self.center_id,
                            )
                        )
                day += timedelta(days=1)
        return sorted(slots, key=lambda s: (s.start, s.provider_ref))

    # --- guests ---

    def find_or_create_patient(self, patient: PatientInfo) -> str:
        national = re.sub(r"\D", "", patient.phone)[-10:]
        found = self._request(
            "guest search", "GET", "/v1/guests/search", params={"center_id": self.center_id, "phone": national}
        )
        guests = found.get("guests") or []
        if guests and guests[0].get("id"):
            return guests[0]["id"]
        info = {
            "first_name": patient.first_name,
            "last_name": patient.last_name,
            "mobile_phone": {"country_code": US_COUNTRY_CODE, "number": national},
        }
        if patient.email:
            info["email"] = patient.email
        created = self._request(
            "create guest", "POST", "/v1/guests", json={"center_id": self.center_id, "personal_info": info}
        )
        if not created.get("id"):
            raise EmrError(f"Zenoti create guest: {_error_text(created) or 'no guest id'}")
        return created["id"]

    # --- holding and writing ---

    def hold_slot(self, slot: Slot, patient_id: str) -> EmrHold:
        """Zenoti's "reserve a slot": a service booking for the patient at ``slot.start``, reserved until
        Zenoti's ``expiry_time``. ``SlotTakenError`` when Zenoti will not reserve it."""
        local = slot.start.astimezone(self.zone or slot.start.tzinfo)
        booking_id = self._create_booking(
            day=local.date(), service_ref=slot.service_ref, provider_ref=slot.provider_ref, guest_id=patient_id
        )
        answer = self._request(
            "reserve",
            "PUT",
            f"/v1/bookings/{booking_id}/slots/reserve",
            json={"slot_time": local.replace(tzinfo=None).isoformat(timespec="seconds")},
        )
        if not answer.get("is_reserved") or _error_text(answer):
            logger.info("zenoti reserve refused zenoti_booking=%s", booking_id)
            raise SlotTakenError(f"Zenoti did not reserve the time: {_error_text(answer) or 'is_reserved false'}")
        expires = answer.get("expiry_time")
        expires_at = datetime.fromisoformat(expires) if expires else None
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=local.tzinfo)
        logger.info("zenoti reserved zenoti_booking=%s", booking_id)
        return EmrHold(ref=booking_id, expires_at=expires_at)

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        """Confirm the held booking (``request.hold_ref``), or reserve the time first when nothing holds it."""
        booking_id = request.hold_ref or self.hold_slot(request.slot, request.emr_patient_id).ref
        answer = self._request(
            "confirm",
            "POST",
            f"/v1/bookings/{booking_id}/slots/confirm",
            json={"notes": _note(request.booking_id)},
        )
        problem = _error_text(answer)
        invoice = (answer.get("invoice") or {}).get("invoice_id") or ""
        if not answer.get("is_confirmed") or not invoice:
            if GONE_WORDS.search(problem):
                raise SlotTakenError(f"Zenoti did not confirm: {problem}")
            raise EmrError(f"Zenoti confirm: {problem or 'not confirmed'}")
        logger.info("zenoti confirmed booking=%s zenoti_booking=%s invoice=%s", request.booking_id, booking_id, invoice)
        return Appointment(emr_appointment_id=invoice, status="confirmed", start=request.slot.start)

    def find_appointment(self, *, booking_id, patient_id, start):
        """The guest's appointment at ``start`` whose notes carry our booking id ("List all appointments of a
        guest": ``appointments[]`` groups with ``invoice_id``, ``invoice_status``, ``notes`` and
        ``appointment_services[].start_time``); a voided invoice (status 99) is no appointment."""
        if not patient_id:
            return None
        zone = self.zone or start.tzinfo
        day = start.astimezone(zone).date().isoformat()
        answer = self._request(
            "guest appointments",
            "GET",
            f"/v1/guests/{patient_id}/appointments",
            params={"start_date": day, "end_date": day},
        )
        for group in answer.get("appointments") or []:
            if _note(booking_id) not in (group.get("notes") or "") or group.get("invoice_status") == VOIDED:
                continue
            for service in group.get("appointment_services") or []:
                when = service.get("start_time")
                if not when or not group.get("invoice_id"):
                    continue
                moment = datetime.fromisoformat(when)
                moment = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment
                if moment == start:
                    return Appointment(emr_appointment_id=group["invoice_id"], status="confirmed", start=start)
        return None

    def cancel_appointment(self, emr_appointment_id: str) -> None:
        answer = self._request(
            "cancel",
            "PUT",
            f"/v1/invoices/{emr_appointment_id}/cancel",
            params={"comments": "Cancelled by the patient by text"},
        )
        if not answer.get("success"):
            raise EmrError(f"Zenoti cancel: {_error_text(answer) or 'not cancelled'}")
        logger.info("zenoti cancelled invoice=%s", emr_appointment_id)

    # --- for staff mapping ---

    def catalog(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(services, therapists) of the center: ``[(id, name), ...]`` each."""
        services = self._request("services", "GET", f"/v1/centers/{self.center_id}/services").get("services") or []
        therapists = self._request("therapists", "GET", f"/v1/centers/{self.center_id}/therapists")
        people = []
        for person in therapists.get("therapists") or []:
            info = person.get("personal_info") or {}
            name = " ".join(p for p in (info.get("first_name"), info.get("last_name")) if p) or person.get("name", "")
            people.append((person.get("id", ""), name))
        return [(s.get("id", ""), s.get("name", "")) for s in services], people
