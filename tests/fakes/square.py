"""A local fake of Square's Checkout (payment links) and Refunds APIs, speaking the documented wire format.

``FakeSquare`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port) and answers:

- ``POST /v2/online-checkout/payment-links``: a Quick Pay link (``quick_pay.name``, ``price_money``, ``location_id``
  required). The same ``idempotency_key`` returns the same link; the same key with a different body is
  ``IDEMPOTENCY_KEY_REUSED``; a new key makes a new link with a new order id and a ``https://square.link/u/...`` URL.
- ``POST /v2/refunds``: idempotent by key (at most 45 characters); the payment must be known (``add_payment`` or
  ``pay_link``), else 404 ``NOT_FOUND``; more than what is left to refund is 400 ``REFUND_AMOUNT_INVALID``.

Every call must carry ``Authorization: Bearer <token>`` (else 401 ``UNAUTHORIZED``); errors are Square's
``{"errors": [{"category", "code", "detail", "field"}]}``. Every request is recorded in ``requests`` as
``{method, path, headers (lower-case names), json}``. Tests steer it with ``fail_next(status, errors, times)``,
``delay_next(seconds)`` (the request is still carried out; only the answer waits, as when a client times out) and
``refund_status``. ``payment_event``/``refund_event`` build Square's webhook bodies for those objects.

Used through the ``fake_square`` fixture: ``pytest_plugins = ["tests.fakes.square"]``.
"""

import json
import re
import secrets
import string
import threading
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler

import pytest

from .server import start_server, stop_server

TOKEN = "EAAA-test-token"
LOCATION_ID = "L-DEMO"
MERCHANT_ID = "ML-DEMO-MERCHANT"
LINKS_PATH = "/v2/online-checkout/payment-links"
REFUNDS_PATH = "/v2/refunds"
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
DEFAULT_ERRORS = {
    400: ("INVALID_REQUEST_ERROR", "BAD_REQUEST", "Bad request."),
    401: ("AUTHENTICATION_ERROR", "UNAUTHORIZED", "This request could not be authorized."),
    404: ("INVALID_REQUEST_ERROR", "NOT_FOUND", "Resource not found."),
    408: ("API_ERROR", "REQUEST_TIMEOUT", "Request timed out."),
    409: ("INVALID_REQUEST_ERROR", "CONFLICT", "A request with this idempotency key is in progress."),
    429: ("RATE_LIMIT_ERROR", "RATE_LIMITED", "Rate limit exceeded."),
    500: ("API_ERROR", "INTERNAL_SERVER_ERROR", "An internal error has occurred."),
    502: ("API_ERROR", "BAD_GATEWAY", "Bad gateway."),
    503: ("API_ERROR", "SERVICE_UNAVAILABLE", "Service unavailable."),
    504: ("API_ERROR", "GATEWAY_TIMEOUT", "Gateway timeout."),
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _random_id(length=16, alphabet=string.ascii_uppercase + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def error(code, detail, *, category="INVALID_REQUEST_ERROR", field=None) -> dict:
    item = {"category": category, "code": code, "detail": detail}
    if field:
        item["field"] = field
    return {"errors": [item]}


class SquareProblem(Exception):
    def __init__(self, status, code, detail, *, category="INVALID_REQUEST_ERROR", field=None):
        super().__init__(detail)
        self.status, self.body = status, error(code, detail, category=category, field=field)


def _money(value, field) -> dict:
    if not isinstance(value, dict):
        raise SquareProblem(400, "MISSING_REQUIRED_PARAMETER", f"Missing required parameter `{field}`.", field=field)
    amount, currency = value.get("amount"), value.get("currency")
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise SquareProblem(400, "EXPECTED_INTEGER", "Expected an integer value.", field=f"{field}.amount")
    if amount <= 0:
        raise SquareProblem(400, "VALUE_TOO_LOW", "The amount must be greater than 0.", field=f"{field}.amount")
    if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
        raise SquareProblem(400, "INVALID_VALUE", "Invalid currency.", field=f"{field}.currency")
    return {"amount": amount, "currency": currency}


def _text(body, field, *, required=False, max_length=None) -> str:
    value = body.get(field.rsplit(".", 1)[-1]) if isinstance(body, dict) else None
    if value is None or value == "":
        if required:
            raise SquareProblem(
                400, "MISSING_REQUIRED_PARAMETER", f"Missing required parameter `{field}`.", field=field
            )
        return ""
    if not isinstance(value, str):
        raise SquareProblem(400, "EXPECTED_STRING", "Expected a string value.", field=field)
    if max_length and len(value) > max_length:
        raise SquareProblem(400, "VALUE_TOO_LONG", f"Field must not be greater than {max_length} length.", field=field)
    return value


class FakeSquare:
    def __init__(self, token=TOKEN):
        self.token = token
        self.requests = []  # {"method", "path", "headers" (lower-case names), "json"}
        self.links = {}  # link id -> payment_link
        self.orders = {}  # order id -> order
        self.payments = {}  # payment id -> payment
        self.refunds = {}  # refund id -> refund
        self.refund_status = "PENDING"  # what new refunds say (card refunds start PENDING at Square)
        self._keys = {}  # (path, idempotency key) -> (request body, status, answer)
        self._failures = []  # [status, body] per request to fail
        self._delays = []  # seconds, per request to delay
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.server = None

    # --- control ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeSquare":
        fake = self

        class Handler(_Handler):
            square = fake

        self.server = start_server(Handler)
        return self

    def stop(self) -> None:
        self.stopped.set()  # wakes delayed answers
        stop_server(self.server)

    def fail_next(self, status, errors=None, times=1) -> None:
        """The next ``times`` authorised requests answer ``status`` with ``errors`` (default: Square's usual)."""
        if errors is None:
            category, code, detail = DEFAULT_ERRORS.get(status, ("API_ERROR", "INTERNAL_SERVER_ERROR", "Error."))
            errors = [{"category": category, "code": code, "detail": detail}]
        with self.lock:
            self._failures.extend([status, {"errors": errors}] for _ in range(times))

    def delay_next(self, seconds) -> None:
        """The next request is carried out, then its answer waits ``seconds`` (longer than a client's timeout)."""
        with self.lock:
            self._delays.append(seconds)

    def add_payment(self, payment_id, order_id, amount_cents, currency="USD", location_id=LOCATION_ID) -> dict:
        """A completed card payment the Refunds API can refund."""
        now = _now()
        money = {"amount": amount_cents, "currency": currency}
        payment = {
            "id": payment_id,
            "created_at": now,
            "updated_at": now,
            "amount_money": money,
            "total_money": money,
            "approved_money": money,
            "status": "COMPLETED",
            "source_type": "CARD",
            "location_id": location_id,
            "order_id": order_id,
            "refund_ids": [],
            "refunded_money": {"amount": 0, "currency": currency},
            "version_token": _random_id(20),
        }
        with self.lock:
            self.payments[payment_id] = payment
        return payment

    def pay_link(self, link_id) -> dict:
        """The buyer pays a link: a completed payment of its order's total (with the link's payment note)."""
        link = self.links[link_id]
        order = self.orders[link["order_id"]]
        payment = self.add_payment(
            _random_id(29, string.ascii_letters + string.digits),
            order["id"],
            order["total_money"]["amount"],
            order["total_money"]["currency"],
            order["location_id"],
        )
        if link.get("payment_note"):
            payment["note"] = link["payment_note"]
        return payment

    def payment_event(self, payment_id, event_type="payment.updated") -> dict:
        """Square's webhook body for a payment (sign its JSON with payments.backends.square.sign)."""
        return self._event(event_type, "payment", self.payments[payment_id])

    def refund_event(self, refund_id, event_type="refund.updated") -> dict:
        return self._event(event_type, "refund", self.refunds[refund_id])

    def calls(self, method=None, path=None) -> list:
        return [r for r in self.requests if (not method or r["method"] == method) and (not path or r["path"] == path)]

    def _event(self, event_type, kind, obj) -> dict:
        return {
            "merchant_id": MERCHANT_ID,
            "type": event_type,
            "event_id": str(uuid.uuid4()),
            "created_at": _now(),
            "data": {"type": kind, "id": obj["id"], "object": {kind: obj}},
        }

    # --- behaviour (called under the lock) ---

    def handle(self, method, path, headers, body, raw):
        """(status, answer, seconds to wait before answering)"""
        self.requests.append({"method": method, "path": path, "headers": headers, "json": body})
        delay = self._delays.pop(0) if self._delays else 0
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, error("UNAUTHORIZED", DEFAULT_ERRORS[401][2], category="AUTHENTICATION_ERROR"), delay
        if self._failures:
            status, answer = self._failures.pop(0)
            return status, answer, delay
        routes = {("POST", LINKS_PATH): self._create_link, ("POST", REFUNDS_PATH): self._refund}
        route = routes.get((method, path))
        if route is None:
            return 404, error("NOT_FOUND", f"No route for {method} {path}."), delay
        if method == "POST" and not raw:
            return 400, error("EXPECTED_JSON_BODY", "Expected a JSON request body."), delay
        if not isinstance(body, dict):
            return 400, error("BAD_REQUEST", "Invalid JSON body."), delay
        try:
            status, answer = self._idempotent(path, body, route)
        except SquareProblem as problem:
            status, answer = problem.status, problem.body
        return status, answer, delay

    def _idempotent(self, path, body, route):
        key = body.get("idempotency_key")
        if key and (path, key) in self._keys:
            first_body, status, answer = self._keys[(path, key)]
            if first_body != body:
                raise SquareProblem(
                    400, "IDEMPOTENCY_KEY_REUSED", "The idempotency key can only be retried with the same request data."
                )
            return status, answer
        status, answer = route(body)
        if key:
            self._keys[(path, key)] = (body, status, answer)
        return status, answer

    def _create_link(self, body):
        _text(body, "idempotency_key", max_length=192)
        quick_pay = body.get("quick_pay")
        if body.get("order") is not None or not isinstance(quick_pay, dict):
            raise SquareProblem(400, "BAD_REQUEST", "Exactly one of quick_pay or order is required.", field="quick_pay")
        name = _text(quick_pay, "quick_pay.name", required=True, max_length=255)
        price = _money(quick_pay.get("price_money"), "quick_pay.price_money")
        location_id = _text(quick_pay, "quick_pay.location_id", required=True)
        checkout_options = body.get("checkout_options") or {}
        redirect_url = _text(checkout_options, "checkout_options.redirect_url", max_length=2048)
        if redirect_url and not re.match(r"^https?://", redirect_url):
            raise SquareProblem(400, "INVALID_URL", "Invalid URL.", field="checkout_options.redirect_url")
        pre_populated = body.get("pre_populated_data") or {}
        phone = _text(pre_populated, "pre_populated_data.buyer_phone_number")
        if phone and not E164.match(phone):
            raise SquareProblem(
                400,
                "INVALID_PHONE_NUMBER",
                "Invalid phone number.",
                field="pre_populated_data.buyer_phone_number",
            )
        note = _text(body, "payment_note", max_length=500)

        now = _now()
        link_id, order_id = _random_id(16), _random_id(29, string.ascii_letters + string.digits)
        short = _random_id(8, string.ascii_letters + string.digits)
        order = {
            "id": order_id,
            "location_id": location_id,
            "source": {"name": "Square Online Checkout"},
            "line_items": [
                {
                    "uid": _random_id(22, string.ascii_letters + string.digits),
                    "name": name,
                    "quantity": "1",
                    "item_type": "CUSTOM_AMOUNT",
                    "base_price_money": price,
                    "total_money": price,
                }
            ],
            "net_amounts": {"total_money": price},
            "total_money": price,
            "created_at": now,
            "updated_at": now,
            "state": "DRAFT",
            "version": 1,
        }
        link = {
            "id": link_id,
            "version": 1,
            "order_id": order_id,
            "url": f"https://square.link/u/{short}",
            "long_url": f"https://checkout.square.site/merchant/{MERCHANT_ID}/order/{order_id}/checkout/{link_id}",
            "created_at": now,
        }
        if redirect_url:
            link["checkout_options"] = {"redirect_url": redirect_url}
        if phone:
            link["pre_populated_data"] = {"buyer_phone_number": phone}
        if note:
            link["payment_note"] = note
        self.links[link_id], self.orders[order_id] = link, order
        return 200, {"payment_link": link, "related_resources": {"orders": [order]}}

    def _refund(self, body):
        _text(body, "idempotency_key", required=True, max_length=45)
        money = _money(body.get("amount_money"), "amount_money")
        payment_id = _text(body, "payment_id", required=True)
        reason = _text(body, "reason", max_length=192)
        payment = self.payments.get(payment_id)
        if payment is None:
            raise SquareProblem(404, "NOT_FOUND", f"Could not find payment with id: {payment_id}")
        if money["currency"] != payment["amount_money"]["currency"]:
            raise SquareProblem(
                400, "CURRENCY_MISMATCH", "The refund currency differs from the payment's.", field="amount_money"
            )
        left = payment["total_money"]["amount"] - payment["refunded_money"]["amount"]
        if money["amount"] > left:
            raise SquareProblem(
                400,
                "REFUND_AMOUNT_INVALID",
                "The requested refund amount exceeds the amount available to refund.",
                category="REFUND_ERROR",
                field="amount_money.amount",
            )
        now = _now()
        refund = {
            "id": f"{payment_id}_{_random_id(16, string.ascii_letters + string.digits)}",
            "status": self.refund_status,
            "amount_money": money,
            "payment_id": payment_id,
            "order_id": payment["order_id"],
            "location_id": payment["location_id"],
            "destination_type": "CARD",
            "created_at": now,
            "updated_at": now,
        }
        if reason:
            refund["reason"] = reason
        payment["refunded_money"]["amount"] += money["amount"]
        payment["refund_ids"].append(refund["id"])
        self.refunds[refund["id"]] = refund
        return 200, {"refund": refund}


class _Handler(BaseHTTPRequestHandler):
    square: FakeSquare
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet test output
        pass

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {name.lower(): value for name, value in self.headers.items()}
        path = self.path.split("?", 1)[0]
        with self.square.lock:
            status, answer, delay = self.square.handle(self.command, path, headers, body, raw)
        if delay and self.square.stopped.wait(delay):
            return  # the server stopped while this answer waited
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout)

    do_GET = do_POST = do_PUT = do_DELETE = _serve


@pytest.fixture
def fake_square(settings):
    """A running FakeSquare, with the SQUARE_* settings pointing at it; stopped after the test."""
    fake = FakeSquare().start()
    settings.SQUARE_ACCESS_TOKEN = TOKEN
    settings.SQUARE_LOCATION_ID = LOCATION_ID
    settings.SQUARE_BASE_URL = fake.base_url
    try:
        yield fake
    finally:
        fake.stop()
