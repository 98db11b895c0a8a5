"""A local fake of Telnyx's numbers and 10DLC API, served over real HTTP.

``FakeTelnyx`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port) and answers like Telnyx: ``{"data": {...}}``
envelopes for messaging profiles, available numbers, number orders and hosted orders; bare camelCase objects for
the 10DLC brand, campaign and phone_number_campaigns endpoints, as Telnyx's OpenAPI spec (team-telnyx/openapi
``openapi/spec3.yml``, mirrored by the ``telnyx`` SDK's generated types) describes them, or wrapped in ``{"data":
...}`` as Telnyx's 10DLC guides read them (``wrap_10dlc=True``). Sources per shape: tests/data/providers/SOURCES.md
("Telnyx 10DLC fake").

The 10DLC part keeps Telnyx's rules and refusals: a brand starts REGISTRATION_PENDING/UNVERIFIED (``brand_verify``
plays TCR's verdict); a sole proprietor's brand is verified by the SMS OTP (``POST``/``PUT /10dlc/brand/{id}/smsOtp``,
PIN ``otp_pin``); a campaign on a brand in pending or failed status, or on an unverified sole proprietor, is refused
with Telnyx's words; a sole proprietor's brand takes one campaign, use case SOLE_PROPRIETOR, and one number; only a
number active on the account (its order complete) is assigned. It records every request so tests assert what was
sent, and can be told to fail the next matching request with Telnyx's error shape. The ``fake_telnyx`` fixture
points settings at it.
"""

import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from .server import start_server, stop_server

API_KEY = "KEY_test"
PHONE_IN_TEXT = re.compile(r"(\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}")
NOW = "2025-01-15T15:00:00Z"


@dataclass
class Recorded:
    method: str
    path: str  # without the /v2 prefix, e.g. /10dlc/brand
    query: dict  # name -> list of values, as parse_qs gives them
    headers: dict  # lower-case names
    json: object = None


@dataclass
class Failure:
    method: str
    path: str
    status: int
    body: dict
    remaining: int = 1


@dataclass
class FakeTelnyx:
    """State of the fake account. Tests may change statuses (``number_order_status``, ``brands[id]["status"]``,
    ``assignments[number]["assignmentStatus"]`` ...) to play what Telnyx would answer later."""

    api_key: str = API_KEY
    available: list = field(
        default_factory=lambda: ["+13055550101", "+13055550102", "+13055550103", "+13055550104", "+13055550105"]
    )
    number_order_status: str = "pending"
    brand_status: str = "REGISTRATION_PENDING"
    campaign_status: str = "TCR_PENDING"
    assignment_status: str = "PENDING_ASSIGNMENT"
    wrap_10dlc: bool = False  # answer the 10DLC endpoints as {"data": {...}} (the form Telnyx's guides read)
    otp_pin: str = "123456"
    owned: set = field(default_factory=set)  # numbers active on the account besides those ordered here
    requests: list = field(default_factory=list)
    profiles: dict = field(default_factory=dict)
    orders: dict = field(default_factory=dict)
    hosted_orders: dict = field(default_factory=dict)
    brands: dict = field(default_factory=dict)
    campaigns: dict = field(default_factory=dict)
    assignments: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    # --- control ---

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v2"

    def start(self) -> "FakeTelnyx":
        fake = self

        class Handler(_Handler):
            telnyx = fake

        self.server = start_server(Handler)
        return self

    def stop(self) -> None:
        stop_server(self.server)

    def fail(self, method, path, *, status=422, code="10015", title="Invalid parameter", detail="", times=1):
        """The next ``times`` requests to ``method path`` (path without /v2) answer ``status`` with Telnyx's error
        body ``{"errors": [{"code", "title", "detail"}]}``."""
        body = {"errors": [{"code": code, "title": title, "detail": detail or title}]}
        self.failures.append(Failure(method.upper(), path, status, body, times))

    def calls(self, method=None, path=None) -> list:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method.upper()) and (path is None or r.path == path)
        ]

    # --- routes: each returns (status, body) ---

    def handle(self, request: Recorded) -> tuple[int, object]:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return 401, _errors("10009", "Authentication failed", "The API key is missing or invalid.")
        for failure in self.failures:
            if failure.remaining > 0 and (failure.method, failure.path) == (request.method, request.path):
                failure.remaining -= 1
                return failure.status, failure.body
        method, path, body = request.method, request.path, request.json if isinstance(request.json, dict) else {}
        parts = path.strip("/").split("/")
        if (method, path) == ("POST", "/messaging_profiles"):
            return self._profile_create(body)
        if (method, path) == ("GET", "/available_phone_numbers"):
            return self._available(request.query)
        if (method, path) == ("POST", "/number_orders"):
            return self._order_create(body)
        if method == "GET" and parts[0] == "number_orders" and len(parts) == 2:
            return self._found(self.orders.get(parts[1]), envelope=True)
        if (method, path) == ("POST", "/messaging_hosted_number_orders"):
            return self._hosted_create(body)
        if method == "GET" and parts[0] == "messaging_hosted_number_orders" and len(parts) == 2:
            return self._found(self.hosted_orders.get(parts[1]), envelope=True)
        if (method, path) == ("POST", "/10dlc/brand"):
            return self._wrap(*self._brand_create(body))
        if (method, path) == ("GET", "/10dlc/brand"):
            return self._brand_list(request.query)
        if parts[:2] == ["10dlc", "brand"] and len(parts) == 4 and parts[3] == "smsOtp":
            return self._otp(method, parts[2], body)
        if method == "GET" and parts[:2] == ["10dlc", "brand"] and len(parts) == 3:
            return self._wrap(*self._found(self.brands.get(parts[2])))
        if (method, path) == ("POST", "/10dlc/campaignBuilder"):
            return self._wrap(*self._campaign_create(body))
        if method == "GET" and parts[:2] == ["10dlc", "campaign"] and len(parts) == 3:
            return self._wrap(*self._found(self.campaigns.get(parts[2])))
        if (method, path) == ("POST", "/10dlc/phone_number_campaigns"):
            return self._wrap(*self._assign(body))
        if method == "GET" and parts[:2] == ["10dlc", "phone_number_campaigns"] and len(parts) == 3:
            return self._wrap(*self._found(self.assignments.get(parts[2])))
        return 404, _errors("10005", "Resource not found", f"No route {method} {path} in the fake.")

    @staticmethod
    def _found(item, *, envelope=False):
        if item is None:
            return 404, _errors("10005", "Resource not found", "The requested resource does not exist.")
        return 200, {"data": item} if envelope else item

    def _profile_create(self, body):
        profile = {
            "record_type": "messaging_profile",
            "id": str(uuid.uuid4()),
            "name": body.get("name"),
            "enabled": True,
            "webhook_url": body.get("webhook_url"),
            "webhook_failover_url": body.get("webhook_failover_url"),
            "webhook_api_version": "2",
            "whitelisted_destinations": body.get("whitelisted_destinations"),
            "created_at": NOW,
            "updated_at": NOW,
        }
        self.profiles[profile["id"]] = profile
        return 200, {"data": profile}

    def _available(self, query):
        limit = int((query.get("filter[limit]") or ["10"])[0])
        area = (query.get("filter[national_destination_code]") or [""])[0]
        numbers = [n for n in self.available if not area or n[2:5] == area][:limit]
        data = [
            {
                "record_type": "available_phone_number",
                "phone_number": number,
                "vanity_format": "",
                "best_effort": False,
                "quickship": True,
                "reservable": True,
                "region_information": [{"region_type": "country_code", "region_name": "US"}],
                "cost_information": {"upfront_cost": "1.00", "monthly_cost": "1.00", "currency": "USD"},
                "features": [{"name": "sms"}, {"name": "voice"}, {"name": "mms"}],
            }
            for number in numbers
        ]
        return 200, {"data": data, "metadata": {"total_results": len(data), "best_effort_results": 0}}

    def _order_create(self, body):
        order_id = str(uuid.uuid4())
        order = {
            "id": order_id,
            "record_type": "number_order",
            "phone_numbers": [
                {
                    "id": str(uuid.uuid4()),
                    "record_type": "number_order_phone_number",
                    "phone_number": item.get("phone_number"),
                    "regulatory_requirements": [],
                    "requirements_met": True,
                    "status": self.number_order_status,
                }
                for item in body.get("phone_numbers") or []
            ],
            "phone_numbers_count": len(body.get("phone_numbers") or []),
            "messaging_profile_id": body.get("messaging_profile_id"),
            "status": self.number_order_status,
            "requirements_met": True,
            "created_at": NOW,
            "updated_at": NOW,
        }
        self.orders[order_id] = order
        return 200, {"data": order}

    def _hosted_create(self, body):
        order_id = str(uuid.uuid4())
        order = {
            "id": order_id,
            "record_type": "messaging_hosted_number_order",
            "messaging_profile_id": body.get("messaging_profile_id"),
            "phone_numbers": [
                {
                    "id": str(uuid.uuid4()),
                    "record_type": "messaging_hosted_number",
                    "phone_number": n,
                    "status": "pending",
                }
                for n in body.get("phone_numbers") or []
            ],
            "status": "pending",
        }
        self.hosted_orders[order_id] = order
        return 200, {"data": order}

    # --- 10DLC: what TCR does later, played by tests ---

    def brand_verify(self, brand_id, *, status="OK", identity="VERIFIED", reasons=None):
        """TCR's verdict on a brand. A sole proprietor's identity stays UNVERIFIED until its OTP is verified."""
        brand = self.brands[brand_id]
        if brand["entityType"] == "SOLE_PROPRIETOR" and identity == "VERIFIED":
            identity = brand["identityStatus"]
        brand.update(status=status, identityStatus=identity, updatedAt=NOW)
        if reasons:
            brand["failureReasons"] = reasons

    def campaign_provision(self, campaign_id, status="MNO_PROVISIONED"):
        self.campaigns[campaign_id]["campaignStatus"] = status

    def assignment_settle(self, number, status="ASSIGNED"):
        self.assignments[number]["assignmentStatus"] = status

    def _wrap(self, status, body):
        if self.wrap_10dlc and status < 400 and isinstance(body, dict):
            return status, {"data": body}
        return status, body

    def _active_numbers(self):
        active = set(self.owned)
        for order in self.orders.values():
            if order["status"] == "success":
                active.update(item["phone_number"] for item in order["phone_numbers"])
        for order in self.hosted_orders.values():
            if order["status"] == "successful":
                active.update(item["phone_number"] for item in order["phone_numbers"])
        return active

    # Fields TCR needs per entity type (Telnyx's brand guide and API reference, "Brand" create).
    STANDARD = ("companyName", "ein", "phone", "street", "city", "state", "postalCode", "website")
    PUBLIC = ("stockSymbol", "stockExchange", "businessContactEmail")
    SOLE_PROPRIETOR = ("firstName", "lastName", "mobilePhone", "phone", "street", "city", "state", "postalCode")
    REQUIRED = ("country", "displayName", "email", "entityType", "vertical")

    def _brand_create(self, body):
        entity = body.get("entityType")
        needed = list(self.REQUIRED)
        if entity == "SOLE_PROPRIETOR":
            needed += self.SOLE_PROPRIETOR
        elif entity in ("PRIVATE_PROFIT", "PUBLIC_PROFIT", "NON_PROFIT"):
            needed += self.STANDARD + (self.PUBLIC if entity == "PUBLIC_PROFIT" else ())
        else:
            return 400, _errors("10015", "Invalid parameter", f"entityType {entity!r} is not a valid entity type.")
        missing = [name for name in needed if not body.get(name)]
        if missing:
            return 400, {
                "errors": [
                    {"code": "10002", "title": "Missing parameter", "detail": f"{name} is required for {entity}.",
                     "source": {"pointer": f"/{name}"}}
                    for name in missing
                ]
            }  # fmt: skip
        brand_id = "4B" + uuid.uuid4().hex[:26].upper()
        brand = {
            **body,
            "brandId": brand_id,
            "tcrBrandId": "B" + uuid.uuid4().hex[:6].upper(),
            "status": self.brand_status,
            "identityStatus": "UNVERIFIED",
            "createdAt": NOW,
            "updatedAt": NOW,
        }
        self.brands[brand_id] = brand
        return 200, brand

    def _brand_list(self, query):
        name = (query.get("displayName") or [""])[0]
        records = [
            {key: brand.get(key) for key in (
                "brandId", "tcrBrandId", "entityType", "identityStatus", "companyName", "displayName", "email",
                "website", "failureReasons", "status", "createdAt", "updatedAt")}
            | {"assignedCampaingsCount": sum(c["brandId"] == brand["brandId"] for c in self.campaigns.values())}
            for brand in self.brands.values()
            if not name or brand.get("displayName") == name
        ]  # fmt: skip
        return 200, {"page": 1, "records": records, "totalRecords": len(records)}

    def _otp(self, method, brand_id, body):
        brand = self.brands.get(brand_id)
        if brand is None:
            return self._found(None)
        if brand["entityType"] != "SOLE_PROPRIETOR":
            return 400, _errors("10015", "Invalid operation", "SMS OTP is only allowed for Sole Proprietor brands.")
        if method == "POST":
            if "@OTP_PIN@" not in str(body.get("pinSms") or ""):
                return 400, _errors("10015", "Invalid parameter", "pinSms must include the @OTP_PIN@ placeholder.")
            brand["otpReferenceId"] = "OTP" + uuid.uuid4().hex[:8].upper()
            return 200, {"brandId": brand_id, "referenceId": brand["otpReferenceId"]}
        if method == "PUT":
            if not brand.get("otpReferenceId"):
                return 400, _errors("10015", "Invalid operation", "No OTP was triggered for this brand.")
            if str(body.get("otpPin")) != self.otp_pin:
                return 400, _errors("10015", "Invalid OTP", "The OTP pin is invalid or expired.")
            brand.update(identityStatus="VERIFIED", updatedAt=NOW)
            return 200, None
        return 405, _errors("10015", "Method not allowed", f"{method} smsOtp")

    def _campaign_create(self, body):
        brand = self.brands.get(body.get("brandId"))
        if brand is None:
            return 400, _errors("10015", "Invalid parameter", "Brand does not exist.")
        if brand["status"] in ("REGISTRATION_PENDING", "REGISTRATION_FAILED"):
            return 400, _errors(
                "10015", "Invalid brand status", "Cannot associate campaign with brand in pending or failed status"
            )
        sole = brand["entityType"] == "SOLE_PROPRIETOR"
        if sole and brand["identityStatus"] != "VERIFIED":
            return 400, _errors(
                "10015", "Brand not verified", "Sole Proprietor brand OTP verification is not complete."
            )
        if sole and body.get("usecase") != "SOLE_PROPRIETOR":
            return 400, _errors(
                "10015", "Invalid usecase", "A Sole Proprietor brand only qualifies for SOLE_PROPRIETOR."
            )
        if not sole and body.get("usecase") == "SOLE_PROPRIETOR":
            return 400, _errors("10015", "Invalid usecase", "SOLE_PROPRIETOR is only for Sole Proprietor brands.")
        if PHONE_IN_TEXT.search(str(body.get("helpMessage") or "")) and body.get("embeddedPhone") is not True:
            # Modeled on vetting: TCR/carriers reject a campaign whose content carries a phone number it did not
            # declare (Telnyx's campaign guide: "embeddedPhone: does the message content contain a phone number").
            return 400, _errors("10015", "Invalid campaign", "embeddedPhone must be true: helpMessage has a number.")
        if sole and any(c["brandId"] == brand["brandId"] for c in self.campaigns.values()):
            return 400, _errors("10015", "Campaign limit", "A Sole Proprietor brand may have one campaign.")
        campaign_id = "4C" + uuid.uuid4().hex[:26].upper()
        campaign = {
            **body,
            "campaignId": campaign_id,
            "tcrCampaignId": "C" + uuid.uuid4().hex[:6].upper(),
            "campaignStatus": self.campaign_status,
            "status": "ACTIVE",
            "submissionStatus": "CREATED",
            "createDate": NOW,
        }
        self.campaigns[campaign_id] = campaign
        return 200, campaign

    def _assign(self, body):
        campaign = self.campaigns.get(body.get("campaignId"))
        if campaign is None:
            return 400, _errors("10015", "Invalid campaign", "The campaign does not exist.")
        number = body.get("phoneNumber")
        if number not in self._active_numbers():
            return 400, _errors("10015", "Invalid phone number", f"{number} is not an active number on the account.")
        if campaign["usecase"] == "SOLE_PROPRIETOR" and any(
            a["campaignId"] == campaign["campaignId"] and a["phoneNumber"] != number for a in self.assignments.values()
        ):
            return 400, _errors("10015", "Number limit", "A Sole Proprietor campaign may have one phone number.")
        assignment = {
            "phoneNumber": number,
            "campaignId": body.get("campaignId"),
            "brandId": campaign.get("brandId"),
            "tcrCampaignId": campaign.get("tcrCampaignId"),
            "assignmentStatus": self.assignment_status,
            "createdAt": NOW,
            "updatedAt": NOW,
        }
        self.assignments[number] = assignment
        return 200, assignment


def _errors(code, title, detail):
    return {"errors": [{"code": code, "title": title, "detail": detail}]}


class _Handler(BaseHTTPRequestHandler):
    telnyx: FakeTelnyx

    def log_message(self, format, *args):  # quiet test output
        pass

    def _serve(self):
        split = urlsplit(self.path)
        path = unquote(split.path)
        path = path[len("/v2") :] if path.startswith("/v2/") else path
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            payload = raw.decode("utf-8", "replace")
        request = Recorded(
            method=self.command,
            path=path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            json=payload,
        )
        with self.telnyx.lock:
            self.telnyx.requests.append(request)
            status, body = self.telnyx.handle(request)
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve


@pytest.fixture
def fake_telnyx(settings):
    """A running FakeTelnyx with TELNYX_BASE_URL and TELNYX_API_KEY pointing at it; stopped after the test."""
    fake = FakeTelnyx().start()
    settings.TELNYX_BASE_URL = fake.base_url
    settings.TELNYX_API_KEY = fake.api_key
    settings.PUBLIC_BASE_URL = "https://frontdesk.example.com"
    try:
        yield fake
    finally:
        fake.stop()
