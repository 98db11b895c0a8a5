"""A local fake of the Nextech Select API and its Azure AD token endpoint (docs PROVIDERS.md), served over real HTTP.

``FakeNextech`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port). ``/token`` answers the password and
refresh_token grants (counted in ``grants``); ``/api/...`` answers FHIR STU3 JSON for Slot, Patient and Appointment
and checks every call carries a token it issued (else 401) and the ``nx-practice-id`` header (else 400). Every request
is recorded in ``requests``. Tests steer it with ``token_lifetime``, ``revoke_tokens()``, ``slot_pages``,
``throttle(times, retry_after)``, ``fail(status, times)``, ``create_delay``, ``refuse_cancel`` and where the day's
slots lie (``utc_offset_minutes``, ``first_hour``).
"""

import json
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from .server import start_server, stop_server

CLIENT_ID = "nx-client"
USERNAME = "api-user@spa.example"
PASSWORD = "api-password"
PRACTICE_ID = "PRACTICE-1"
LOCATION_ID = "1"
EXT = "https://select.nextech-api.com/api/structuredefinition/"
RESOURCE = "https://select.nextech-api.com/api"


@dataclass
class Recorded:
    method: str
    path: str  # /token, or the API path without /api, e.g. /Slot
    query: dict  # name -> list of values, as parse_qs gives them
    headers: dict  # lower-case names
    json: object = None
    form: dict | None = None  # token requests: name -> value


def outcome(text, code="processing"):
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def bundle(resources, next_url=""):
    body = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(resources),
        "entry": [{"resource": r} for r in resources],
        "link": [],
    }
    if next_url:
        body["link"].append({"relation": "next", "url": next_url})
    return body


@dataclass
class FakeNextech:
    token_lifetime: int = 3600
    slot_pages: int = 1
    practitioners: tuple = ("9",)
    create_delay: float = 0.0  # the next Appointment POST sleeps this long after storing it (then resets)
    refuse_cancel: str = ""  # a 422 OperationOutcome with this text on cancel
    # Where the practice's day of free slots lies: four 30-minute slots an hour apart from first_hour, on the wall
    # clock of this UTC offset (default 09:00-12:00 at -05:00).
    utc_offset_minutes: int = -300
    first_hour: int = 9
    taken: set = field(default_factory=set)  # slot starts (ISO) already booked by someone else
    grants: Counter = field(default_factory=Counter)
    requests: list = field(default_factory=list)
    patients: dict = field(default_factory=dict)
    appointments: dict = field(default_factory=dict)
    tokens: set = field(default_factory=set)
    refresh_tokens: set = field(default_factory=set)
    throttled: list = field(default_factory=list)  # [remaining, retry_after]
    failing: list = field(default_factory=list)  # [remaining, status]
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    _next_id: int = 100

    # --- control ---

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/api"

    @property
    def token_url(self) -> str:
        return f"{self.root}/token"

    def start(self) -> "FakeNextech":
        fake = self

        class Handler(_Handler):
            nextech = fake

        self.server = start_server(Handler)
        return self

    def stop(self) -> None:
        stop_server(self.server)

    def revoke_tokens(self) -> None:
        """Access tokens stop working (the API answers 401); refresh tokens still do."""
        self.tokens.clear()

    def throttle(self, times, retry_after=1) -> None:
        self.throttled[:] = [times, retry_after]

    def fail(self, status=503, times=1) -> None:
        self.failing[:] = [times, status]

    def add_patient(self, first, last, phone="", email="") -> str:
        ident = self._new_id()
        telecom = [{"system": "phone", "value": phone}] if phone else []
        telecom += [{"system": "email", "value": email}] if email else []
        self.patients[ident] = {
            "resourceType": "Patient",
            "id": ident,
            "name": [{"family": last, "given": [first]}],
            "telecom": telecom,
        }
        return ident

    def calls(self, method=None, path=None) -> list:
        return [r for r in self.requests if (not method or r.method == method) and (not path or r.path == path)]

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    # --- behaviour (called under the lock) ---

    def handle(self, request: Recorded):
        """(status, body, extra headers, delay before answering)"""
        if request.path == "/token":
            return (*self._token(request.form or {}), {}, 0)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return 401, {"error": "invalid_token", "message": "Authorization has been denied"}, {}, 0
        if request.headers.get("nx-practice-id") != PRACTICE_ID:
            return 400, outcome("nx-practice-id header is missing or unknown", "required"), {}, 0
        if self.throttled and self.throttled[0] > 0:
            self.throttled[0] -= 1
            return 429, outcome("Too many requests", "throttled"), {"Retry-After": str(self.throttled[1])}, 0
        if self.failing and self.failing[0] > 0:
            self.failing[0] -= 1
            return self.failing[1], outcome("Service unavailable", "transient"), {}, 0
        method, path, query = request.method, request.path, request.query
        if method == "GET" and path == "/Slot":
            return (*self._slots(query), {}, 0)
        if method == "GET" and path == "/Patient":
            return (*self._patient_search(query), {}, 0)
        if method == "POST" and path == "/Patient":
            return (*self._patient_create(request.json), {}, 0)
        if method == "POST" and path == "/Appointment":
            status, body = self._appointment_create(request.json)
            delay = 0.0
            if status == 201:
                delay, self.create_delay = self.create_delay, 0.0
            return status, body, {}, delay
        if method == "GET" and path == "/Appointment":
            return (*self._appointment_search(query), {}, 0)
        if method == "GET" and path.startswith("/Appointment/"):  # FHIR read
            found = self.appointments.get(path.rsplit("/", 1)[1])
            if found is None:
                return 404, outcome(f"Appointment {path.rsplit('/', 1)[1]} not found", "not-found"), {}, 0
            return 200, found, {}, 0
        if method == "PUT" and path.startswith("/Appointment/"):
            return (*self._appointment_update(path.rsplit("/", 1)[1], request.json), {}, 0)
        return 404, outcome(f"No route for {method} {path}", "not-found"), {}, 0

    def _token(self, form):
        grant = form.get("grant_type")
        self.grants[grant] += 1
        if form.get("client_id") != CLIENT_ID or form.get("resource") != RESOURCE:
            return 400, {"error": "invalid_client", "error_description": "AADSTS700016: unknown client"}
        if grant == "password":
            if form.get("username") != USERNAME or form.get("password") != PASSWORD:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS50126: invalid username or password"}
        elif grant == "refresh_token":
            if form.get("refresh_token") not in self.refresh_tokens:
                return 400, {"error": "invalid_grant", "error_description": "AADSTS70000: refresh token is invalid"}
        else:
            return 400, {"error": "unsupported_grant_type", "error_description": "unsupported grant"}
        access, refresh = f"at-{uuid.uuid4().hex}", f"rt-{uuid.uuid4().hex}"
        self.tokens.add(access)
        self.refresh_tokens.add(refresh)
        return 200, {
            "token_type": "Bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": str(self.token_lifetime),  # Azure AD sends these as strings
            "resource": RESOURCE,
        }

    def _slots(self, query):
        starts = query.get("start", [])
        low = next((s[2:] for s in starts if s.startswith("ge")), "")
        high = next((s[2:] for s in starts if s.startswith("lt")), "")
        actors = query.get("schedule.actor", [])
        if not low or not any(a.startswith("location/") for a in actors) or not query.get("appointment-type"):
            return 400, outcome("start, a location actor and appointment-type are required", "required")
        location = next(a.split("/", 1)[1] for a in actors if a.startswith("location/"))
        asked = [a.split("/", 1)[1] for a in actors if a.startswith("practitioner/")]
        window_start = datetime.fromisoformat(low)
        window_end = datetime.fromisoformat(high) if high else window_start + timedelta(days=45)
        local = window_start.astimezone(timezone(timedelta(minutes=self.utc_offset_minutes)))
        first = local.replace(hour=self.first_hour, minute=0, second=0, microsecond=0)
        if first + timedelta(hours=3) < window_start:  # the day's last slot (12:00) is past: the next day's
            first += timedelta(days=1)
        slots = []
        for practitioner in asked or list(self.practitioners):
            for hour in range(4):  # 09:00 .. 12:00, 30 minutes each
                slot_start = first + timedelta(hours=hour)
                if not window_start <= slot_start < window_end or slot_start.isoformat() in self.taken:
                    continue
                slots.append(
                    {
                        "resourceType": "Slot",
                        "id": f"{location}-{practitioner}-{slot_start:%Y%m%d%H%M}",
                        "schedule": {"reference": f"schedule/location_{location}_practitioner_{practitioner}"},
                        "status": "free",
                        "start": slot_start.isoformat(),
                        "end": (slot_start + timedelta(minutes=30)).isoformat(),
                        "extension": [
                            {
                                "url": EXT + "appointment-type",
                                "valueReference": {"reference": f"appointment-type/{query['appointment-type'][0]}"},
                            }
                        ],
                    }
                )
        page = int(query.get("page", ["1"])[0])
        if self.slot_pages > 1:
            per_page = -(-len(slots) // self.slot_pages)
            chunk = slots[(page - 1) * per_page : page * per_page]
            if page < self.slot_pages:
                params = [(k, v) for k, values in query.items() if k != "page" for v in values] + [("page", page + 1)]
                return 200, bundle(chunk, f"{self.base_url}/Slot?{urlencode(params)}")
            return 200, bundle(chunk)
        return 200, bundle(slots)

    def _patient_search(self, query):
        found = list(self.patients.values())
        if "phone" in query:
            found = [p for p in found if any(t.get("value") == query["phone"][0] for t in p["telecom"])]
        if "family" in query:
            family = query["family"][0].lower()
            found = [p for p in found if any(n.get("family", "").lower() == family for n in p["name"])]
        if "given" in query:
            given = query["given"][0].lower()
            found = [p for p in found if any(given in [g.lower() for g in n.get("given", [])] for n in p["name"])]
        return 200, bundle(found)

    def _patient_create(self, body):
        if not isinstance(body, dict) or body.get("resourceType") != "Patient" or not body.get("name"):
            return 400, outcome("A Patient with a name is required", "required")
        ident = self._new_id()
        self.patients[ident] = {**body, "id": ident, "telecom": body.get("telecom", [])}
        return 201, self.patients[ident]

    def _appointment_create(self, body):
        if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
            return 400, outcome("An Appointment is required", "required")
        refs = {p.get("actor", {}).get("reference", "").split("/")[0] for p in body.get("participant", [])}
        urls = {e.get("url") for e in body.get("extension", [])}
        problems = [
            body.get("status") != "proposed" and "status must be proposed",
            not (body.get("start") and body.get("end")) and "start and end are required",
            refs != {"patient", "location", "practitioner"} and "patient, location and practitioner are required",
            urls != {EXT + "appointment-type", EXT + "appointment-schedule"} and "type and schedule extensions",
        ]
        if any(problems):
            return 400, outcome("; ".join(p for p in problems if p), "required")
        practitioner = next(
            p["actor"]["reference"] for p in body["participant"] if p["actor"]["reference"].startswith("practitioner/")
        )
        clash = any(
            a["start"] == body["start"] and a["status"] != "cancelled" and practitioner in json.dumps(a["participant"])
            for a in self.appointments.values()
        )
        if body["start"] in self.taken or clash:
            return 409, outcome("The requested time is no longer available", "conflict")
        ident = self._new_id()
        self.appointments[ident] = {**body, "id": ident}
        return 201, self.appointments[ident]

    def _appointment_search(self, query):
        patient = query.get("patient", [""])[0]
        date = query.get("date", [""])[0].removeprefix("eq")
        found = [
            a
            for a in self.appointments.values()
            if any(p["actor"]["reference"] == patient for p in a["participant"]) and a["start"][:10] == date
        ]
        return 200, bundle(found)

    def _appointment_update(self, ident, body):
        if ident not in self.appointments:
            return 404, outcome(f"Appointment {ident} not found", "not-found")
        status = (body or {}).get("status")
        if status == "cancelled" and self.refuse_cancel:
            return 422, outcome(self.refuse_cancel, "business-rule")
        if status not in {"booked", "cancelled"}:
            return 400, outcome("status must be booked or cancelled", "value")
        self.appointments[ident]["status"] = status
        return 200, self.appointments[ident]


class _Handler(BaseHTTPRequestHandler):
    nextech: FakeNextech
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet test output
        pass

    def _serve(self):
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = payload = None
        if split.path == "/token":
            form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        elif raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = None
        request = Recorded(
            method=self.command,
            path=split.path.removeprefix("/api"),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
            json=payload,
            form=form,
        )
        with self.nextech.lock:
            self.nextech.requests.append(request)
            status, body, headers, delay = self.nextech.handle(request)
        if delay:
            time.sleep(delay)  # outside the lock: the appointment is already stored
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timed-out create)

    do_GET = do_POST = do_PUT = _serve


@pytest.fixture
def fake_nextech():
    """A running FakeNextech; stopped after the test."""
    fake = FakeNextech().start()
    try:
        yield fake
    finally:
        fake.stop()
