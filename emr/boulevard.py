"""Boulevard, through its Client API (GraphQL over HTTP POST), where booking is a cart.

Endpoint: ``https://sandbox.joinblvd.com/api/2020-01/{businessId}/client`` (sandbox) or
``https://dashboard.boulevard.io/api/2020-01/{businessId}/client`` (live), ``Authorization: Basic
base64(API_KEY + ":")``. Flow: ``createCart(input: {locationId})`` -> ``addCartSelectedBookableItem(input: {id, itemId,
itemStaffVariantId?})`` -> ``cartBookableDates`` -> ``cartBookableTimes {id startTime}`` ->
``reserveCartBookableItems(input: {id, bookableTimeId})`` -> ``updateCart(input: {id, clientInformation,
clientMessage})`` -> ``checkoutCart(input: {id}) {appointments {appointmentId clientId}}``.

References: ``service_ref`` is the Boulevard bookable item (service) id, ``provider_ref`` the staff variant id
(optional). Bookable time ids belong to the cart that listed them, so every call builds a fresh cart.

UNVERIFIED (taken from the Boulevard/book-sdk type definitions and our PROVIDERS.md notes, never run against a
real Boulevard account), coded defensively:

* ``updateCart`` accepting ``clientMessage``: we put ``booking:<booking_id>`` there. Whether staff see it as the
  appointment's notes is unverified; the booking id is in any case kept in our own records (the Booking row).
* ``cancelAppointment(input: {id})`` being callable with only the business API key (the SDK calls it for a signed-in
  client).
* The duration fields (``selectedStaffVariant.duration``, ``item.listDurationRange.min``) and their unit (minutes
  assumed; an ISO 8601 duration string is also understood); without them slots last 60 minutes.
* The wording / code of the error when a time was taken meanwhile: any message mentioning "unavailable", "no longer
  available", "not available" or "already booked", or a code such as ``BOOKABLE_TIME_UNAVAILABLE`` (in ``code`` or
  ``extensions.code``), is read as SlotTakenError.
* ``startTime`` carrying a UTC offset (a naive value is read in the zone that was asked for).
* Businesses that require a card at checkout (``CART_MISSING_ITEM_PAYMENT_METHOD``) are not handled: the GraphQL
  error surfaces as EmrError.

Retries: 429, 5xx and transport errors are retried with exponential backoff through the injectable ``sleep``, then
EmrError(transient=True). ``checkoutCart`` writes the appointment and Boulevard offers no search by our booking id,
so it is only retried when the request cannot have been processed (429, connection refused); otherwise
``CheckoutOutcomeUnknown`` is raised and staff must check Boulevard before anyone books again.

Logs carry operation names, cart ids and HTTP statuses only: never patient names, phones or emails.
"""

import base64
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta

import httpx

from .base import (
    WRITE,
    Appointment,
    AppointmentRequest,
    EmrClient,
    EmrError,
    PatientInfo,
    Slot,
    SlotTakenError,
    from_credentials,
)

logger = logging.getLogger(__name__)

SANDBOX_URL = "https://sandbox.joinblvd.com/api/2020-01/{business_id}/client"
LIVE_URL = "https://dashboard.boulevard.io/api/2020-01/{business_id}/client"
DEFAULT_DURATION = timedelta(minutes=60)
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
DATE_WINDOW_DAYS = 7  # cartBookableDates answers at most the first week of a longer range

TAKEN_CODES = {"BOOKABLE_TIME_UNAVAILABLE", "CART_BOOKABLE_TIME_UNAVAILABLE", "TIME_UNAVAILABLE", "SLOT_UNAVAILABLE"}
TAKEN_WORDS = re.compile(r"unavailable|no longer available|not available|already booked|already taken", re.IGNORECASE)

CREATE_CART = """
mutation CreateCart($input: CreateCartInput!) {
  createCart(input: $input) { cart { id } }
}
"""

ADD_ITEM = """
mutation AddCartSelectedBookableItem($input: AddCartSelectedBookableItemInput!) {
  addCartSelectedBookableItem(input: $input) {
    cart {
      id
      selectedItems {
        id
        ... on CartBookableItem {
          selectedStaffVariant { id duration }
          item { ... on CartAvailableBookableItem { listDurationRange { min max } } }
        }
      }
    }
  }
}
"""

BOOKABLE_DATES = """
query CartBookableDates($id: ID!, $searchRangeLower: Date, $searchRangeUpper: Date, $tz: Tz) {
  cartBookableDates(id: $id, searchRangeLower: $searchRangeLower, searchRangeUpper: $searchRangeUpper, tz: $tz) {
    date
  }
}
"""

BOOKABLE_TIMES = """
query CartBookableTimes($id: ID!, $searchDate: Date!, $tz: Tz) {
  cartBookableTimes(id: $id, searchDate: $searchDate, tz: $tz) { id startTime }
}
"""

RESERVE = """
mutation ReserveCartBookableItems($input: ReserveCartBookableItemsInput!) {
  reserveCartBookableItems(input: $input) { cart { id } }
}
"""

UPDATE_CART = """
mutation UpdateCart($input: UpdateCartInput!) {
  updateCart(input: $input) { cart { id } }
}
"""

CHECKOUT = """
mutation CheckoutCart($input: CheckoutCartInput!) {
  checkoutCart(input: $input) {
    appointments { appointmentId clientId }
    cart { id }
  }
}
"""

# UNVERIFIED: the SDK's CancelAppointmentInput is {id, notes?}; callable with the business key alone is unverified.
CANCEL = """
mutation CancelAppointment($input: CancelAppointmentInput!) {
  cancelAppointment(input: $input) { appointment { id cancelled } }
}
"""


# UNVERIFIED: Boulevard's ids are global ("urn:blvd:Appointment:..."), read through the Relay ``node`` field; the
# Client API's Appointment has ``cancelled`` (the cancelAppointment answer above) and ``startAt``.
APPOINTMENT = """
query Appointment($id: ID!) {
  node(id: $id) { ... on Appointment { id cancelled startAt } }
}
"""


class CheckoutOutcomeUnknown(EmrError):
    """checkoutCart may or may not have booked the appointment (timeout, 5xx after sending). Boulevard's Client API
    cannot look it up by our booking id: staff must check Boulevard before the booking is tried again."""


class BoulevardClient(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(
        self,
        *,
        business_id,
        api_key,
        location_id,
        sandbox=True,
        base_url=None,
        timeout=10.0,
        max_attempts=3,
        sleep=time.sleep,
    ):
        """``base_url``: the full Client API endpoint, overriding the sandbox / live one (tests point it at a fake)."""
        self.business_id, self.location_id = business_id, location_id
        self.url = base_url or (SANDBOX_URL if sandbox else LIVE_URL).format(business_id=business_id)
        self.max_attempts = max(1, int(max_attempts))
        self.sleep = sleep
        token = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        self._http = httpx.Client(
            timeout=timeout,
            headers={
                "Authorization": f"Basic {token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )

    @classmethod
    def from_config(cls, clinic, config):
        """Credentials ``{business_id, api_key, sandbox}``; the location is ``location_ref``."""
        return from_credentials(cls, config, location_id=config.location_ref)

    def close(self):
        self._http.close()

    # --- EmrClient ---

    def availability(self, *, service_ref, start, end, provider_ref=""):
        """Bookable times starting in [start, end), sorted. Times are listed in the zone of ``start``."""
        if start.tzinfo is None or end.tzinfo is None:
            raise EmrError("availability needs aware datetimes")
        if start >= end:
            return []
        # A fresh cart each call: a cart's bookable time ids belong to that cart (and reserving needs the same cart),
        # so nothing is reused between calls.
        cart_id, duration = self._cart_with_item(service_ref, provider_ref)
        zone_name, zone = _zone(start)
        first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
        slots = {}
        for day in self._bookable_dates(cart_id, first, last, zone_name):
            for time_id, slot_start in self._bookable_times(cart_id, day, zone_name, zone):
                if start <= slot_start < end:
                    slots[time_id] = Slot(
                        start=slot_start,
                        end=slot_start + duration,
                        provider_ref=provider_ref,
                        service_ref=service_ref,
                        location_ref=self.location_id,
                        emr_slot_id=time_id,
                    )
        return sorted(slots.values(), key=lambda slot: (slot.start, slot.emr_slot_id))

    def find_or_create_patient(self, patient: PatientInfo) -> str:
        """Always "": the Client API has no client search for a business key; Boulevard matches or creates the
        client at checkout from the cart's ``clientInformation`` (name, email, phone), so there is nothing to look up
        first. The Boulevard client id comes back from checkout (``appointments[].clientId``)."""
        return ""

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        slot = request.slot
        if slot.start.tzinfo is None:
            raise EmrError("slot start must be an aware datetime")
        cart_id, _ = self._cart_with_item(slot.service_ref, slot.provider_ref)
        zone_name, zone = _zone(slot.start)
        time_id = next(
            (
                tid
                for tid, when in self._bookable_times(cart_id, slot.start.astimezone(zone).date(), zone_name, zone)
                if when == slot.start
            ),
            None,
        )
        if time_id is None:
            logger.info("boulevard: time no longer listed (cart %s, booking %s)", cart_id, request.booking_id)
            raise SlotTakenError("the time is no longer available in Boulevard")
        self._call(RESERVE, {"input": {"id": cart_id, "bookableTimeId": time_id}}, slot_errors=True)
        patient = request.patient
        client_information = {
            "firstName": patient.first_name,
            "lastName": patient.last_name,
            "phoneNumber": patient.phone,
        }
        if patient.email:  # the Email scalar would reject ""
            client_information["email"] = patient.email
        message = f"booking:{request.booking_id}"
        if request.comment:
            message = f"{message}\n{request.comment}"
        # clientMessage: UNVERIFIED where staff see it; the booking id stays in our records regardless.
        self._call(
            UPDATE_CART, {"input": {"id": cart_id, "clientInformation": client_information, "clientMessage": message}}
        )
        data = self._call(CHECKOUT, {"input": {"id": cart_id}}, slot_errors=True, writes=True)
        appointments = ((data or {}).get("checkoutCart") or {}).get("appointments") or []
        appointment_id = (appointments[0] or {}).get("appointmentId") if appointments else None
        if not appointment_id:
            raise CheckoutOutcomeUnknown("Boulevard checkout answered without an appointment id", transient=True)
        logger.info(
            "boulevard: booked appointment %s (cart %s, booking %s)", appointment_id, cart_id, request.booking_id
        )
        return Appointment(emr_appointment_id=str(appointment_id), status="booked", start=slot.start)

    def find_appointment(self, *, booking_id, patient_id, start):
        """Always None: the Client API offers no appointment search by our booking id (``myAppointments`` needs a
        signed-in client). So None here does NOT prove an earlier checkout failed: after CheckoutOutcomeUnknown the
        caller must not check out again until staff have checked Boulevard, or the patient may be booked twice."""
        return None

    def cancel_appointment(self, emr_appointment_id):
        # UNVERIFIED: cancelAppointment(input: {id}) with the business API key alone.
        self._call(CANCEL, {"input": {"id": emr_appointment_id}})
        logger.info("boulevard: cancelled appointment %s", emr_appointment_id)

    # --- cart steps ---

    def _cart_with_item(self, service_ref, provider_ref):
        """A new cart for the location holding the item; returns (cart id, slot duration)."""
        if not service_ref:
            raise EmrError("Boulevard needs the service's item id (service_ref)")
        data = self._call(CREATE_CART, {"input": {"locationId": self.location_id}})
        cart_id = (((data or {}).get("createCart") or {}).get("cart") or {}).get("id")
        if not cart_id:
            raise EmrError("Boulevard createCart answered without a cart id")
        item = {"id": cart_id, "itemId": service_ref}
        if provider_ref:
            item["itemStaffVariantId"] = provider_ref
        data = self._call(ADD_ITEM, {"input": item}, retry_unsent_only=True)
        cart = ((data or {}).get("addCartSelectedBookableItem") or {}).get("cart") or {}
        return cart_id, _duration(cart.get("selectedItems"))

    def _bookable_dates(self, cart_id, first: date, last: date, zone_name) -> list[date]:
        days, lower = set(), first
        while lower <= last:
            upper = min(last, lower + timedelta(days=DATE_WINDOW_DAYS - 1))
            data = self._call(
                BOOKABLE_DATES,
                {
                    "id": cart_id,
                    "searchRangeLower": lower.isoformat(),
                    "searchRangeUpper": upper.isoformat(),
                    "tz": zone_name,
                },
            )
            for row in (data or {}).get("cartBookableDates") or []:
                try:
                    day = date.fromisoformat(str((row or {}).get("date"))[:10])
                except ValueError:
                    logger.warning("boulevard: unreadable bookable date skipped (cart %s)", cart_id)
                    continue
                if first <= day <= last:
                    days.add(day)
            lower = upper + timedelta(days=1)
        return sorted(days)

    def _bookable_times(self, cart_id, day: date, zone_name, zone) -> list[tuple[str, datetime]]:
        data = self._call(BOOKABLE_TIMES, {"id": cart_id, "searchDate": day.isoformat(), "tz": zone_name})
        times = []
        for row in (data or {}).get("cartBookableTimes") or []:
            row = row or {}
            try:
                when = datetime.fromisoformat(str(row.get("startTime")))
            except ValueError:
                logger.warning("boulevard: unreadable bookable time skipped (cart %s)", cart_id)
                continue
            if when.tzinfo is None:
                when = when.replace(tzinfo=zone)
            if row.get("id"):
                times.append((str(row["id"]), when))
        return times

    # --- reading one appointment (the lifecycle's checks before a reminder and its periodic sync) ---

    def appointment_status(self, emr_appointment_id: str) -> Appointment:
        """The appointment through the Relay ``node`` field: cancelled or booked, and its start."""
        node = (self._call(APPOINTMENT, {"id": emr_appointment_id}) or {}).get("node")
        if not node:
            raise EmrError(f"Boulevard has no appointment {emr_appointment_id}", status=200)
        start = datetime.fromisoformat(node["startAt"]) if node.get("startAt") else None
        return Appointment(
            emr_appointment_id=str(node.get("id") or emr_appointment_id),
            status="cancelled" if node.get("cancelled") else "booked",
            start=start,
        )

    # --- transport ---

    def _call(self, query, variables, *, slot_errors=False, writes=False, retry_unsent_only=False):
        """POST one GraphQL operation; returns ``data``. ``writes``: a retry could write twice and a failure after
        sending raises CheckoutOutcomeUnknown. ``retry_unsent_only``: not retried once it may have been processed
        (a plain transient EmrError then; the caller starts over with a fresh cart)."""
        operation = _first_field(query)
        once = writes or retry_unsent_only
        for attempt in range(1, self.max_attempts + 1):
            retry_after = None
            try:
                response = self._http.post(self.url, json={"query": query, "variables": variables})
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached Boulevard
                failure = EmrError(f"Boulevard {operation}: connection failed ({type(exc).__name__})", transient=True)
            except httpx.TransportError as exc:  # timeout after sending, dropped connection...
                failure = self._after_sending(operation, f"transport error ({type(exc).__name__})", None, writes)
                if once:
                    raise failure from exc
            else:
                status = response.status_code
                if status == 200:
                    return self._read(operation, response, slot_errors=slot_errors)
                if status == 429:
                    failure = EmrError(f"Boulevard {operation}: rate limited (429)", transient=True, status=429)
                    retry_after = _retry_after(response)
                elif status >= 500:
                    failure = self._after_sending(operation, f"HTTP {status}", status, writes)
                    if once:
                        raise failure
                else:
                    raise EmrError(
                        f"Boulevard {operation}: HTTP {status}: {_error_message(response) or response.reason_phrase}",
                        status=status,
                    )
            logger.warning("boulevard: %s attempt %s/%s failed: %s", operation, attempt, self.max_attempts, failure)
            if attempt < self.max_attempts:
                delay = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
                self.sleep(max(delay, min(retry_after or 0, BACKOFF_MAX_SECONDS)))
        raise failure

    @staticmethod
    def _after_sending(operation, what, status, writes):
        if writes:
            return CheckoutOutcomeUnknown(
                f"Boulevard {operation}: {what}; the appointment may have been booked, check Boulevard",
                transient=True,
                status=status,
            )
        return EmrError(f"Boulevard {operation}: {what}", transient=True, status=status)

    @staticmethod
    def _read(operation, response, *, slot_errors):
        try:
            body = response.json()
        except ValueError as exc:
            raise EmrError(f"Boulevard {operation}: the answer is not JSON", status=200) from exc
        if not isinstance(body, dict):
            raise EmrError(f"Boulevard {operation}: unexpected answer", status=200)
        errors = body.get("errors") or []
        if errors:
            first = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
            message = str(first.get("message") or "GraphQL error")
            if slot_errors and any(_means_taken(error) for error in errors):
                raise SlotTakenError(message, status=200)
            raise EmrError(message, status=200)
        return body.get("data") or {}


def _means_taken(error) -> bool:
    if not isinstance(error, dict):
        return bool(TAKEN_WORDS.search(str(error)))
    extensions = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
    codes = {str(error.get("code") or "").upper(), str(extensions.get("code") or "").upper()}
    return bool(codes & TAKEN_CODES) or bool(TAKEN_WORDS.search(str(error.get("message") or "")))


def _first_field(query) -> str:
    """The operation's first field (createCart, cartBookableTimes...), for logs and error messages."""
    match = re.search(r"\{\s*(\w+)", query)
    return match.group(1) if match else "operation"


def _error_message(response) -> str:
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("message") or "") if errors else ""
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def _retry_after(response):
    try:
        return float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None


def _zone(moment: datetime):
    """(IANA name for Boulevard's ``tz``, tzinfo) of an aware datetime; zones without a name fall back to UTC."""
    tzinfo = moment.tzinfo
    key = getattr(tzinfo, "key", None)
    if key:
        return key, tzinfo
    return "Etc/UTC", UTC


def _duration(selected_items) -> timedelta:
    """The item's duration from the cart (staff variant first, then the item's listed range), else 60 minutes."""
    for entry in selected_items or []:
        if not isinstance(entry, dict):
            continue
        variant = entry.get("selectedStaffVariant") or {}
        listed = (entry.get("item") or {}).get("listDurationRange") or {}
        for value in (variant.get("duration"), listed.get("min")):
            minutes = _minutes(value)
            if minutes:
                return timedelta(minutes=minutes)
    return DEFAULT_DURATION


def _minutes(value):
    """Minutes from an int (minutes, UNVERIFIED unit) or an ISO 8601 duration such as PT1H15M; None if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return int(value) if value > 0 else None
    match = re.fullmatch(r"P(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)", str(value).strip().upper())
    if not match or not any(match.groups()):
        return None
    hours, minutes, seconds = (int(part or 0) for part in match.groups())
    total = hours * 60 + minutes + seconds // 60
    return total or None
