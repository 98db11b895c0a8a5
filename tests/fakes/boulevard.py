"""A local fake of Boulevard's Client API (GraphQL over HTTP POST), on real HTTP, built from Boulevard's own material.

Sources (tests/data/providers/SOURCES.md, "boulevard/"): the shapes are the types of ``Boulevard/book-sdk``
``src/graph.ts`` (generated from Boulevard's schema): ``Cart {id errors features bookingQuestions expiresAt
availableItem selectedItems}``, ``CartAvailableBookableItem {listDurationRange staffVariants {id duration price
staff}}`` (staff variants are listed per service), ``CartBookableDate``, ``CartBookableTime {id score startTime}``,
``CartAppointment {appointmentId clientId forCartOwner}``, ``Appointment {id cancelled state startAt}``, the
``CartErrorCode`` enum (``cart_error_codes.json``: the only cart error codes this fake ever answers) and
``CartFeatures.paymentInfoRequired``. Access follows the SDK: guest ``Basic base64(API_KEY + ":")``
(``src/platformClient.ts`` and its tests) for carts; a signed-in client ``Basic base64(API_KEY + ":" + token)`` with
the ``blvd-client-v1`` token of ``tests/integration.test.ts`` for ``appointment``, ``cancelAppointment`` and
``client``, which answer anonymous callers ``errors[0].code == "UNAUTHENTICATED"`` as that test expects. The cost
limit answers HTTP 200 with ``errors[].message`` "API limit exceeded. Query cost is X and you have Y points
available. Please wait Zms and try again." (the format a third-party client quotes from Boulevard's docs).

Not published, so the fake's own: the wording of error messages, the clock window of a signed token (5 minutes),
and which message a refused reservation carries (the schema has no "time taken" code).

No GraphQL parsing: each operation is answered by the first field name in the query text, with every field the
adapter may select. ``schedule``: aware datetimes listed for any item. ``take(start)``: someone else booked it (still
listed until reserved, or gone with ``listed=False``). ``fail(status, times)``: HTTP errors; ``rate_limit(times,
wait_ms)``: the cost limit; ``graphql_error(field, message)``: one operation answers a GraphQL error.
"""

import base64
import binascii
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from .server import start_server, stop_server

SCHEMA = json.loads((Path(__file__).parent.parent / "data/providers/boulevard/cart_error_codes.json").read_text())
CART_ERROR_CODES = frozenset(SCHEMA["CartErrorCode"])

BUSINESS_ID = "63b60ecb-6d1e-4bb6-87ad-3cb52ffe09b4"  # the business id of book-sdk's integration test
API_KEY = "197f3eac-f90d-42b3-80ed-e3a68288647b"  # the key of book-sdk's platformClient test
API_SECRET = base64.b64encode(b"fake-boulevard-secret-32-bytes!!").decode()
LOCATION_ID = "urn:blvd:Location:loc-1"
ITEM_ID = "urn:blvd:Service:botox"
STAFF_ID = "urn:blvd:Staff:s-1"
STAFF_VARIANT_ID = "urn:blvd:ServiceStaffPrice:botox-s-1"
TOKEN_WINDOW_SECONDS = 300
RESERVE_REFUSED = "Could not reserve the selected time"
COST_LIMIT = "API limit exceeded. Query cost is 52 and you have 10 points available. Please wait {ms}ms and try again."


@dataclass
class Recorded:
    operation: str  # the first field of the query: createCart, cartBookableTimes...
    variables: dict
    authorization: str
    query: str
    path: str
    status: int = 200
    client_id: str = ""  # the signed-in client, for a signed token


@dataclass
class FakeBoulevard:
    business_id: str = BUSINESS_ID
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    location_id: str = LOCATION_ID
    # item id -> {"duration": minutes (listDurationRange), "variants": {variant id: {"staff", "duration", "price"}}}
    items: dict = field(
        default_factory=lambda: {
            ITEM_ID: {"duration": 30, "variants": {STAFF_VARIANT_ID: {"staff": STAFF_ID, "duration": 45, "price": 120}}}
        },
    )
    payment_info_required: bool = False  # CartFeatures.paymentInfoRequired: a card on file to check out
    booking_questions: list = field(default_factory=list)  # [{"id", "label", "required"}]
    schedule: list = field(default_factory=list)  # aware datetimes
    taken: set = field(default_factory=set)  # aware datetimes: listed, but reserving fails
    unlisted: set = field(default_factory=set)  # aware datetimes: no longer listed
    requests: list = field(default_factory=list)
    carts: dict = field(default_factory=dict)
    appointments: dict = field(default_factory=dict)
    http_failures: list = field(default_factory=list)  # [status, remaining]
    cost_limits: list = field(default_factory=list)  # [wait ms, remaining]
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
    def guest_authorization(self) -> str:
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

    def rate_limit(self, *, times=1, wait_ms=400) -> None:
        """The next ``times`` requests answer Boulevard's cost limit (HTTP 200, an error asking to wait)."""
        self.cost_limits.append([wait_ms, times])

    def graphql_error(self, field_name, message, *, code=None, times=1) -> None:
        """The next ``times`` ``field_name`` operations answer 200 with ``errors: [{message, code}]``."""
        error = {"message": message, "path": [field_name]}
        if code:
            error["code"] = code
        self.graphql_failures.append([field_name, error, times])

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests if r.status == 200]

    def calls(self, operation) -> list[Recorded]:
        return [r for r in self.requests if r.operation == operation and r.status == 200]

    def book(self, start, *, client_id=None) -> str:
        """An appointment made elsewhere (the front desk): returns its id; its client is ``client_id``."""
        appointment_id = f"urn:blvd:Appointment:{uuid.uuid4()}"
        self.appointments[appointment_id] = {
            "start": start,
            "client_id": client_id or str(uuid.uuid4()),
            "cancelled": False,
            "state": "BOOKED",
        }
        return appointment_id

    # --- access ---

    def signed_client(self, authorization: str):
        """(client uuid or None, problem): the client a ``blvd-client-v1`` token signs in, checked like Boulevard
        would (signature with the secret, this business, a recent timestamp)."""
        try:
            decoded = base64.b64decode(authorization.removeprefix("Basic "), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None, "Unreadable credentials"
        key, _, token = decoded.partition(":")
        if key != self.api_key:
            return None, "Unauthorized"
        if not token:
            return None, ""  # a guest
        match = re.fullmatch(r"(?P<sig>[A-Za-z0-9+/]{43}=)(?P<payload>blvd-client-v1(?P<rest>.+))", token)
        if not match:
            return None, "Invalid token"
        payload = match["payload"]
        expected = base64.b64encode(
            hmac.new(base64.b64decode(self.api_secret), payload.encode(), hashlib.sha256).digest()
        ).decode()
        if not hmac.compare_digest(expected, match["sig"]):
            return None, "Invalid token signature"
        rest = match["rest"]
        if not rest.startswith(self.business_id) or not rest[-10:].isdigit():
            return None, "Invalid token payload"
        if abs(time.time() - int(rest[-10:])) > TOKEN_WINDOW_SECONDS:
            return None, "Token expired"
        return rest[len(self.business_id) : -10], ""

    # --- handling ---

    def handle(self, request: Recorded) -> tuple[int, dict]:
        if request.path != self.path:
            return 404, {"errors": [{"message": "Not found"}]}
        client_id, problem = self.signed_client(request.authorization)
        if problem == "Unauthorized" or problem == "Unreadable credentials":
            return 401, {"errors": [{"message": problem}]}
        request.client_id = client_id or ""
        for failure in self.http_failures:
            if failure[1] > 0:
                failure[1] -= 1
                return failure[0], {"errors": [{"message": "Service Unavailable"}]}
        for limit in self.cost_limits:
            if limit[1] > 0:
                limit[1] -= 1
                return 200, {"errors": [{"message": COST_LIMIT.format(ms=limit[0])}]}
        for failure in self.graphql_failures:
            if failure[2] > 0 and failure[0] == request.operation:
                failure[2] -= 1
                return 200, {"data": {request.operation: None}, "errors": [failure[1]]}
        handler = getattr(self, f"_op_{request.operation}", None)
        if handler is None:
            return 200, {"errors": [{"message": f'Cannot query field "{request.operation}" (not in the fake)'}]}
        try:
            if request.operation in SIGNED_IN_ONLY:
                if problem or not client_id:
                    raise _GraphQLError(problem or "Authentication required", code="UNAUTHENTICATED")
                return 200, {"data": {request.operation: handler(request.variables or {}, client_id)}}
            return 200, {"data": {request.operation: handler(request.variables or {})}}
        except _GraphQLError as exc:
            error = {"message": str(exc), "path": [request.operation]}
            if exc.code:
                error["code"] = exc.code
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

    def _available_item(self, item_id):
        item = self.items.get(item_id)
        if item is None:
            return None
        return {
            "__typename": "CartAvailableBookableItem",
            "id": item_id,
            "listDurationRange": {"min": item["duration"], "max": item["duration"], "variable": False},
            "staffVariants": [
                {
                    "__typename": "CartAvailableBookableItemStaffVariant",
                    "id": variant_id,
                    "duration": variant["duration"],
                    "price": variant.get("price", 0),
                    "staff": {"__typename": "Staff", "id": variant["staff"]},
                }
                for variant_id, variant in item["variants"].items()
            ],
        }

    def cart_errors(self, cart) -> list[dict]:
        """``Cart.errors``: what checkout would refuse, with the schema's codes only."""
        errors = []
        if not cart["items"]:
            errors.append(("CART_MISSING_ITEMS", "No items selected"))
        if cart["items"] and (cart["reserved"] is None or cart["reserved"] in self.taken):
            errors.append(("CART_MISSING_ITEM_TIME", "Bookable items are missing a reserved time"))
        if not (cart["client_information"] or {}).get("firstName"):
            errors.append(("CART_MISSING_CLIENT_INFORMATION", "Client information is required"))
        if self.payment_info_required and not cart["payment_method"]:
            errors.append(("CART_MISSING_ITEM_PAYMENT_METHOD", "A payment method is required"))
        if any(q.get("required") for q in self.booking_questions):
            errors.append(("CART_BOOKING_QUESTION_ANSWER_MISSING", "Required booking questions are not answered"))
        assert {code for code, _ in errors} <= CART_ERROR_CODES  # only what the schema's enum has
        return [{"__typename": "CartError", "code": c, "message": m, "description": m} for c, m in errors]

    def _cart_object(self, cart):
        return {
            "__typename": "Cart",
            "id": cart["id"],
            "errors": self.cart_errors(cart),
            "features": {
                "__typename": "CartFeatures",
                "paymentInfoRequired": self.payment_info_required,
                "bookingQuestionsEnabled": bool(self.booking_questions),
                "giftCardPurchaseEnabled": False,
                "serviceAddonsEnabled": False,
            },
            "bookingQuestions": [
                {"__typename": "CartBookingQuestion", "answer": None, **question} for question in self.booking_questions
            ],
            "expiresAt": cart["expires_at"],
            "selectedItems": [
                {"__typename": "CartBookableItem", "id": f"{cart['id']}:item:{n}"}
                for n, _ in enumerate(cart["items"], start=1)
            ],
        }

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
            "expires_at": None,
            "client_information": None,
            "client_message": None,
            "payment_method": None,
            "completed": False,
        }
        cart = self._cart_object(self.carts[cart_id])
        cart["availableItem"] = self._available_item(variables.get("itemId"))
        return {"cart": cart}

    def _op_addCartSelectedBookableItem(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        item = self.items.get(data.get("itemId"))
        if item is None:
            raise _GraphQLError("Item not found")
        variant_id = data.get("itemStaffVariantId")
        if variant_id and variant_id not in item["variants"]:
            raise _GraphQLError("Staff variant not found")
        cart["items"].append({"item_id": data["itemId"], "variant_id": variant_id})
        cart["reserved"] = None  # "Using this mutation invalidates existing reservations."
        return {"cart": self._cart_object(cart)}

    def _op_cartBookableDates(self, variables):
        cart = self._cart(variables.get("id"))
        if not cart["items"]:
            raise _GraphQLError("Cart has no bookable items")
        zone = ZoneInfo(variables.get("tz") or "Etc/UTC")
        lower = date.fromisoformat(variables["searchRangeLower"])
        upper = date.fromisoformat(variables["searchRangeUpper"])
        limit = variables.get("limit") or 31  # "limited by the `limit` argument, which defaults to 31"
        days = sorted(
            {
                s.astimezone(zone).date()
                for s in self.schedule
                if s not in self.unlisted and lower <= s.astimezone(zone).date() <= upper
            }
        )
        return [{"__typename": "CartBookableDate", "date": day.isoformat()} for day in days[:limit]]

    def _op_cartBookableTimes(self, variables):
        cart = self._cart(variables.get("id"))
        if not cart["items"]:
            raise _GraphQLError("Cart has no bookable items")
        day = date.fromisoformat(variables["searchDate"])
        return [
            {"__typename": "CartBookableTime", "id": time_id, "score": 1, "startTime": start.isoformat()}
            for time_id, start in self._times(cart, day, variables.get("tz"))
        ]

    def _op_reserveCartBookableItems(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        start = next((s for s, tid in cart["time_ids"].items() if tid == data.get("bookableTimeId")), None)
        if start is None:
            raise _GraphQLError("Bookable time not found")
        if start in self.taken:
            self.unlisted.add(start)  # booked by someone else: no longer offered
            raise _GraphQLError(RESERVE_REFUSED)
        cart["reserved"] = start
        cart["expires_at"] = (datetime.now().astimezone() + timedelta(minutes=10)).isoformat()
        return {"cart": self._cart_object(cart)}

    def _op_updateCart(self, variables):
        data = variables.get("input") or {}
        cart = self._cart(data.get("id"))
        if "clientInformation" in data:
            cart["client_information"] = data["clientInformation"]
        if "clientMessage" in data:
            cart["client_message"] = data["clientMessage"]
        return {"cart": self._cart_object(cart)}

    def _op_cart(self, variables):
        cart = self.carts.get(variables.get("id"))
        return self._cart_object(cart) if cart else None

    def _op_checkoutCart(self, variables):
        cart = self._cart((variables.get("input") or {}).get("id"))
        errors = self.cart_errors(cart)
        if errors:  # "This mutation will first check for any errors in the cart, aborting if any errors exist."
            raise _GraphQLError(errors[0]["message"], code=errors[0]["code"])
        client_id = str(uuid.uuid4())
        appointment_id = f"urn:blvd:Appointment:{uuid.uuid4()}"
        self.appointments[appointment_id] = {
            "start": cart["reserved"],
            "cart_id": cart["id"],
            "client_id": client_id,
            "client_information": cart["client_information"],
            "client_message": cart["client_message"],
            "variant_id": cart["items"][0]["variant_id"],
            "cancelled": False,
            "state": "BOOKED",
        }
        cart["completed"] = True
        self.taken.add(cart["reserved"])
        return {
            "appointments": [
                {
                    "__typename": "CartAppointment",
                    "appointmentId": appointment_id,
                    "clientId": f"urn:blvd:Client:{client_id}",
                    "forCartOwner": True,
                }
            ],
            "cart": {"__typename": "Cart", "id": cart["id"]},
        }

    def _appointment_of(self, appointment_id, client_id):
        appointment = self.appointments.get(appointment_id)
        if appointment is None or appointment["client_id"] != client_id:
            raise _GraphQLError("Appointment not found")
        return appointment

    def _appointment_object(self, appointment_id, appointment):
        return {
            "__typename": "Appointment",
            "id": appointment_id,
            "cancelled": appointment["cancelled"],
            "state": "CANCELLED" if appointment["cancelled"] else appointment["state"],
            "startAt": appointment["start"].isoformat(),
        }

    def _op_appointment(self, variables, client_id):
        appointment = self._appointment_of(variables.get("id"), client_id)
        return self._appointment_object(variables.get("id"), appointment)

    def _op_cancelAppointment(self, variables, client_id):
        appointment_id = (variables.get("input") or {}).get("id")
        appointment = self._appointment_of(appointment_id, client_id)
        if appointment["cancelled"]:
            raise _GraphQLError("Appointment is already cancelled")
        appointment["cancelled"] = True
        self.taken.discard(appointment["start"])
        self.unlisted.discard(appointment["start"])
        return {"appointment": self._appointment_object(appointment_id, appointment)}

    def _op_client(self, variables, client_id):
        return {"__typename": "Client", "id": f"urn:blvd:Client:{client_id}"}


SIGNED_IN_ONLY = {"appointment", "cancelAppointment", "client"}


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
