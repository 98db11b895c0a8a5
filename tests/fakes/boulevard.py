"""A local fake of Boulevard's Client API (GraphQL over HTTP POST, the cart flow in PROVIDERS.md), on real HTTP.

``FakeBoulevard`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port). It checks the path
(``/api/2020-01/{business_id}/client``) and the ``Authorization: Basic base64(API_KEY + ":")`` header, keeps carts in
memory and answers each operation by the first field name in the query text (no GraphQL parsing: the answer has
every field the adapter may select). Bookable dates and times come from ``schedule`` (aware datetimes, any item);
like Boulevard, ``cartBookableDates`` answers at most the first week of the range asked. ``take(start)`` plays a
time taken by someone else: still listed (a stale listing) but reserving it answers a GraphQL error, or not listed
at all with ``listed=False``. ``fail(status, times)`` answers the next requests with an HTTP error (503...), and
``graphql_error(field, message)`` answers one operation with a GraphQL error.
"""

import base64
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest

from .server import start_server, stop_server

BUSINESS_ID = "biz-0001"
API_KEY = "blvd_test_key"
LOCATION_ID = "urn:blvd:Location:loc-1"
ITEM_ID = "urn:blvd:Service:botox"
STAFF_VARIANT_ID = "urn:blvd:ServiceStaffPrice:sv-1"
TAKEN_MESSAGE = "The selected time is no longer available"
TAKEN_CODE = "BOOKABLE_TIME_UNAVAILABLE"


@dataclass
class Recorded:
    operation: str  # the first field of the query: createCart, cartBookableTimes...
    variables: dict
    authorization: str
    query: str
    path: str
    status: int = 200


@dataclass
class FakeBoulevard:
    business_id: str = BUSINESS_ID
    api_key: str = API_KEY
    location_id: str = LOCATION_ID
    taken_message: str = TAKEN_MESSAGE
    # item id -> {"duration": minutes of the item (listDurationRange), "staff": {variant id: minutes}}
    items: dict = field(
        default_factory=lambda: {ITEM_ID: {"duration": 30, "staff": {STAFF_VARIANT_ID: 45}}},
    )
    schedule: list = field(default_factory=list)  # aware datetimes
    taken: set = field(default_factory=set)  # aware datetimes: listed, but reserving fails
    unlisted: set = field(default_factory=set)  # aware datetimes: no longer listed
    requests: list = field(default_factory=list)
    carts: dict = field(default_factory=dict)
    appointments: dict = field(default_factory=dict)
    http_failures: list = field(default_factory=list)  # [status, remaining]
    graphql_failures: list = field(default_factory=list)  # [field, error, remaining]
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    # --- control ---

    @property
    def path(self) -> str:
        return f"/api/2020-01/{self.business_id}/client"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"

    @property
    def authorization(self) -> str:
        return "Basic " + base64.b64encode(f"{self.api_key}:".encode()).decode()

    def start(self) -> "FakeBoulevard":
        fake = self

        class Handler(_Handler):
            boulevard = fake

        self.server = start_server(Handler)
        return self

    def stop(self) -> None:
        stop_server(self.server)

    def take(self, start: datetime, *, listed=True) -> None:
        """Someone else booked ``start``: still listed (reserve then fails) or, with listed=False, gone."""
        (self.taken if listed else self.unlisted).add(start)

    def fail(self, status=503, *, times=1) -> None:
        """The next ``times`` requests answer HTTP ``status`` with a GraphQL-style error body."""
        self.http_failures.append([status, times])

    def graphql_error(self, field_name, message, *, code=None, times=1) -> None:
        """The next ``times`` ``field_name`` operations answer 200 with ``errors: [{message, extensions.code}]``."""
        error = {"message": message, "path": [field_name]}
        if code:
            error["extensions"] = {"code": code}
        self.graphql_failures.append([field_name, error, times])

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests if r.status == 200]

    def calls(self, operation) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation and r.status == 200]

    # --- handling ---

    def handle(self, request: Recorded) -> tuple[int, dict]:
        if request.path != self.path:
            return 404, {"errors": [{"message": "Not found"}]}
        if request.authorization != self.authorization:
            return 401, {"errors": [{"message": "Unauthorized"}]}
        for failure in self.http_failures:
            if failure[1] > 0:
                failure[1] -= 1
                return failure[0], {"errors": [{"message": "Service Unavailable"}]}
        for failure in self.graphql_failures:
            if failure[2] > 0 and failure[0] == request.operation:
                failure[2] -= 1
                return 200, {"data": {request.operation: None}, "errors": [failure[1]]}
        handler = getattr(self, f"_op_{request.operation}", None)
        if handler is None:
            return 200, {"errors": [{"message": f'Cannot query field "{request.operation}" (not in the fake)'}]}
        try:
            return 200, {"data": {request.operation: handler(request.variables or {})}}
        except _GraphQLError as exc:
            error = {"message": str(exc), "path": [request.operation]}
            if exc.code:
                error["extensions"] = {"code": exc.code}
            return 200, {"data": {request.operation: None}, "errors": [error]}

    def _cart(self, cart_id):
        cart = self.carts.get(cart_id)
        if cart is None:
            raise _GraphQLError("Cart not found")
        if cart["completed"]:
            raise _GraphQLError("Cart has already been checked out")
        return cart

    def _times(self, cart, day: date, tz: str):
        """(time id, start) listed for a cart on a local date; the ids belong to the cart."""
        zone = ZoneInfo(tz or "Etc/UTC")
        listed = []
        for start in sorted(self.schedule):
            if start.astimezone(zone).date() == day and start not in self.unlisted:
                time_id = cart["time_ids"].setdefault(start, f"{cart['id']}:time:{len(cart['time_ids']) + 1}")
                listed.append((time_id, start.astimezone(zone)))
        return listed

    def _op_createCart(self, variables):
        location_id = (variables.get("input") or {}).get("locationId")
        if location_id != self.location_id:
            raise _GraphQLError("Location not found")
        cart_id = f"urn:blvd:Cart:{next(self.ids)}"
        self.carts[cart_id] = {
            "id": cart_id,
            "location_id": location_id,
            "items": [],
            "time_ids": {},
            "reserved": None,
            "client_information": None,
            "client_message": None,
            "completed": False,
        }
        return {"cart": {"id": cart_id}}

    def _op_addCartSelectedBookableItem(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        item = self.items.get(data.get("itemId"))
        if item is None:
            raise _GraphQLError("Item not found")
        variant_id = data.get("itemStaffVariantId")
        if variant_id and variant_id not in item["staff"]:
            raise _GraphQLError("Staff variant not found")
        cart["items"].append({"item_id": data["itemId"], "variant_id": variant_id})
        cart["reserved"] = None
        selected = [
            {
                "id": f"{cart['id']}:item:{n}",
                "selectedStaffVariant": (
                    {"id": entry["variant_id"], "duration": self.items[entry["item_id"]]["staff"][entry["variant_id"]]}
                    if entry["variant_id"]
                    else None
                ),
                "item": {
                    "id": entry["item_id"],
                    "listDurationRange": {
                        "min": self.items[entry["item_id"]]["duration"],
                        "max": self.items[entry["item_id"]]["duration"],
                        "variable": False,
                    },
                },
            }
            for n, entry in enumerate(cart["items"], start=1)
        ]
        return {"cart": {"id": cart["id"], "selectedItems": selected}}

    def _op_cartBookableDates(self, variables):
        cart = self._cart(variables.get("id"))
        if not cart["items"]:
            raise _GraphQLError("Cart has no bookable items")
        zone = ZoneInfo(variables.get("tz") or "Etc/UTC")
        lower = date.fromisoformat(variables["searchRangeLower"])
        upper = min(date.fromisoformat(variables["searchRangeUpper"]), lower + timedelta(days=6))  # first week only
        days = sorted(
            {
                s.astimezone(zone).date()
                for s in self.schedule
                if s not in self.unlisted and lower <= s.astimezone(zone).date() <= upper
            }
        )
        return [{"date": day.isoformat()} for day in days]

    def _op_cartBookableTimes(self, variables):
        cart = self._cart(variables.get("id"))
        if not cart["items"]:
            raise _GraphQLError("Cart has no bookable items")
        day = date.fromisoformat(variables["searchDate"])
        return [
            {"id": time_id, "score": 1, "startTime": start.isoformat()}
            for time_id, start in self._times(cart, day, variables.get("tz"))
        ]

    def _op_reserveCartBookableItems(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        start = next((s for s, tid in cart["time_ids"].items() if tid == data.get("bookableTimeId")), None)
        if start is None:
            raise _GraphQLError("Bookable time not found")
        if start in self.taken:
            raise _GraphQLError(self.taken_message, code=TAKEN_CODE)
        cart["reserved"] = start
        return {"cart": {"id": cart["id"]}}

    def _op_updateCart(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        if "clientInformation" in data:
            cart["client_information"] = data["clientInformation"]
        if "clientMessage" in data:
            cart["client_message"] = data["clientMessage"]
        return {"cart": {"id": cart["id"]}}

    def _op_checkoutCart(self, variables):
        cart = self._cart((variables.get("input") or {}).get("id"))
        if cart["reserved"] is None:
            raise _GraphQLError("Cart items have no reserved time", code="CART_MISSING_ITEM_TIME")
        if not cart["client_information"]:
            raise _GraphQLError("Client information is missing", code="CART_MISSING_CLIENT_INFORMATION")
        if cart["reserved"] in self.taken:
            raise _GraphQLError(self.taken_message, code=TAKEN_CODE)
        number = next(self.ids)
        appointment_id = f"urn:blvd:Appointment:{number}"
        self.appointments[appointment_id] = {
            "start": cart["reserved"],
            "cart_id": cart["id"],
            "client_information": cart["client_information"],
            "client_message": cart["client_message"],
            "cancelled": False,
        }
        cart["completed"] = True
        self.taken.add(cart["reserved"])
        return {
            "appointments": [
                {"appointmentId": appointment_id, "clientId": f"urn:blvd:Client:{number}", "forCartOwner": True}
            ],
            "cart": {"id": cart["id"]},
        }

    def _op_cancelAppointment(self, variables):
        appointment_id = (variables.get("input") or {}).get("id")
        appointment = self.appointments.get(appointment_id)
        if appointment is None:
            raise _GraphQLError("Appointment not found")
        appointment["cancelled"] = True
        self.taken.discard(appointment["start"])
        return {"appointment": {"id": appointment_id, "cancelled": True}}

    def _op_node(self, variables):
        appointment = self.appointments.get(variables.get("id"))
        if appointment is None:
            return None
        start = appointment["start"]
        return {
            "id": variables["id"],
            "cancelled": appointment["cancelled"],
            "startAt": start.isoformat() if hasattr(start, "isoformat") else start,
        }


class _GraphQLError(Exception):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def first_field(query: str) -> str:
    match = re.search(r"\{\s*(\w+)", query or "")
    return match.group(1) if match else ""


class _Handler(BaseHTTPRequestHandler):
    boulevard: FakeBoulevard

    def log_message(self, format, *args):  # quiet test output
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw) if raw else {}
        except ValueError:
            payload = {}
        payload = payload if isinstance(payload, dict) else {}
        query = str(payload.get("query") or "")
        request = Recorded(
            operation=first_field(query),
            variables=payload.get("variables") or {},
            authorization=self.headers.get("Authorization", ""),
            query=query,
            path=self.path,
        )
        with self.boulevard.lock:
            status, body = self.boulevard.handle(request)
            request.status = status
            self.boulevard.requests.append(request)
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def fake_boulevard():
    """A running FakeBoulevard (no schedule: tests set ``schedule``); stopped after the test."""
    fake = FakeBoulevard().start()
    try:
        yield fake
    finally:
        fake.stop()
