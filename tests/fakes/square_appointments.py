"""A fake of Square's Bookings, Customers and Catalog APIs at the HTTP boundary, for the Square Appointments client.

The squareup SDK speaks ``httpx``, which the ``responses`` library cannot intercept, so the fake is an
``httpx.MockTransport`` handler: the SDK builds and sends its real requests and parses the fake's answers with its
own models. The answers copy the shapes of Square's published examples (square/square-python-sdk ``doc/models/``,
named per shape in tests/data/providers/SOURCES.md, "square/ (Appointments)"): ids, field names, ``version``
counting from 0, ``ACCEPTED`` / ``CANCELLED_BY_SELLER``, errors as ``{"errors": [{"category", "code", "detail"}]}``.

Rules enforced as Square's reference states them: ``Authorization: Bearer <token>``; SearchAvailability's
``start_at_range`` at least 24 hours and at most 32 days (else 400 ``INVALID_VALUE``); CreateBooking needs a
``location_id``, a ``customer_id`` and each segment's ``service_variation_version``; its ``idempotency_key``
returns the first answer again; CancelBooking's ``booking_version`` must be the current one (else 409).
A time already booked is refused with 400 ``BAD_REQUEST`` "That time slot is no longer available" (the wording is
ours: Square does not publish the message). ``fail_next(status, times)`` answers errors; ``requests`` records
``(method, path, json)``.
"""

import json
from datetime import datetime, timedelta

import httpx

TOKEN = "EAAA-appointments-token"
LOCATION_ID = "LEQHH0YY8B42M"  # Square's own examples' ids
VARIATION_ID = "RU3PBTZTK7DXZDQFCJHOK2MC"
VARIATION_VERSION = 1599775456731
TEAM_A, TEAM_B = "TMXUrsBWWcHTt79t", "TMaJcbiRqPIGZuS9"
CATEGORY = {400: "INVALID_REQUEST_ERROR", 401: "AUTHENTICATION_ERROR", 403: "AUTHENTICATION_ERROR"}


def _parse(value):
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _error(status, code, detail):
    category = CATEGORY.get(status, "RATE_LIMIT_ERROR" if status == 429 else "API_ERROR")
    return httpx.Response(status, json={"errors": [{"category": category, "code": code, "detail": detail}]})


class FakeSquareAppointments:
    def __init__(self):
        self.requests, self.failures = [], []
        self.open_times = {}  # start (aware) -> team member id
        self.bookings, self.customers, self.keys = {}, {}, {}
        self.now = "2020-10-28T15:47:41Z"

    def transport(self):
        return httpx.MockTransport(self)

    def offer(self, start, team_member=TEAM_A):
        self.open_times[start] = team_member

    def fail_next(self, status, times=1, code="INTERNAL_SERVER_ERROR", detail="An internal error has occurred."):
        self.failures += [(status, code, detail)] * times

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return _error(401, "UNAUTHORIZED", "This request could not be authorized.")
        if self.failures:
            return _error(*self.failures.pop(0))
        params = dict(request.url.params)
        if (request.method, path) == ("POST", "/v2/bookings/availability/search"):
            return self._search(body)
        if (request.method, path) == ("POST", "/v2/bookings"):
            return self._create(body)
        if (request.method, path) == ("GET", "/v2/bookings"):
            return self._list(params)
        if (request.method, path) == ("POST", "/v2/customers/search"):
            phone = body["query"]["filter"]["phone_number"]["exact"]
            found = [c for c in self.customers.values() if c["phone_number"] == phone]
            return httpx.Response(200, json={"customers": found})
        if (request.method, path) == ("POST", "/v2/customers"):
            return self._create_customer(body)
        if (request.method, path) == ("GET", "/v2/catalog/list"):
            return httpx.Response(200, json=CATALOG_LIST)
        if (request.method, path) == ("GET", "/v2/bookings/team-member-booking-profiles"):
            return httpx.Response(200, json=TEAM_MEMBER_PROFILES)
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["v2", "bookings"] and request.method == "GET":
            booking = self.bookings.get(parts[2])
            if booking is None:
                return _error(404, "NOT_FOUND", "Booking not found.")
            return httpx.Response(200, json={"booking": booking, "errors": []})
        if len(parts) == 4 and parts[3] == "cancel" and request.method == "POST":
            return self._cancel(parts[2], body or {})
        return _error(404, "NOT_FOUND", f"No route {request.method} {path}")

    def _search(self, body):
        flt = body["query"]["filter"]
        low, high = _parse(flt["start_at_range"]["start_at"]), _parse(flt["start_at_range"]["end_at"])
        if not timedelta(hours=24) <= high - low <= timedelta(days=32):
            return _error(400, "INVALID_VALUE", "The time range must be at least 24 hours and at most 32 days long.")
        segment = flt["segment_filters"][0]
        members = (segment.get("team_member_id_filter") or {}).get("any")
        taken = {_parse(b["start_at"]) for b in self.bookings.values() if b["status"] == "ACCEPTED"}
        found = []
        for start, member in sorted(self.open_times.items()):
            if low <= start < high and start not in taken and (not members or member in members):
                found.append(
                    {
                        "appointment_segments": [
                            {
                                "duration_minutes": 60,
                                "service_variation_id": segment["service_variation_id"],
                                "service_variation_version": VARIATION_VERSION,
                                "team_member_id": member,
                                "intermission_minutes": 0,
                                "any_team_member": not members,
                            }
                        ],
                        "location_id": flt["location_id"],
                        "start_at": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    }
                )
        return httpx.Response(200, json={"availabilities": found, "errors": []})

    def _create(self, body):
        key = body.get("idempotency_key")
        if key in self.keys:
            return httpx.Response(200, json={"booking": self.bookings[self.keys[key]], "errors": []})
        booking = body["booking"]
        for field in ("location_id", "customer_id", "start_at"):
            if not booking.get(field):
                return _error(400, "MISSING_REQUIRED_PARAMETER", f"Missing required parameter `booking.{field}`.")
        for segment in booking.get("appointment_segments") or []:
            if segment.get("service_variation_version") is None:
                return _error(400, "MISSING_REQUIRED_PARAMETER", "Missing service_variation_version.")
        start = _parse(booking["start_at"])
        taken = {_parse(b["start_at"]) for b in self.bookings.values() if b["status"] == "ACCEPTED"}
        if start in taken or start not in self.open_times:
            return _error(400, "BAD_REQUEST", "That time slot is no longer available.")
        booking_id = f"zkras0xv0xwsw{len(self.bookings)}"
        made = {
            "appointment_segments": booking["appointment_segments"],
            "created_at": self.now,
            "customer_id": booking["customer_id"],
            "customer_note": booking.get("customer_note", ""),
            "id": booking_id,
            "location_id": booking["location_id"],
            "seller_note": booking.get("seller_note", ""),
            "start_at": booking["start_at"],
            "status": "ACCEPTED",
            "updated_at": self.now,
            "version": 0,
        }
        self.bookings[booking_id] = made
        if key:
            self.keys[key] = booking_id
        return httpx.Response(200, json={"booking": made, "errors": []})

    def _list(self, params):
        low, high = _parse(params["start_at_min"]), _parse(params["start_at_max"])
        found = [
            b
            for b in self.bookings.values()
            if b["customer_id"] == params.get("customer_id", b["customer_id"]) and low <= _parse(b["start_at"]) <= high
        ]
        return httpx.Response(200, json={"bookings": found, "errors": []})

    def _cancel(self, booking_id, body):
        booking = self.bookings.get(booking_id)
        if booking is None:
            return _error(404, "NOT_FOUND", "Booking not found.")
        if body.get("booking_version") not in (None, booking["version"]):
            return _error(409, "CONFLICT", "The booking version does not match.")
        booking.update(status="CANCELLED_BY_SELLER", version=booking["version"] + 1, updated_at=self.now)
        return httpx.Response(200, json={"booking": booking, "errors": []})

    def _create_customer(self, body):
        key = body.get("idempotency_key")
        if key in self.keys:
            return httpx.Response(200, json={"customer": self.customers[self.keys[key]]})
        customer_id = f"EX2QSVGTZN4K1E5QE1CBFNVQ8{len(self.customers)}"
        customer = {
            "id": customer_id,
            "created_at": self.now,
            "updated_at": self.now,
            "given_name": body.get("given_name"),
            "family_name": body.get("family_name"),
            "email_address": body.get("email_address"),
            "phone_number": body.get("phone_number"),
            "preferences": {"email_unsubscribed": False},
            "creation_source": "THIRD_PARTY",
            "version": 0,
        }
        self.customers[customer_id] = customer
        if key:
            self.keys[key] = customer_id
        return httpx.Response(200, json={"customer": customer})


# GET /v2/catalog/list?types=ITEM: an appointment service with its variation (shape of Square's CatalogObject /
# CatalogItem examples), plus a retail item that is not bookable.
CATALOG_LIST = {
    "objects": [
        {
            "type": "ITEM",
            "id": "LRJMXBNBEV4OYYDFLJZ3KNXO",
            "updated_at": "2020-09-10T21:57:36.731Z",
            "version": VARIATION_VERSION,
            "is_deleted": False,
            "present_at_all_locations": True,
            "item_data": {
                "name": "Botox consult",
                "product_type": "APPOINTMENTS_SERVICE",
                "variations": [
                    {
                        "type": "ITEM_VARIATION",
                        "id": VARIATION_ID,
                        "version": VARIATION_VERSION,
                        "item_variation_data": {
                            "item_id": "LRJMXBNBEV4OYYDFLJZ3KNXO",
                            "name": "60 minutes",
                            "pricing_type": "FIXED_PRICING",
                            "price_money": {"amount": 5000, "currency": "USD"},
                            "service_duration": 3600000,
                            "available_for_booking": True,
                            "team_member_ids": [TEAM_A, TEAM_B],
                        },
                    }
                ],
            },
        },
        {
            "type": "ITEM",
            "id": "W62UWFY35CWMYGVWK6TWJDNI",
            "version": 1,
            "item_data": {
                "name": "Sunscreen",
                "product_type": "REGULAR",
                "variations": [
                    {
                        "type": "ITEM_VARIATION",
                        "id": "AII5RPHDQKR3W3LJ6ZQPT2DD",
                        "item_variation_data": {"name": "50 ml"},
                    }
                ],
            },
        },
    ]
}

# GET /v2/bookings/team-member-booking-profiles (shape of Square's ListTeamMemberBookingProfilesResponse example).
TEAM_MEMBER_PROFILES = {
    "errors": [],
    "team_member_booking_profiles": [
        {"display_name": "Sandbox Seller", "is_bookable": True, "team_member_id": TEAM_A},
        {"display_name": "Sandbox Staff", "is_bookable": True, "team_member_id": TEAM_B},
    ],
}
