"""Square Appointments, through the official SDK (``squareup``, module ``square``): the Bookings API.

Calls (Square's API reference, "Bookings API"): ``POST /v2/bookings/availability/search`` (SearchAvailability),
``POST /v2/bookings`` (CreateBooking), ``GET /v2/bookings/{id}`` (RetrieveBooking), ``POST /v2/bookings/{id}/cancel``
(CancelBooking), ``GET /v2/bookings`` (ListBookings, to find what an earlier attempt wrote), and the Customers API
(``POST /v2/customers/search`` by exact phone, ``POST /v2/customers``). The admin's "fetch from Square" lists the
bookable services (catalog ``ITEM``s whose ``product_type`` is ``APPOINTMENTS_SERVICE``: their variations are what
a booking names) and the bookable team members (``GET /v2/bookings/team-member-booking-profiles``).

References: ``service_ref`` is the catalog item *variation* id (``Service.emr_service_id``), ``provider_ref`` the
team member id (``Provider.emr_ref``, optional: any bookable member), the location is ``EmrConfig.location_ref``
or else the deposit settings' location. Booking on the seller's behalf needs the seller to subscribe to
Appointments Plus or Premium (Square's reference on CreateBooking / CancelBooking); without it Square answers 403,
which is a permanent ``EmrError`` naming that.

Rules Square states and this client follows: SearchAvailability's ``start_at_range`` must be at least 24 hours and
at most 32 days long (a shorter question is widened to 24 hours and the answer filtered, a longer one asked in
32-day pieces); CreateBooking needs the ``service_variation_version`` of the segment, which only the availability
answer carries, so ``create_appointment`` asks for the time again and books the segments Square offered for it
(that is also the last "is it still free" check); CancelBooking takes the ``booking_version`` read by
RetrieveBooking. CreateBooking is idempotent by ``idempotency_key`` (ours: ``medspa-booking-<booking id>``), so a
retry after a timeout returns the booking the first attempt made; ``find_appointment`` also looks for our
``seller_note`` (``medspa booking <id>``) among the customer's bookings at that time.

Errors: 408/409/429/5xx and transport failures are retried with exponential backoff (the SDK's own retries are off:
``max_retries=0``), then ``EmrError(transient=True)``; other 4xx are permanent. A create refused because the time
is gone (the time no longer offered, or an error whose detail says it is unavailable) is ``SlotTakenError``.
Logs carry operation names, HTTP statuses and Square's error codes: never names, phones or emails (Square may echo
them in an error detail, which is therefore not logged).
"""

import logging
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
from django.conf import settings
from square import Square
from square.core.api_error import ApiError
from square.environment import SquareEnvironment

from medspa.events import publish

from .base import (
    WRITE,
    Appointment,
    AppointmentRequest,
    EmrClient,
    EmrConfigError,
    EmrError,
    PatientInfo,
    Slot,
    SlotTakenError,
    from_credentials,
)

logger = logging.getLogger(__name__)

TRANSIENT_STATUS = {408, 409, 425, 429}
MIN_RANGE = timedelta(hours=24)  # SearchAvailability: "at least 24 hours and at most 32 days long"
MAX_RANGE = timedelta(days=32)
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
CANCELLED = {"CANCELLED_BY_CUSTOMER", "CANCELLED_BY_SELLER", "DECLINED", "NO_SHOW"}
TAKEN_WORDS = re.compile(r"not available|unavailable|no longer available|already booked", re.IGNORECASE)
_PHONE = re.compile(r"\+?\d[\d\s().-]{6,}\d")


def _note(booking_id) -> str:
    return f"medspa booking {booking_id}"


def _scrub(text: str) -> str:
    return _PHONE.sub("[redacted]", text)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class SquareAppointmentsClient(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(
        self,
        *,
        access_token,
        location_id,
        environment="sandbox",
        base_url="",
        timeout=10.0,
        max_attempts=3,
        sleep=time.sleep,
        transport=None,
    ):
        """``base_url`` overrides the environment's URL; ``transport`` is an ``httpx`` transport (tests fake the
        HTTP exchange with one)."""
        if not access_token or not location_id:
            raise EmrConfigError("Square Appointments needs an access token and a location id.")
        self.access_token, self.location_id = access_token, location_id
        self.base_url = (base_url or "").rstrip("/") or (
            SquareEnvironment.PRODUCTION.value if environment == "production" else SquareEnvironment.SANDBOX.value
        )
        self.timeout = float(timeout)
        self.max_attempts = max(1, int(max_attempts))
        self.sleep = sleep
        self.transport = transport

    @classmethod
    def from_config(cls, clinic, config):
        """The EMR configuration's own credentials (``{access_token, environment}``) when it has them; otherwise
        the Square account the clinic's deposit settings hold, asked through the ``emr.square_credentials`` event
        (payments owns those settings; emr may not import it). The location is ``location_ref``, else the deposit
        settings' location."""
        own = from_credentials(dict, config) if (config.credentials or "").strip() else {}
        shared = {}
        if not own.get("access_token") or not (config.location_ref or own.get("location_id")):
            shared = next((answer for answer in publish("emr.square_credentials", clinic=clinic) if answer), {})
        token = own.get("access_token") or shared.get("access_token") or ""
        location = config.location_ref or own.get("location_id") or shared.get("location_id") or ""
        if not token or not location:
            raise EmrConfigError(
                "Square Appointments needs a Square access token and location: enter them here, or in the clinic's "
                "deposit (payment) settings."
            )
        return cls(
            access_token=token,
            location_id=location,
            environment=own.get("environment") or settings.SQUARE_ENVIRONMENT,
            base_url=own.get("base_url") or settings.SQUARE_BASE_URL,
        )

    def __repr__(self):  # never the token
        return f"<SquareAppointmentsClient {self.base_url} location={self.location_id}>"

    # --- transport ---

    def _call(self, operation: str, call):
        """``call(client, request_options)`` on a fresh SDK client, retried on transient failures; every failure
        becomes an ``EmrError``."""
        options = {"max_retries": 0, "timeout_in_seconds": self.timeout}
        for attempt in range(1, self.max_attempts + 1):
            http = httpx.Client(timeout=self.timeout, follow_redirects=False, transport=self.transport)
            client = Square(token=self.access_token, base_url=self.base_url, timeout=self.timeout, httpx_client=http)
            try:
                return call(client, options)
            except ApiError as exc:
                error = self._error(operation, exc)
            except httpx.HTTPError as exc:
                logger.warning("square appointments %s: %s", operation, type(exc).__name__)
                error = EmrError(f"Square {operation}: {type(exc).__name__}", transient=True)
            finally:
                http.close()
            if not error.transient or attempt == self.max_attempts:
                raise error
            self.sleep(min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, operation, exc: ApiError) -> EmrError:
        status = exc.status_code
        codes, details = [], []
        for item in exc.errors or []:
            codes.append(str(getattr(item, "code", "") or ""))
            details.append(str(getattr(item, "detail", "") or ""))
        code = next((c for c in codes if c), "")
        transient = status is None or status >= 500 or status in TRANSIENT_STATUS
        if status is not None and 200 <= status < 300:
            transient = True  # an answer the SDK could not read: the call may have worked, ask again
        logger.warning("square appointments %s: HTTP %s %s (transient=%s)", operation, status, code, transient)
        detail = "; ".join(_scrub(d) for d in details if d)
        message = f"Square {operation} HTTP {status}" + (f" {code}" if code else "") + (f": {detail}" if detail else "")
        if status == 403:
            message += " (booking on the seller's behalf needs Square Appointments Plus or Premium)"
        if operation == "CreateBooking" and status in (400, 409) and TAKEN_WORDS.search(" ".join(details)):
            return SlotTakenError(message, status=status)
        return EmrError(message, transient=transient, status=status)

    # --- reading ---

    def _availabilities(self, *, service_ref, start, end, provider_ref=""):
        """Square's availabilities starting in [start, end), asked in pieces Square accepts."""
        segment = {"service_variation_id": service_ref}
        if provider_ref:
            segment["team_member_id_filter"] = {"any": [provider_ref]}
        found, low = [], start
        while low < end:
            high = min(end, low + MAX_RANGE)
            ask_high = max(high, low + MIN_RANGE)
            query = {
                "filter": {
                    "start_at_range": {"start_at": _iso(low), "end_at": _iso(ask_high)},
                    "location_id": self.location_id,
                    "segment_filters": [segment],
                }
            }
            answer = self._call(
                "SearchAvailability",
                lambda c, o, q=query: c.bookings.search_availability(query=q, request_options=o),
            )
            for item in answer.availabilities or []:
                if item.start_at and start <= _parse(item.start_at) < end:
                    found.append(item)
            low = high
        return found

    def availability(self, *, service_ref, start, end, provider_ref=""):
        if start.tzinfo is None or end.tzinfo is None:
            raise EmrError("availability needs aware datetimes")
        if start >= end:
            return []
        slots = {}
        for item in self._availabilities(service_ref=service_ref, start=start, end=end, provider_ref=provider_ref):
            segments = item.appointment_segments or []
            begins = _parse(item.start_at)
            minutes = sum((s.duration_minutes or 0) + (s.intermission_minutes or 0) for s in segments)
            member = segments[0].team_member_id if segments else provider_ref
            slot = Slot(
                start=begins,
                end=begins + timedelta(minutes=minutes or 60),
                provider_ref=member,
                service_ref=service_ref,
                location_ref=item.location_id or self.location_id,
            )
            slots[(slot.start, slot.provider_ref)] = slot
        return sorted(slots.values(), key=lambda s: (s.start, s.provider_ref))

    # --- patients ---

    def find_or_create_patient(self, patient: PatientInfo) -> str:
        """The Square customer with this exact phone number, else a new one (idempotent by the phone)."""
        query = {"filter": {"phone_number": {"exact": patient.phone}}}
        found = self._call("SearchCustomers", lambda c, o: c.customers.search(query=query, limit=1, request_options=o))
        if found.customers:
            return found.customers[0].id
        fields = {"given_name": patient.first_name, "family_name": patient.last_name, "phone_number": patient.phone}
        if patient.email:
            fields["email_address"] = patient.email
        key = f"medspa-customer-{patient.phone}"
        created = self._call(
            "CreateCustomer",
            lambda c, o: c.customers.create(idempotency_key=key, **fields, request_options=o),
        )
        if created.customer is None or not created.customer.id:
            raise EmrError("Square CreateCustomer: no customer in the answer", transient=True)
        return created.customer.id

    # --- appointments ---

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        slot = request.slot
        offered = [
            item
            for item in self._availabilities(
                service_ref=slot.service_ref,
                start=slot.start,
                end=slot.start + timedelta(minutes=1),
                provider_ref=slot.provider_ref,
            )
            if _parse(item.start_at) == slot.start
        ]
        if not offered:
            raise SlotTakenError("Square no longer offers this time")
        segments = [
            {
                key: value
                for key, value in {
                    "team_member_id": s.team_member_id,
                    "service_variation_id": s.service_variation_id,
                    "service_variation_version": s.service_variation_version,
                    "duration_minutes": s.duration_minutes,
                }.items()
                if value is not None
            }
            for s in offered[0].appointment_segments or []
        ]
        booking = {
            "start_at": _iso(slot.start),
            "location_id": self.location_id,
            "customer_id": request.emr_patient_id,
            "appointment_segments": segments,
            "seller_note": _note(request.booking_id),
        }
        if request.comment:
            booking["customer_note"] = request.comment
        answer = self._call(
            "CreateBooking",
            lambda c, o: c.bookings.create(
                booking=booking, idempotency_key=f"medspa-booking-{request.booking_id}", request_options=o
            ),
        )
        made = answer.booking
        if made is None or not made.id:
            raise EmrError("Square CreateBooking: no booking in the answer", transient=True)
        logger.info("square appointments booked booking=%s square_booking=%s", request.booking_id, made.id)
        return Appointment(
            emr_appointment_id=made.id,
            status=made.status or "ACCEPTED",
            start=_parse(made.start_at) if made.start_at else slot.start,
        )

    def find_appointment(self, *, booking_id, patient_id, start):
        """The customer's booking at ``start`` that carries our note (ListBookings around that time)."""
        if not patient_id:
            return None
        found = self._call(
            "ListBookings",
            lambda c, o: list(
                c.bookings.list(
                    customer_id=patient_id,
                    location_id=self.location_id,
                    start_at_min=_iso(start - timedelta(minutes=1)),
                    start_at_max=_iso(start + timedelta(minutes=1)),
                    request_options=o,
                )
            ),
        )
        for item in found:
            if item.seller_note == _note(booking_id) and item.status not in CANCELLED:
                return Appointment(emr_appointment_id=item.id, status=item.status or "", start=_parse(item.start_at))
        return None

    def cancel_appointment(self, emr_appointment_id: str) -> None:
        """RetrieveBooking for its version, then CancelBooking (idempotent by key); already cancelled: nothing."""
        current = self._call("RetrieveBooking", lambda c, o: c.bookings.get(emr_appointment_id, request_options=o))
        if current.booking is None:
            raise EmrError("Square RetrieveBooking: no booking in the answer", transient=True)
        if current.booking.status in CANCELLED:
            return
        version = current.booking.version
        self._call(
            "CancelBooking",
            lambda c, o: c.bookings.cancel(
                emr_appointment_id,
                booking_version=version,
                idempotency_key=f"medspa-cancel-{emr_appointment_id}-{version}",
                request_options=o,
            ),
        )
        logger.info("square appointments cancelled square_booking=%s", emr_appointment_id)

    # --- the admin's "fetch from Square" ---

    def catalog(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """(services, team members) the clinic's staff map: ``[(variation id, "Item: Variation"), ...]`` for the
        bookable services and ``[(team member id, display name), ...]`` for the bookable team members."""
        items = self._call("ListCatalog", lambda c, o: list(c.catalog.list(types="ITEM", request_options=o)))
        services = []
        for item in items:
            data = getattr(item, "item_data", None)
            if data is None or data.product_type != "APPOINTMENTS_SERVICE":
                continue
            for variation in data.variations or []:
                name = getattr(getattr(variation, "item_variation_data", None), "name", "") or ""
                services.append((variation.id, f"{data.name}: {name}" if name else data.name or ""))
        profiles = self._call(
            "ListTeamMemberBookingProfiles",
            lambda c, o: list(
                c.bookings.team_member_profiles.list(
                    bookable_only=True, location_id=self.location_id, request_options=o
                )
            ),
        )
        members = [(p.team_member_id, p.display_name or "") for p in profiles if p.team_member_id]
        return services, members
