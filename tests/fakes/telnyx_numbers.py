"""A local fake of Telnyx's numbers and 10DLC API (the shapes in docs PROVIDERS.md), served over real HTTP.

``FakeTelnyx`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port) and answers like Telnyx: ``{"data": {...}}``
envelopes for messaging profiles, available numbers, number orders and hosted orders; bare camelCase objects for
the 10DLC brand, campaign and phone_number_campaigns endpoints. It records every request so tests assert what was
sent, and can be told to fail the next matching request with Telnyx's error shape. The ``fake_telnyx`` fixture
points settings at it.
"""

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from .server import start_server, stop_server

API_KEY = "KEY_test"
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
            return self._brand_create(body)
        if method == "GET" and parts[:2] == ["10dlc", "brand"] and len(parts) == 3:
            return self._found(self.brands.get(parts[2]))
        if (method, path) == ("POST", "/10dlc/campaignBuilder"):
            return self._campaign_create(body)
        if method == "GET" and parts[:2] == ["10dlc", "campaign"] and len(parts) == 3:
            return self._found(self.campaigns.get(parts[2]))
        if (method, path) == ("POST", "/10dlc/phone_number_campaigns"):
            return self._assign(body)
        if method == "GET" and parts[:2] == ["10dlc", "phone_number_campaigns"] and len(parts) == 3:
            return self._found(self.assignments.get(parts[2]))
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

    def _brand_create(self, body):
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

    def _campaign_create(self, body):
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
        assignment = {
            "phoneNumber": body.get("phoneNumber"),
            "campaignId": body.get("campaignId"),
            "brandId": campaign.get("brandId"),
            "tcrCampaignId": campaign.get("tcrCampaignId"),
            "assignmentStatus": self.assignment_status,
            "createdAt": NOW,
            "updatedAt": NOW,
        }
        self.assignments[assignment["phoneNumber"]] = assignment
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
        data = json.dumps(body).encode()
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
