"""Boulevard, through its Client API (GraphQL over HTTP POST), where booking is a cart.

Evidence (tests/data/providers/SOURCES.md, "boulevard/"): Boulevard's own ``Boulevard/book-sdk`` (``src/graph.ts``
is generated from Boulevard's schema; ``src/platformClient.ts`` and its tests; ``tests/integration.test.ts``) and
Boulevard's help centre (support.boulevard.io).

Endpoint: ``https://sandbox.joinblvd.com/api/2020-01/{businessId}/client`` (sandbox) or
``https://dashboard.boulevard.io/api/2020-01/{businessId}/client`` (live).

Two kinds of access, both HTTP Basic:

* guest: ``base64(API_KEY + ":")``: carts, bookable dates and times, checkout (an anonymous cart with
  ``clientInformation``);
* a signed-in client: ``base64(API_KEY + ":" + token)``, the token being ``base64(HMAC-SHA256(base64decode(
  API_SECRET), payload)) + payload`` with ``payload = "blvd-client-v1" + businessId + clientId + unix_seconds``
  (book-sdk ``tests/integration.test.ts`` ``generateToken``). An appointment is read and cancelled only this way:
  the SDK's own tests expect anonymous appointment access to answer ``UNAUTHENTICATED``.

Booking: ``createCart(input: {locationId})`` (with ``availableItem(id)``: the service's staff variants, which are
listed per service) -> ``addCartSelectedBookableItem(input: {id, itemId, itemStaffVariantId?})`` ->
``cartBookableDates`` -> ``cartBookableTimes {id startTime}`` -> ``reserveCartBookableItems`` -> ``updateCart(input:
{id, clientInformation, clientMessage})`` -> ``cart {errors features bookingQuestions}`` (the checks checkout makes
first) -> ``checkoutCart {appointments {appointmentId clientId}}``.

References: ``service_ref`` is the Boulevard bookable item (service) id; ``provider_ref`` the Boulevard staff id (a
staff variant id is still understood): the variant is looked up for each service. The appointment reference we keep
is ``"<appointmentId>|<client uuid>"``: the client is who the signed token must name to read or cancel it.

What a business may require that an SMS assistant cannot give:

* a card on file (``features.paymentInfoRequired``, cart error ``CART_MISSING_ITEM_PAYMENT_METHOD``; Boulevard's help
  centre: a client booking online cannot finalise the appointment until they add a valid card). Cards reach
  Boulevard only as tokens from its own client-side card form, so we never send one. A clinic configured with
  ``card_via_boulevard`` is "deposit via Square, card via Boulevard": open times are read live, the paid booking goes
  to the front desk (capability ``manual``) who enter it in Boulevard and take the card there. Without that flag a
  checkout refused for the card raises ``CardRequired`` (permanent: staff see it) before anything is written.
* required booking questions (``CART_BOOKING_QUESTION_ANSWER_MISSING``): ``BookingQuestionsRequired`` names them.

Slot taken: the schema's cart error enum has no "time taken" code, so a reservation or checkout refused for its
time is read by listing the day's times again on the same cart: the time gone is ``SlotTakenError``, still listed is
an ``EmrError``.

Retries: HTTP 429 and Boulevard's cost-based limit (HTTP 200 with ``errors[].message`` "API limit exceeded. Query
cost is X and you have Y points available. Please wait Zms and try again.") wait as told and retry, also for
checkout (the request was not processed); 5xx and transport errors back off exponentially through the injectable
``sleep``, then ``EmrError(transient=True)``. ``checkoutCart`` writes the appointment and the Client API has no
search by our booking id, so it is only retried when the request cannot have been processed; otherwise
``CheckoutOutcomeUnknown`` is raised and staff must check Boulevard before anyone books again.

Logs carry operation names, cart and appointment ids and HTTP statuses only: never patient names, phones or emails.
"""

import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from datetime import UTC, date, datetime, timedelta

import httpx

from .base import (
    MANUAL,
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

SANDBOX_URL = "https://sandbox.joinblvd.com/api/2020-01/{business_id}/client"
LIVE_URL = "https://dashboard.boulevard.io/api/2020-01/{business_id}/client"
DEFAULT_DURATION = timedelta(minutes=60)
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
# cartBookableDates: "the number of available dates returned is limited by the `limit` argument, which defaults to
# 31" (graph.ts). We ask 31 days at a time with that limit, so no date of a window can be cut off.
DATE_WINDOW_DAYS = 31
CLIENT_TOKEN_PREFIX = "blvd-client-v1"  # noqa: S105 (the token kind, not a secret)
REFERENCE_SEPARATOR = "|"
RATE_LIMITED = re.compile(r"API limit exceeded", re.IGNORECASE)
RATE_LIMIT_WAIT = re.compile(r"wait\s+(\d+)\s*ms", re.IGNORECASE)

# CartErrorCode in graph.ts (tests/data/providers/boulevard/cart_error_codes.json).
CARD_MISSING = "CART_MISSING_ITEM_PAYMENT_METHOD"
QUESTIONS_MISSING = "CART_BOOKING_QUESTION_ANSWER_MISSING"
TIME_MISSING = "CART_MISSING_ITEM_TIME"

CREATE_CART = """
mutation CreateCart($input: CreateCartInput!, $itemId: ID!) {
  createCart(input: $input) {
    cart {
      id
      availableItem(id: $itemId) {
        id
        ... on CartAvailableBookableItem {
          listDurationRange { min max }
          staffVariants { id duration staff { id } }
        }
      }
    }
  }
}
"""

ADD_ITEM = """
mutation AddCartSelectedBookableItem($input: AddCartSelectedBookableItemInput!) {
  addCartSelectedBookableItem(input: $input) { cart { id selectedItems { id } } }
}
"""

BOOKABLE_DATES = """
query CartBookableDates($id: ID!, $searchRangeLower: Date, $searchRangeUpper: Date, $limit: Int, $tz: Tz) {
  cartBookableDates(
    id: $id, searchRangeLower: $searchRangeLower, searchRangeUpper: $searchRangeUpper, limit: $limit, tz: $tz
  ) { date }
}
"""

BOOKABLE_TIMES = """
query CartBookableTimes($id: ID!, $searchDate: Date!, $tz: Tz) {
  cartBookableTimes(id: $id, searchDate: $searchDate, tz: $tz) { id startTime }
}
"""

RESERVE = """
mutation ReserveCartBookableItems($input: ReserveCartBookableItemsInput!) {
  reserveCartBookableItems(input: $input) { cart { id expiresAt } }
}
"""

UPDATE_CART = """
mutation UpdateCart($input: UpdateCartInput!) {
  updateCart(input: $input) { cart { id } }
}
"""

# What checkoutCart checks first ("This mutation will first check for any errors in the cart, aborting if any errors
# exist"), read before it so a refusal is named rather than guessed from a message.
CART_STATE = """
query CartState($id: ID!) {
  cart(id: $id) {
    id
    errors { code message }
    features { paymentInfoRequired bookingQuestionsEnabled }
    bookingQuestions { id label required answer { __typename } }
  }
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

APPOINTMENT = """
query Appointment($id: ID!) {
  appointment(id: $id) { id cancelled state startAt }
}
"""

CANCEL = """
mutation CancelAppointment($input: CancelAppointmentInput!) {
  cancelAppointment(input: $input) { appointment { id cancelled state } }
}
"""

SIGNED_IN_CLIENT = """
query SignedInClient {
  client { id }
}
"""


class BoulevardError(EmrError):
    """A GraphQL error Boulevard answered; ``code`` is its ``code`` (or ``extensions.code``) when it gives one."""

    def __init__(self, message, *, code="", transient=False, status=200):
        super().__init__(message, transient=transient, status=status)
        self.code = code


class CheckoutOutcomeUnknown(EmrError):
    """checkoutCart may or may not have booked the appointment (timeout, 5xx after sending). Boulevard's Client API
    cannot look it up by our booking id: staff must check Boulevard before the booking is tried again."""


class CardRequired(EmrError):
    """The business requires a card on file to book online; we never hold a card. Configure the clinic with
    ``card_via_boulevard`` so paid bookings go to the front desk, who take the card in Boulevard."""


class BookingQuestionsRequired(EmrError):
    """The business requires answers to booking questions we cannot answer for the patient."""


class _RateLimited(Exception):
    def __init__(self, wait_seconds):
        super().__init__(wait_seconds)
        self.wait_seconds = wait_seconds


class BoulevardClient(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(
        self,
        *,
        business_id,
        api_key,
        location_id,
        api_secret="",
        card_via_boulevard=False,
        test_client_id="",
        sandbox=True,
        base_url=None,
        timeout=10.0,
        max_attempts=3,
        sleep=time.sleep,
        clock=time.time,
    ):
        """``api_secret``: the API secret (base64), for the signed client token that reads and cancels appointments.
        ``card_via_boulevard``: the business requires a card on file, so staff book (``manual``). ``test_client_id``:
        a Boulevard client the "test connection" may sign in as. ``base_url``: the full Client API endpoint,
        overriding the sandbox / live one (tests point it at a fake)."""
        self.business_id, self.location_id = business_id, location_id
        self.url = base_url or (SANDBOX_URL if sandbox else LIVE_URL).format(business_id=business_id)
        self.max_attempts = max(1, int(max_attempts))
        self.sleep, self.clock = sleep, clock
        self.api_key = api_key
        if not isinstance(card_via_boulevard, bool):  # "false" in the JSON would otherwise read as true
            raise EmrConfigError("Boulevard card_via_boulevard must be true or false (JSON, without quotes).")
        self.card_via_boulevard = card_via_boulevard
        self.test_client_id = test_client_id
        self._secret = _decode_secret(api_secret) if api_secret else b""
        self.capabilities = frozenset({MANUAL}) if self.card_via_boulevard else frozenset({WRITE})
        guest = base64.b64encode(f"{api_key}:".encode()).decode("ascii")
        self._guest = f"Basic {guest}"
        self._http = httpx.Client(
            timeout=timeout, headers={"Content-Type": "application/json", "Accept": "application/json"}
        )

    @classmethod
    def from_config(cls, clinic, config):
        """Credentials ``{business_id, api_key, api_secret, sandbox, card_via_boulevard, test_client_id}`` (the
        secret and the last two are optional); the location is ``location_ref``."""
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
        cart_id, duration, item = self._cart_with_item(service_ref, provider_ref, with_item=True)
        if not provider_ref:
            # Boulevard's bookable times do not say who is free, and the conversation offers only times with a known
            # provider: the times of a service one staff member performs are theirs. (With several, the times stay
            # unattributed, and emr.availability asks again once per provider of the service.)
            staff = {(variant.get("staff") or {}).get("id") for variant in item.get("staffVariants") or []} - {None}
            provider_ref = next(iter(staff)) if len(staff) == 1 else ""
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
        """Always "": the Client API has no client search; Boulevard matches or creates the client at checkout from
        the cart's ``clientInformation`` (name, email, phone). The client id comes back from checkout
        (``appointments[].clientId``) and is kept in the appointment reference."""
        return ""

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        slot = request.slot
        if slot.start.tzinfo is None:
            raise EmrError("slot start must be an aware datetime")
        cart_id, _ = self._cart_with_item(slot.service_ref, slot.provider_ref)
        zone_name, zone = _zone(slot.start)
        day = slot.start.astimezone(zone).date()
        time_id = self._time_id(cart_id, day, zone_name, zone, slot.start)
        if time_id is None:
            logger.info("boulevard: time no longer listed (cart %s, booking %s)", cart_id, request.booking_id)
            raise SlotTakenError("the time is no longer available in Boulevard")
        try:
            self._call(RESERVE, {"input": {"id": cart_id, "bookableTimeId": time_id}})
        except BoulevardError as exc:
            self._raise_if_gone(exc, cart_id, day, zone_name, zone, slot.start)
            raise
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
        self._call(
            UPDATE_CART, {"input": {"id": cart_id, "clientInformation": client_information, "clientMessage": message}}
        )
        self._check_cart(cart_id, day, zone_name, zone, slot.start)
        data = self._call(CHECKOUT, {"input": {"id": cart_id}}, writes=True)
        appointments = ((data or {}).get("checkoutCart") or {}).get("appointments") or []
        booked = (appointments[0] or {}) if appointments else {}
        appointment_id = booked.get("appointmentId")
        if not appointment_id:
            raise CheckoutOutcomeUnknown("Boulevard checkout answered without an appointment id", transient=True)
        logger.info(
            "boulevard: booked appointment %s (cart %s, booking %s)", appointment_id, cart_id, request.booking_id
        )
        reference = appointment_reference(str(appointment_id), str(booked.get("clientId") or ""))
        return Appointment(emr_appointment_id=reference, status="booked", start=slot.start)

    def find_appointment(self, *, booking_id, patient_id, start):
        """Always None: the Client API offers no appointment search by our booking id, and reading one needs the
        client's signed token, whose client id only checkout tells us. So None here does NOT prove an earlier
        checkout failed: after CheckoutOutcomeUnknown the caller must not check out again until staff have checked
        Boulevard, or the patient may be booked twice."""
        return None

    def appointment_status(self, emr_appointment_id) -> Appointment:
        """The appointment as Boulevard has it, read as its client with the signed token: its state in lower case
        (``booked``, ``confirmed``, ``cancelled``...) and its start (the lifecycle's checks before a reminder and its
        periodic sync; cancel reads it first)."""
        appointment_id, client_id = self._signed_reference(emr_appointment_id, "read")
        data = self._call(APPOINTMENT, {"id": appointment_id}, authorization=self._client_authorization(client_id))
        appointment = (data or {}).get("appointment") or {}
        if not appointment:
            raise EmrError(f"Boulevard has no appointment {appointment_id} for its client", status=200)
        start = datetime.fromisoformat(appointment["startAt"]) if appointment.get("startAt") else None
        status = "cancelled" if appointment.get("cancelled") else str(appointment.get("state") or "booked").lower()
        return Appointment(emr_appointment_id=emr_appointment_id, status=status, start=start)

    def cancel_appointment(self, emr_appointment_id):
        """Cancel as the appointment's client (signed token): read it first, so a retry after a lost answer finds it
        cancelled rather than failing."""
        appointment_id, client_id = self._signed_reference(emr_appointment_id, "cancel")
        if self.appointment_status(emr_appointment_id).status == "cancelled":
            logger.info("boulevard: appointment %s already cancelled", appointment_id)
            return
        # Not retried once it may have been processed: the next attempt reads the appointment first.
        self._call(
            CANCEL,
            {"input": {"id": appointment_id}},
            authorization=self._client_authorization(client_id),
            retry_unsent_only=True,
        )
        logger.info("boulevard: cancelled appointment %s", appointment_id)

    # --- what the admin shows and "test connection" exercises ---

    def automation(self) -> dict:
        staff = "the front desk books it in Boulevard (the business requires a card on file: deposit via Square, card "
        staff += "via Boulevard)"
        signed = bool(self._secret)
        unsigned = (
            "staff, in Boulevard (no API secret stored: appointments are read and cancelled only as their client)"
        )
        return {
            "availability": "automatic (Boulevard's bookable dates and times, read live)",
            "hold": "our own hold only (Boulevard reserves a cart's time for minutes, at checkout)",
            "book": staff if self.card_via_boulevard else "automatic (cart checkout)",
            "cancel": (
                "staff remove it in Boulevard"
                if self.card_via_boulevard
                else "automatic (as the appointment's client, signed with the API secret)"
                if signed
                else unsigned
            ),
            "reschedule": (
                "the new time is booked as above, the old one cancelled as above"
                if not self.card_via_boulevard
                else "staff, in Boulevard"
            ),
            "read status": "automatic (signed with the API secret), before each cancel" if signed else unsigned,
        }

    def connection_checks(self, *, service_ref, provider_refs, start, end) -> list:
        """Beyond open times: the providers' staff variants for the service, what checkout will require (card on file,
        booking questions) against this configuration, and the signed client token."""
        checks = []
        cart_id, item = self._new_cart(service_ref)
        variants = item.get("staffVariants") or []
        missing = [ref for ref in provider_refs if _variant_for(variants, ref) is None]
        if missing:
            checks.append(
                ("staff", False, f"{len(missing)} provider(s) have no Boulevard staff variant for the service")
            )
        else:
            checks.append(("staff", True, f"{len(provider_refs)} provider(s) found among the service's staff variants"))
        self._call(ADD_ITEM, {"input": {"id": cart_id, "itemId": service_ref}}, retry_unsent_only=True)
        cart = ((self._call(CART_STATE, {"id": cart_id}) or {}).get("cart")) or {}
        card = bool((cart.get("features") or {}).get("paymentInfoRequired"))
        if card and not self.card_via_boulevard:
            checks.append(
                (
                    "book",
                    False,
                    "Boulevard requires a card on file for online bookings, which we cannot take by text: set "
                    '"card_via_boulevard": true so paid bookings go to the front desk',
                )
            )
        elif card:
            checks.append(("book", True, "card on file required: paid bookings go to the front desk (as configured)"))
        else:
            checks.append(("book", True, "no card on file required for online bookings"))
        required = [q.get("label") or q.get("id") for q in cart.get("bookingQuestions") or [] if q.get("required")]
        if required and not self.card_via_boulevard:
            checks.append(("book", False, f"{len(required)} required booking question(s) we cannot answer"))
        if not self._secret:
            checks.append(("cancel", False, "no API secret: cancel and read status need it"))
        elif self.test_client_id:
            self._call(SIGNED_IN_CLIENT, {}, authorization=self._client_authorization(self.test_client_id))
            checks.append(("cancel", True, "signed client token accepted"))
        else:
            checks.append(("cancel", True, "API secret stored (set test_client_id to exercise the signed token)"))
        return checks

    # --- cart steps ---

    def _new_cart(self, service_ref):
        """A new cart for the location; returns (cart id, the service's available item)."""
        if not service_ref:
            raise EmrError("Boulevard needs the service's item id (service_ref)")
        data = self._call(CREATE_CART, {"input": {"locationId": self.location_id}, "itemId": service_ref})
        cart = ((data or {}).get("createCart") or {}).get("cart") or {}
        if not cart.get("id"):
            raise EmrError("Boulevard createCart answered without a cart id")
        item = cart.get("availableItem") or {}
        if not item:
            raise EmrError("Boulevard does not offer this service (item) at the location")
        return cart["id"], item

    def _cart_with_item(self, service_ref, provider_ref, *, with_item=False):
        """A new cart holding the service, with the provider's staff variant for that service when one is asked;
        returns (cart id, slot duration), and the service's available item too ``with_item``."""
        cart_id, item = self._new_cart(service_ref)
        selection = {"id": cart_id, "itemId": service_ref}
        duration = _minutes((item.get("listDurationRange") or {}).get("min"))
        if provider_ref:
            variant = _variant_for(item.get("staffVariants") or [], provider_ref)
            if variant is None:
                raise EmrError("the provider has no Boulevard staff variant for this service (check its staff id)")
            selection["itemStaffVariantId"] = variant["id"]
            duration = _minutes(variant.get("duration")) or duration
        self._call(ADD_ITEM, {"input": selection}, retry_unsent_only=True)
        length = timedelta(minutes=duration) if duration else DEFAULT_DURATION
        return (cart_id, length, item) if with_item else (cart_id, length)

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
                    "limit": DATE_WINDOW_DAYS,
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

    def _time_id(self, cart_id, day, zone_name, zone, start):
        return next((tid for tid, when in self._bookable_times(cart_id, day, zone_name, zone) if when == start), None)

    def _raise_if_gone(self, exc, cart_id, day, zone_name, zone, start):
        """A reservation refused: the schema has no "time taken" code, so list the day again: gone is taken."""
        if self._time_id(cart_id, day, zone_name, zone, start) is None:
            logger.info("boulevard: time taken meanwhile (cart %s)", cart_id)
            raise SlotTakenError(f"the time is no longer available in Boulevard ({exc})", status=200) from exc

    def _check_cart(self, cart_id, day, zone_name, zone, start):
        """What checkout would refuse, named: a card on file, booking questions, an expired or lost time."""
        cart = ((self._call(CART_STATE, {"id": cart_id}) or {}).get("cart")) or {}
        errors = [e for e in cart.get("errors") or [] if isinstance(e, dict)]
        codes = {str(e.get("code") or "") for e in errors}
        if CARD_MISSING in codes or (cart.get("features") or {}).get("paymentInfoRequired"):
            logger.warning("boulevard: business requires a card on file (cart %s)", cart_id)
            raise CardRequired(
                "Boulevard requires a card on file for this booking, which we cannot take by text; set "
                '"card_via_boulevard": true so paid bookings go to the front desk, who book them in Boulevard'
            )
        if QUESTIONS_MISSING in codes:
            unanswered = [
                str(q.get("label") or q.get("id") or "")
                for q in cart.get("bookingQuestions") or []
                if isinstance(q, dict) and q.get("required") and not q.get("answer")
            ]
            raise BookingQuestionsRequired(
                f"Boulevard requires answers to booking questions we cannot give: {'; '.join(unanswered) or 'unnamed'}"
            )
        if TIME_MISSING in codes:
            if self._time_id(cart_id, day, zone_name, zone, start) is None:
                raise SlotTakenError("the time is no longer available in Boulevard", status=200)
            raise EmrError("Boulevard's reservation of the time expired before checkout", transient=True)
        if errors:
            raise BoulevardError(
                str(errors[0].get("message") or "the cart cannot be checked out"), code=errors[0].get("code") or ""
            )

    # --- access ---

    def _signed_reference(self, emr_appointment_id, what):
        appointment_id, client_id = split_reference(emr_appointment_id)
        if not self._secret:
            raise EmrError(f"Boulevard needs the API secret to {what} an appointment (only its client may)")
        if not client_id:
            raise EmrError(
                f"appointment {appointment_id} has no Boulevard client in its reference: {what} it in Boulevard"
            )
        return appointment_id, client_id

    def _client_authorization(self, client_id) -> str:
        """``Basic base64(API_KEY:token)`` signed in as the client (book-sdk ``generateToken``)."""
        payload = f"{CLIENT_TOKEN_PREFIX}{self.business_id}{_client_uuid(client_id)}{int(self.clock())}"
        signature = base64.b64encode(hmac.new(self._secret, payload.encode(), hashlib.sha256).digest()).decode()
        credentials = base64.b64encode(f"{self.api_key}:{signature}{payload}".encode()).decode("ascii")
        return f"Basic {credentials}"

    # --- transport ---

    def _call(self, query, variables, *, writes=False, retry_unsent_only=False, authorization=None):
        """POST one GraphQL operation; returns ``data``. ``writes``: a retry could write twice and a failure after
        sending raises CheckoutOutcomeUnknown. ``retry_unsent_only``: not retried once it may have been processed
        (a plain transient EmrError then; the caller starts over with a fresh cart). A rate limit (HTTP 429, or
        Boulevard's cost limit in the GraphQL errors) was not processed: it is waited out and retried."""
        operation = _first_field(query)
        once = writes or retry_unsent_only
        for attempt in range(1, self.max_attempts + 1):
            wait = None
            try:
                response = self._http.post(
                    self.url,
                    json={"query": query, "variables": variables},
                    headers={"Authorization": authorization or self._guest},
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # never reached Boulevard
                failure = EmrError(f"Boulevard {operation}: connection failed ({type(exc).__name__})", transient=True)
            except httpx.TransportError as exc:  # timeout after sending, dropped connection...
                failure = self._after_sending(operation, f"transport error ({type(exc).__name__})", None, writes)
                if once:
                    raise failure from exc
            else:
                status = response.status_code
                if status == 200:
                    try:
                        return self._read(operation, response)
                    except _RateLimited as limited:
                        failure = EmrError(f"Boulevard {operation}: cost limit reached", transient=True, status=200)
                        wait = limited.wait_seconds
                elif status == 429:
                    failure = EmrError(f"Boulevard {operation}: rate limited (429)", transient=True, status=429)
                    wait = _retry_after(response)
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
                self.sleep(min(wait, BACKOFF_MAX_SECONDS) if wait is not None else delay)
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
    def _read(operation, response):
        try:
            body = response.json()
        except ValueError as exc:
            raise EmrError(f"Boulevard {operation}: the answer is not JSON", status=200) from exc
        if not isinstance(body, dict):
            raise EmrError(f"Boulevard {operation}: unexpected answer", status=200)
        errors = [e if isinstance(e, dict) else {"message": str(e)} for e in body.get("errors") or []]
        for error in errors:
            message = str(error.get("message") or "")
            if RATE_LIMITED.search(message):
                match = RATE_LIMIT_WAIT.search(message)
                raise _RateLimited(int(match.group(1)) / 1000 if match else BACKOFF_BASE_SECONDS)
        if errors:
            first = errors[0]
            extensions = first.get("extensions") if isinstance(first.get("extensions"), dict) else {}
            code = str(first.get("code") or extensions.get("code") or "")
            raise BoulevardError(str(first.get("message") or code or "GraphQL error"), code=code)
        return body.get("data") or {}


def appointment_reference(appointment_id: str, client_id: str) -> str:
    """What we keep for a Boulevard appointment: its id and its client's uuid (the signed token names the client).
    The appointment id alone when both would not fit the 100 characters the booking keeps."""
    if not client_id:
        return appointment_id
    reference = f"{appointment_id}{REFERENCE_SEPARATOR}{_client_uuid(client_id)}"
    return reference if len(reference) <= 100 else appointment_id


def split_reference(reference: str) -> tuple[str, str]:
    """(appointment id, client uuid or "") from ``appointment_reference``; an older bare id has no client."""
    appointment_id, _, client_id = str(reference or "").partition(REFERENCE_SEPARATOR)
    return appointment_id, client_id


def _client_uuid(client_id: str) -> str:
    """Boulevard's token names the client by its uuid, without the ``urn:blvd:Client:`` prefix of its global id."""
    return str(client_id).rsplit(":", 1)[-1]


def _decode_secret(secret: str) -> bytes:
    try:
        return base64.b64decode(secret, validate=True)
    except (binascii.Error, ValueError):
        raise EmrConfigError("Boulevard api_secret is not base64 (copy it as Boulevard shows it).") from None


def _variant_for(variants, provider_ref):
    """The staff variant of a service for one provider: by the staff member's id (the mapping), or by the variant's
    own id (an older mapping)."""
    for variant in variants or []:
        if not isinstance(variant, dict):
            continue
        if (variant.get("staff") or {}).get("id") == provider_ref or variant.get("id") == provider_ref:
            return variant
    return None


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


def _minutes(value):
    """Minutes from the schema's Int durations (``duration``, ``listDurationRange.min``: minutes); None if absent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value > 0 else None
