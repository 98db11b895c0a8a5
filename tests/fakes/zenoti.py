"""A fake of Zenoti's service booking API at the HTTP boundary (an ``httpx.MockTransport`` handler: the client
speaks httpx, which the ``responses`` library cannot intercept).

Built from Zenoti's published API reference (docs.zenoti.com/reference: "Create a service booking", "Retrieve
available slots for a service booking", "Reserve a slot for a service booking", "Confirm a service booking",
"Cancel a service booking"; sources in tests/data/providers/SOURCES.md, "zenoti/"): the field names and casing of
each answer are the reference's tables (``slots[].Time`` / ``Available`` / ``Priority`` / ``Warnings`` /
``SalePrice`` capitalised; ``is_reserved``, ``reservation_id``, ``expiry_time``, ``blocking_time``; ``is_confirmed``
and ``invoice.invoice_id``; ``success`` and ``is_charge_applied``; errors as ``{"code", "message"}``; the cancel
error codes 502/602 as listed). Ids are 32-character GUIDs as the reference says.

Rules: ``Authorization: apikey <key>`` (else 401); a reserve of a time not free answers ``is_reserved: false``
with an error; a reserved time stays out of others' slots until confirmed or ``expire()``d; confirming a booking
that is not reserved answers ``is_confirmed: false`` with an error; cancelling an unknown invoice answers 502
"invoice doesn't have any appointments". ``fail_next(status, times)``; ``requests`` records (method, path, params,
json).
"""

import json
import uuid
from datetime import date, datetime, timedelta

import httpx

API_KEY = "zenoti-test-key"
CENTER_ID = "c07c82cc-a5f9-4d9d-ad64-d89a3acfe3aa"  # from the zenoti-sdk README's example
SERVICE_ID = "3199d02a-165a-40a1-b601-690c261c1a81"
THERAPIST_ID = "4c6b1d06-c2b5-4143-a77f-c1936fe72b69"


def _guid():
    return uuid.uuid4().hex


class FakeZenoti:
    def __init__(self):
        self.requests, self.failures = [], []
        self.open_times = set()  # naive local datetimes
        self.therapist_of = {}  # a time only this therapist offers (others: any therapist)
        self.bookings = {}  # booking id -> {date, guest, service, therapist, reserved, confirmed, invoice}
        self.invoices = {}  # invoice id -> booking id
        self.guests = {}
        self.appointments = {}  # guest id -> [appointment]

    def transport(self):
        return httpx.MockTransport(self)

    def fail_next(self, status, times=1):
        self.failures += [status] * times

    def taken(self):
        return {b["reserved"] for b in self.bookings.values() if b["reserved"] and not b.get("cancelled")}

    def expire(self):
        for booking in self.bookings.values():
            if not booking["confirmed"]:
                booking["reserved"] = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path, params = request.url.path, dict(request.url.params)
        self.requests.append((request.method, path, params, body))
        if request.headers.get("authorization") != f"apikey {API_KEY}":
            return httpx.Response(401, json={"error": {"code": 401, "message": "Unauthorized."}})
        if self.failures:
            return httpx.Response(self.failures.pop(0), json={"error": {"code": 500, "message": "Server error."}})
        parts = path.strip("/").split("/")
        if (request.method, path) == ("POST", "/v1/bookings"):
            return self._create(body)
        if parts[:2] == ["v1", "bookings"] and len(parts) >= 4:
            booking = self.bookings.get(parts[2])
            if booking is None:
                return httpx.Response(400, json={"error": {"code": 400, "message": "The request is invalid."}})
            if parts[3:] == ["slots"] and request.method == "GET":
                return self._slots(booking)
            if parts[3:] == ["slots", "reserve"] and request.method == "PUT":
                return self._reserve(parts[2], booking, body)
            if parts[3:] == ["slots", "confirm"] and request.method == "POST":
                return self._confirm(parts[2], booking, body)
        if (request.method, path) == ("GET", "/v1/guests/search"):
            found = [g for g in self.guests.values() if g["personal_info"]["mobile_phone"]["number"] == params["phone"]]
            return httpx.Response(
                200, json={"guests": found, "page_info": {"total": len(found), "page": 1, "size": 10}}
            )
        if (request.method, path) == ("POST", "/v1/guests"):
            guest = {"id": _guid(), "center_id": body["center_id"], "personal_info": body["personal_info"]}
            self.guests[guest["id"]] = guest
            return httpx.Response(200, json=guest)
        if parts[:2] == ["v1", "guests"] and parts[3:] == ["appointments"]:
            day = params.get("start_date")
            found = [
                a for a in self.appointments.get(parts[2], []) if a["appointment_services"][0]["start_time"][:10] == day
            ]
            page = {"total": len(found), "page": 1, "size": 10}
            return httpx.Response(200, json={"appointments": found, "page_info": page})
        if parts[:2] == ["v1", "invoices"] and parts[3:] == ["cancel"] and request.method == "PUT":
            return self._cancel(parts[2])
        if path == f"/v1/centers/{CENTER_ID}/services":
            return httpx.Response(200, json=SERVICES)
        if path == f"/v1/centers/{CENTER_ID}/therapists":
            return httpx.Response(200, json=THERAPISTS)
        return httpx.Response(404, json={"error": {"code": 404, "message": f"No route {path}"}})

    def _create(self, body):
        if body.get("center_id") != CENTER_ID:
            return httpx.Response(200, json={"id": None, "error": {"code": 400, "message": "Invalid center."}})
        guest = body["guests"][0]
        item = guest["items"][0]
        booking_id = _guid()
        self.bookings[booking_id] = {
            "date": date.fromisoformat(body["date"]),
            "guest": guest.get("id"),
            "service": item["item"]["id"],
            "therapist": (item.get("therapist") or {}).get("id"),
            "reserved": None,
            "confirmed": False,
            "invoice": None,
        }
        return httpx.Response(200, json={"id": booking_id, "error": None})

    def _slots(self, booking):
        taken, therapist = self.taken(), booking["therapist"]
        slots = [
            {
                "Time": moment.isoformat(timespec="seconds"),
                "Warnings": [],
                "Priority": 0,
                "Available": moment not in taken,
                "SalePrice": 120.0,
            }
            for moment in sorted(self.open_times)
            if moment.date() == booking["date"]
            and (therapist is None or self.therapist_of.get(moment, therapist) == therapist)
        ]
        return httpx.Response(200, json={"slots": slots, "future_days": [], "next_available_day": None, "Error": None})

    def _reserve(self, booking_id, booking, body):
        moment = datetime.fromisoformat(body["slot_time"])
        if moment not in self.open_times or moment in self.taken():
            return httpx.Response(
                200,
                json={
                    "is_reserved": False,
                    "reservation_id": None,
                    "expiry_time": None,
                    "blocking_time": 0,
                    "invoices": None,
                    "error": {"code": 4006, "message": "The selected slot is not available."},
                },
            )
        booking["reserved"] = moment
        return httpx.Response(
            200,
            json={
                "is_reserved": True,
                "reservation_id": _guid(),
                "expiry_time": moment.replace(hour=0, minute=0).isoformat(timespec="seconds"),
                "blocking_time": 10,
                "invoices": None,
                "error": None,
            },
        )

    def _confirm(self, booking_id, booking, body):
        if not booking["reserved"]:
            return httpx.Response(
                200,
                json={
                    "is_confirmed": False,
                    "invoice": None,
                    "error": {"code": 4010, "message": "Reservation expired or not found."},
                },
            )
        invoice_id = _guid()
        booking.update(confirmed=True, invoice=invoice_id)
        self.invoices[invoice_id] = booking_id
        if booking["guest"]:
            # "List all appointments of a guest": appointment groups, their services carrying the times.
            self.appointments.setdefault(booking["guest"], []).append(
                {
                    "appointment_group_id": _guid(),
                    "no_of_guests": 1,
                    "invoice_id": invoice_id,
                    "invoice_status": 0,
                    "is_rebooking": False,
                    "notes": (body or {}).get("notes", ""),
                    "center_id": CENTER_ID,
                    "appointment_services": [
                        {
                            "appointment_id": _guid(),
                            "invoice_item_id": _guid(),
                            "service": {"id": booking["service"]},
                            "start_time": booking["reserved"].isoformat(timespec="seconds"),
                            "end_time": (booking["reserved"] + timedelta(hours=1)).isoformat(timespec="seconds"),
                        }
                    ],
                    "group_invoice_id": None,
                    "is_feedback_submitted": False,
                }
            )
        return httpx.Response(
            200,
            json={
                "is_confirmed": True,
                "invoice": {"invoice_id": invoice_id, "invoice_status": 0, "guest": {"id": booking["guest"]}},
                "error": None,
            },
        )

    def _cancel(self, invoice_id):
        booking_id = self.invoices.get(invoice_id)
        if booking_id is None:
            return httpx.Response(
                200,
                json={
                    "success": False,
                    "is_charge_applied": False,
                    "error": {"code": 502, "message": "invoice doesn't have any appointments."},
                },
            )
        self.bookings[booking_id]["cancelled"] = True
        for groups in self.appointments.values():
            for group in groups:
                if group["invoice_id"] == invoice_id:
                    group["invoice_status"] = 99  # Voided
        return httpx.Response(200, json={"success": True, "is_charge_applied": False, "error": None})


SERVICES = {
    "services": [{"id": SERVICE_ID, "code": "BTX", "name": "Botox consult", "duration": 60}],
    "page_info": {"total": 1, "page": 1, "size": 10},
}
THERAPISTS = {
    "therapists": [
        {"id": THERAPIST_ID, "code": "NP1", "personal_info": {"first_name": "Ana", "last_name": "Reyes"}},
    ]
}
