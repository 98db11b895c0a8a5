"""A local fake of the Nextech Select API and its Azure AD token endpoint, served over real HTTP, answering in the
shapes of Nextech's own published samples (github.com/NextechSystems/selectapidocspub, source/includes/; the samples
themselves are in tests/data/providers/nextech/vendor-samples/, their lines in its SOURCES.md).

Each answer names the sample it copies. The awkward parts are kept, because real answers have them: every name
Nextech answers has an empty given name (``"given": ["Sherri", ""]``), Appointment participants have no ``status``,
search Bundles have no ``type``, Slots have no ``id``, answers write references capitalised (``Patient/…``) where
requests write them lower-case, the phone search matches the start of the number as Nextech stores it
("(813) 555-5555"), and a refused Appointment create is a 409 AppointmentResponse whose ``comment`` says why.

``FakeNextech`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port). ``/token`` answers the password and
refresh_token grants (counted in ``grants``); ``/api/...`` checks every call carries a token it issued (else 401) and
the ``nx-practice-id`` header (else 400). Every request is recorded in ``requests``. ``patients`` and
``appointments`` hold what was written as it was sent (plus the id, and for an appointment made with a contained
Patient, the prospect it created linked as a participant); answers render them in Nextech's shapes. Tests steer it
with ``token_lifetime``, ``revoke_tokens()``, ``slot_pages``, ``slot_ids``, ``purpose_id``, ``purpose_required``,
``prospect_email_required``, ``bundle_type``, ``throttle(times, retry_after)``, ``fail(status, times)``,
``create_delay``, ``refuse_cancel`` and where the day's slots lie (``utc_offset_minutes``, ``first_hour``).

What Nextech does not publish, the fake makes up and says so: the wording of its errors, and the shape of the 409
AppointmentResponse (the docs name the resource and its ``comment``; the rest is STU3's AppointmentResponse).
"""

import copy
import json
import re
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
LOCATION_NAME = "NexTech Dermatology"  # _slot.md sample's contained Location
EXT = "https://select.nextech-api.com/api/structuredefinition/"
RESOURCE = "https://select.nextech-api.com/api"
# Statuses a PUT may set (_appointment.md: "booked", "cancelled"; "As of 15.8 ... Booked, Arrived, Fulfilled and
# Pending"), and the Select status each shows as (its appointment-status extension; Pending is the sample's).
PUT_STATUSES = {"booked", "cancelled", "arrived", "fulfilled", "pending"}
SELECT_STATUS = {"proposed": (0, "Pending"), "pending": (0, "Pending"), "booked": (1, "Booked")}
PHONE_USES = {"home", "work", "mobile"}  # "One of home, work, or mobile phone" (_patient.md, Create Patient)


@dataclass
class Recorded:
    method: str
    path: str  # /token, or the API path without /api, e.g. /Slot
    query: dict  # name -> list of values, as parse_qs gives them
    headers: dict  # lower-case names
    json: object = None
    form: dict | None = None  # token requests: name -> value


def outcome(text, code="processing"):
    """An OperationOutcome (wording ours: Nextech publishes none)."""
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code, "diagnostics": text}]}


def refusal(comment, appointment_ref=""):
    """A refused Appointment create: _appointment.md, "If the appointment creation fails, an AppointmentResponse ...
    will be returned with a status of Conflict (409). The reason ... will be included in the AppointmentResponse
    Comment field." No sample is published: the other elements are STU3's, the comments' wording is ours."""
    body = {"resourceType": "AppointmentResponse", "participantStatus": "declined", "comment": comment}
    if appointment_ref:
        body["appointment"] = {"reference": appointment_ref}
    return body


def bundle(resources, next_url="", bundle_type=""):
    """A search answer as _slot.md and _appointment.md's samples print it: ``{"resourceType": "Bundle", "entry":
    [{"resource": ...}]}``, no ``type`` and no ``total`` (``bundle_type`` adds the ``"type": "searchset"`` that
    _appointmentstatus.md and _patienttype.md's samples carry). Paging links per _gettingstarted.md, "Pagination"."""
    body = {"resourceType": "Bundle"}
    if bundle_type:
        body["type"] = bundle_type
    body["entry"] = [{"resource": r} for r in resources]
    if next_url:
        body["link"] = [{"relation": "next", "url": next_url}]
    return body


def stored_phone(value: str) -> str:
    """A number as Nextech keeps it: the Patient sample's "(813) 555-5555" for ten digits (a leading 1 dropped)."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) == 10:
        return f"({digits[:3]}) {digits[3:6]}-{digits[6:]}"
    return value


def starts(data, value) -> bool:
    """Nextech's default string match: case-insensitive, outer whitespace ignored, "the start of the data"
    (_gettingstarted.md, "Searching")."""
    return isinstance(data, str) and data.strip().lower().startswith(value.strip().lower())


def _ref_id(reference: str) -> str:
    return (reference or "").rsplit("/", 1)[-1]


def _practitioner(ident):
    """A contained Practitioner as the Slot and Appointment samples print it, empty given name included."""
    return {
        "resourceType": "Practitioner",
        "id": ident,
        "identifier": [{"use": "official", "value": ident}],
        "name": [{"text": f"Provider, Number{ident}", "family": "Provider", "given": [f"Number{ident}", ""]}],
    }


def _location(ident):
    return {
        "resourceType": "Location",
        "id": ident,
        "identifier": [{"use": "official", "value": ident}],
        "name": LOCATION_NAME,
    }


@dataclass
class FakeNextech:
    token_lifetime: int = 3600
    slot_pages: int = 1
    practitioners: tuple = ("9",)
    slot_ids: bool = False  # the Slot sample has no id; True gives each Slot one (for tests about ids)
    purpose_id: str = "224"  # the Slot sample's appointment-purpose ("Skin Check"); "" for Slots without one
    purpose_required: bool = False  # Nextech up to 16.2 requires the appointment-purpose on a create (issue 18)
    prospect_email_required: bool = True  # _appointment.md: a contained Patient needs "An email address"
    bundle_type: str = ""  # "searchset" for the Bundles of Nextech's other samples
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
    _next_id: int = 12300

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

    def add_patient(self, first, last, phone="", email="", birth_date="", postal_code="") -> str:
        """A patient the practice already has, kept as Nextech keeps one (its phone in the stored format)."""
        ident = self._patient_id()
        telecom = [{"system": "phone", "value": stored_phone(phone), "use": "home", "rank": 1}] if phone else []
        telecom += [{"system": "email", "value": email}] if email else []
        record = {
            "resourceType": "Patient",
            "id": ident,
            "name": [{"use": "official", "family": last, "given": [first]}],
        }
        if telecom:
            record["telecom"] = telecom
        if birth_date:
            record["birthDate"] = birth_date
        if postal_code:
            record["address"] = [{"use": "home", "postalCode": postal_code}]
        self.patients[ident] = record
        return ident

    def calls(self, method=None, path=None) -> list:
        return [r for r in self.requests if (not method or r.method == method) and (not path or r.path == path)]

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    @staticmethod
    def _patient_id() -> str:
        return str(uuid.uuid4())  # the Patient sample's ids are GUIDs ("45bb641e-44c5-49a8-a36f-9dd7a0a50828")

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
        method, path, query = request.method, request.path.rstrip("/") or "/", request.query
        if method == "GET" and path == "/Slot":
            return (*self._slots(query), {}, 0)
        if method == "GET" and path == "/Patient":
            return (*self._patient_search(query), {}, 0)
        if method == "POST" and path == "/Patient":
            return (*self._patient_create(request.json), {}, 0)
        if method == "POST" and path == "/Appointment":  # _appointment.md writes POST /Appointment/
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
        """_gettingstarted.md, "Request Access Token" / "Refresh Access Token"; expires_in as the string Azure AD's v1
        endpoint sends (token_response.json)."""
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
            "scope": "user_impersonation",
            "expires_in": str(self.token_lifetime),
            "access_token": access,
            "refresh_token": refresh,
        }

    # --- Slot (_slot.md) ---

    def _slot(self, location, practitioner, appointment_type, slot_start):
        """One free Slot in the shape of _slot.md's sample (lines 25-89): contained Location and Practitioner (its
        given names end with ""), type and purpose extensions, the schedule reference naming both, no id."""
        extension = [
            {
                "url": EXT + "appointment-type",
                "valueReference": {"reference": f"appointment-type/{appointment_type}", "display": "Type"},
            }
        ]
        if self.purpose_id:
            extension.append(
                {
                    "url": EXT + "appointment-purpose",
                    "valueReference": {"reference": f"appointment-purpose/{self.purpose_id}", "display": "Purpose"},
                }
            )
        slot = {
            "resourceType": "Slot",
            "contained": [_location(location), _practitioner(practitioner)],
            "extension": extension,
            "schedule": {"reference": f"schedule/location_{location}_practitioner_{practitioner}"},
            "status": "free",
            "start": slot_start.isoformat(),
            "end": (slot_start + timedelta(minutes=30)).isoformat(),
        }
        if self.slot_ids:
            slot = {"resourceType": "Slot", "id": f"{location}-{practitioner}-{slot_start:%Y%m%d%H%M}", **slot}
        return slot

    def _slots(self, query):
        """GET /Slot: start required, at least one location actor, appointment-type (or slot-length) required, at
        most 60 days (45 without an upper bound); only free slots (_slot.md, "Search")."""
        starts_at = query.get("start", [])
        low = next((s[2:] for s in starts_at if s.startswith("ge")), "")
        high = next((s[2:] for s in starts_at if s.startswith("lt")), "")
        actors = query.get("schedule.actor", [])
        types = query.get("appointment-type", [])
        if not low or not any(a.startswith("location/") for a in actors) or not types:
            return 400, outcome("start, a location actor and appointment-type are required", "required")
        location = next(a.split("/", 1)[1] for a in actors if a.startswith("location/"))
        asked = [a.split("/", 1)[1] for a in actors if a.startswith("practitioner/")]
        appointment_type = _ref_id(types[0])  # "appointment-type/87" as the docs send it (a bare "87" works too)
        window_start = datetime.fromisoformat(low)
        window_end = datetime.fromisoformat(high) if high else window_start + timedelta(days=45)
        if window_end - window_start > timedelta(days=60):
            return 400, outcome("The search cannot exceed 60 days", "too-costly")
        local = window_start.astimezone(timezone(timedelta(minutes=self.utc_offset_minutes)))
        first = local.replace(hour=self.first_hour, minute=0, second=0, microsecond=0)
        if first + timedelta(hours=3) < window_start:  # the day's last slot (12:00) is past: the next day's
            first += timedelta(days=1)
        slots = []
        for practitioner in asked or list(self.practitioners):
            for hour in range(4):  # 09:00 .. 12:00, 30 minutes each
                slot_start = first + timedelta(hours=hour)
                if not window_start <= slot_start < window_end or self._is_taken(slot_start.isoformat()):
                    continue
                if self._booked(practitioner, slot_start.isoformat()):
                    continue
                slots.append(self._slot(location, practitioner, appointment_type, slot_start))
        page = int(query.get("page", ["1"])[0])
        if self.slot_pages > 1:
            per_page = -(-len(slots) // self.slot_pages)
            chunk = slots[(page - 1) * per_page : page * per_page]
            if page < self.slot_pages:
                params = [(k, v) for k, values in query.items() if k != "page" for v in values] + [("page", page + 1)]
                return 200, bundle(chunk, f"{self.base_url}/Slot?{urlencode(params)}", self.bundle_type)
            return 200, bundle(chunk, bundle_type=self.bundle_type)
        return 200, bundle(slots, bundle_type=self.bundle_type)

    @staticmethod
    def _instant(value):
        """A start as the instant it names (the same time written with another UTC offset is the same slot)."""
        try:
            return datetime.fromisoformat(value)
        except (TypeError, ValueError):
            return value

    def _is_taken(self, start_iso) -> bool:
        """Someone else booked this start."""
        instant = self._instant(start_iso)
        return any(self._instant(t) == instant for t in self.taken)

    def _booked(self, practitioner, start_iso) -> bool:
        instant = self._instant(start_iso)
        return any(
            self._instant(a["start"]) == instant
            and a.get("status") not in ("cancelled", "noshow", "entered-in-error")
            and f"practitioner/{practitioner}" in [p["actor"]["reference"].lower() for p in a["participant"]]
            for a in self.appointments.values()
        )

    # --- Patient (_patient.md) ---

    def patient_answer(self, record):
        """A stored patient as Nextech answers it (_patient.md's example, patient_read.json): every given name list
        ends with "", the name has a ``text``, and numbers are in the stored format."""
        answer = copy.deepcopy(record)
        answer.setdefault("meta", {"lastUpdated": "2018-12-20T09:13:28.297+00:00"})
        answer["identifier"] = [{"use": "official", "value": record["id"]}]
        for name in answer.get("name", []):
            given, family = name.get("given") or [], name.get("family")
            if isinstance(family, str) and all(isinstance(g, str) for g in given):
                name.setdefault("text", " ".join([*given, family]).strip())
            name["given"] = [*given, ""]
        for point in answer.get("telecom", []):
            if point.get("system") == "phone":
                point["value"] = stored_phone(point.get("value", ""))
        return answer

    def _patient_search(self, query):
        """GET /Patient: each parameter matched from the start of the data; phone against any of the numbers."""
        found = list(self.patients.values())
        for name, values in query.items():
            value = values[0]
            if name == "phone":
                found = [p for p in found if any(starts(stored_phone(t.get("value", "")), value) for t in _phones(p))]
            elif name == "email":
                found = [p for p in found if any(starts(t.get("value"), value) for t in _emails(p))]
            elif name == "family":
                found = [p for p in found if any(starts(n.get("family"), value) for n in p.get("name", []))]
            elif name == "given":
                found = [
                    p for p in found if any(starts(g, value) for n in p.get("name", []) for g in n.get("given", []))
                ]
            elif name == "birthdate":
                found = [p for p in found if p.get("birthDate") == value.removeprefix("eq")]
            elif name == "identifier":
                found = [p for p in found if p["id"] == value]
        return 200, bundle([self.patient_answer(p) for p in found], bundle_type=self.bundle_type)

    def _patient_create(self, body):
        """POST /Patient (_patient.md, "Create Patient"): first and last name, one of home, work or mobile phone, an
        email address, birthDate and address.postalCode are required; a match of them all on an existing patient is
        a 409 "indicating the patient already exists"; else 201 with the Patient."""
        if not isinstance(body, dict) or body.get("resourceType") != "Patient":
            return 400, outcome("A Patient is required", "required")
        missing = _prospect_missing(body, email_required=True)
        address = (body.get("address") or [{}])[0]
        missing += [] if body.get("birthDate") else ["birthDate"]
        missing += [] if address.get("postalCode") else ["address.postalCode"]
        if missing:
            return 400, outcome(f"Missing required fields: {', '.join(missing)}", "required")
        for existing in self.patients.values():
            if _same_key(existing, body):
                return 409, outcome("A patient with the same information already exists", "duplicate")
        ident = self._patient_id()
        self.patients[ident] = {**body, "id": ident}
        return 201, self.patient_answer(self.patients[ident])

    # --- Appointment (_appointment.md) ---

    def appointment_answer(self, record):
        """A stored appointment as Nextech answers it (_appointment.md "### Sample", lines 26-128): contained
        Location and Practitioner, the appointment-status extension, capitalised references with a display and no
        participant status, no ``status`` at all for a Select status FHIR has no word for (stored as None)."""
        refs = [p["actor"]["reference"] for p in record["participant"]]
        practitioner = next((_ref_id(r) for r in refs if r.lower().startswith("practitioner/")), "")
        location = next((_ref_id(r) for r in refs if r.lower().startswith("location/")), LOCATION_ID)
        status = record.get("status")
        code, display = SELECT_STATUS.get(status, (2, "Confirmed"))
        extension = [
            {
                "url": EXT + "appointment-status",
                "valueReference": {"reference": f"appointment-status/{code}", "display": display},
            }
        ]
        extension += [e for e in record.get("extension", []) if "valueReference" in e]  # type and purpose
        answer = {
            "resourceType": "Appointment",
            "id": record["id"],
            "meta": {"lastUpdated": "2018-01-25T13:23:00.55+00:00"},
            "contained": [_location(location), _practitioner(practitioner)],
            "extension": extension,
            "identifier": [{"use": "official", "value": record["id"]}],
        }
        if status:
            answer["status"] = status
        answer.update(
            description="Appointment",
            start=record["start"],
            end=record["end"],
            created="2017-07-27T21:09:19.913Z",
        )
        if record.get("comment"):
            answer["comment"] = record["comment"]
        answer["participant"] = [{"actor": {"reference": _capitalised(r), "display": "Name"}} for r in refs]
        return answer

    def _appointment_create(self, body):
        """POST /Appointment (_appointment.md, "Book Appointment"): status proposed, start and end, location and
        practitioner participants, and a patient participant or a contained Patient (given and family name, a
        phone, an email) from which a prospect is created and linked. A failure is a 409 AppointmentResponse with the
        reason in its comment (and the prospect deleted: never stored here); success a 201 with the Appointment."""
        if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
            return 400, outcome("An Appointment is required", "required")
        refs = [p.get("actor", {}).get("reference", "") for p in body.get("participant", [])]
        kinds = {r.split("/")[0].lower() for r in refs}
        contained = [r for r in body.get("contained", []) if r.get("resourceType") == "Patient"]
        urls = {e.get("url") for e in body.get("extension", [])}
        problems = [
            body.get("status") != "proposed" and "The status must be proposed",
            not (body.get("start") and body.get("end")) and "A start and an end are required",
            not {"location", "practitioner"} <= kinds and "A location and a practitioner are required",
            "patient" not in kinds and not contained and "A patient or a contained patient is required",
            self.purpose_required and EXT + "appointment-purpose" not in urls and "An appointment purpose is required",
        ]
        if contained and "patient" not in kinds:
            missing = _prospect_missing(contained[0], email_required=self.prospect_email_required)
            problems.append(bool(missing) and f"The new patient needs: {', '.join(missing)}")
        problems = [p for p in problems if p]
        if problems:
            return 409, refusal("; ".join(problems))
        practitioner = next(_ref_id(r) for r in refs if r.lower().startswith("practitioner/"))
        if self._is_taken(body["start"]) or self._booked(practitioner, body["start"]):
            return 409, refusal("The requested time is no longer available")
        ident = self._new_id()
        record = {k: v for k, v in body.items() if k != "contained"}
        if "patient" not in kinds:  # "used to create a prospect that is then linked to the appointment"
            prospect = self._patient_id()
            self.patients[prospect] = {**contained[0], "id": prospect}
            record["participant"] = [{"actor": {"reference": f"patient/{prospect}"}}, *body["participant"]]
        self.appointments[ident] = {**record, "id": ident}
        return 201, self.appointment_answer(self.appointments[ident])

    def _appointment_search(self, query):
        """GET /Appointment: patient (its id or chart number, as in ``?patient=12345``), date (eq, or ge/lt
        ranges), location.id, practitioner.id, status; comma-separated values are ORed."""
        found = list(self.appointments.values())
        for name, values in query.items():
            if name == "date":
                found = [a for a in found if all(_date_matches(a["start"][:10], v) for v in values)]
                continue
            wanted = set(values[0].split(","))
            if name == "patient":
                found = [a for a in found if wanted & {_ref_id(r) for r in _refs(a, "patient")}]
            elif name == "location.id":
                found = [a for a in found if wanted & {_ref_id(r) for r in _refs(a, "location")}]
            elif name == "practitioner.id":
                found = [a for a in found if wanted & {_ref_id(r) for r in _refs(a, "practitioner")}]
            elif name == "status":
                found = [a for a in found if a.get("status") in wanted]
        return 200, bundle([self.appointment_answer(a) for a in found], bundle_type=self.bundle_type)

    def _appointment_update(self, ident, body):
        """PUT /Appointment/{id} with a status (_appointment.md: confirm, update status, request cancellation);
        answered with the Appointment."""
        if ident not in self.appointments:
            return 404, outcome(f"Appointment {ident} not found", "not-found")
        status = (body or {}).get("status")
        if status == "cancelled" and self.refuse_cancel:
            return 422, outcome(self.refuse_cancel, "business-rule")
        if status not in PUT_STATUSES:
            return 400, outcome(f"status must be one of {', '.join(sorted(PUT_STATUSES))}", "value")
        self.appointments[ident]["status"] = status
        return 200, self.appointment_answer(self.appointments[ident])


def _phones(patient):
    return [t for t in patient.get("telecom", []) if t.get("system") == "phone"]


def _emails(patient):
    return [t for t in patient.get("telecom", []) if t.get("system") == "email"]


def _refs(appointment, kind):
    return [
        p["actor"]["reference"] for p in appointment["participant"] if p["actor"]["reference"].lower().startswith(kind)
    ]


def _capitalised(reference):
    kind, _, ident = reference.partition("/")
    return f"{kind[:1].upper()}{kind[1:]}/{ident}"


def _date_matches(day, value):
    for prefix, test in (("ge", day.__ge__), ("gt", day.__gt__), ("le", day.__le__), ("lt", day.__lt__)):
        if value.startswith(prefix):
            return test(value[2:12])
    return day == value.removeprefix("eq")[:10]


def _prospect_missing(patient, *, email_required):
    """What a Patient to create lacks of the name, phone and email Nextech requires."""
    name = (patient.get("name") or [{}])[0]
    missing = [] if name.get("family") and any(name.get("given") or []) else ["given and family name"]
    phones = [t for t in _phones(patient) if t.get("value") and t.get("use", "home") in PHONE_USES]
    missing += [] if phones else ["a home, work or mobile phone"]
    if email_required:
        missing += [] if any(t.get("value") for t in _emails(patient)) else ["an email address"]
    return missing


def _same_key(existing, body):
    """Nextech's duplicate check: "first, last, email address, birthdate, zip code, and one of home, work, or mobile
    phone numbers" all match."""

    def key(patient):
        name = (patient.get("name") or [{}])[0]
        return (
            (name.get("family") or "").lower(),
            ((name.get("given") or [""])[0] or "").lower(),
            {(t.get("value") or "").lower() for t in _emails(patient)},
            patient.get("birthDate"),
            ((patient.get("address") or [{}])[0]).get("postalCode"),
            {re.sub(r"\D", "", t.get("value", ""))[-10:] for t in _phones(patient)},
        )

    old, new = key(existing), key(body)
    return old[:2] == new[:2] and old[2] & new[2] and old[3:5] == new[3:5] and old[5] & new[5]


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
