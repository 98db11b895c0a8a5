"""The Nextech adapter (emr/nextech.py) against a local fake Nextech (tests/fakes/nextech.py); never the internet."""

import json
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from emr.base import WRITE, AppointmentRequest, EmrError, PatientInfo, Slot, SlotTakenError
from emr.nextech import NextechClient, nextech_phone

from .conftest import log_text

pytest_plugins = ["tests.fakes.nextech"]  # the fake_nextech fixture

# The fake's account (tests/fakes/nextech.py), repeated so this module does not import the plugin module itself.
CLIENT_ID, USERNAME, PASSWORD, PRACTICE_ID, LOCATION_ID = (
    "nx-client",
    "api-user@spa.example",
    "api-password",
    "PRACTICE-1",
    "1",
)

# Nextech's own published sample answers (their sources: SOURCES.md in that folder).
VENDOR_SAMPLES = Path(__file__).parent / "data" / "providers" / "nextech" / "vendor-samples"

EST = timezone(timedelta(hours=-5))
DAY = datetime(2026, 12, 1, tzinfo=EST)
JANE = PatientInfo(first_name="Jane", last_name="Doe", phone="+16175550123", email="jane@example.com")


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def make_client(fake_nextech, sleeps):
    clients = []

    def build(**extra):
        options = {
            "client_id": CLIENT_ID,
            "username": USERNAME,
            "password": PASSWORD,
            "practice_id": PRACTICE_ID,
            "location_id": LOCATION_ID,
            "base_url": fake_nextech.base_url,
            "token_url": fake_nextech.token_url,
            "timeout": 2.0,
            "sleep": sleeps.append,
            **extra,
        }
        client = NextechClient(**options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


@pytest.fixture
def nextech(make_client):
    return make_client()


def slot_at(hour, provider="9", service="12"):
    start = DAY.replace(hour=hour)
    return Slot(start=start, end=start + timedelta(minutes=30), provider_ref=provider, service_ref=service)


def skipped(resource="Slot", reason="invalid"):
    labels = {"emr": "nextech", "resource": resource, "reason": reason}
    return REGISTRY.get_sample_value("medspa_emr_resources_skipped_total", labels) or 0.0


def serve_slots(fake_nextech, monkeypatch, change):
    """The fake's Slot pages, passed through ``change(body)`` before they are answered."""
    original = fake_nextech._slots

    def changed(query):
        status, body = original(query)
        change(body)
        return status, body

    monkeypatch.setattr(fake_nextech, "_slots", changed)


def request_for(slot, booking_id=41, patient_id="", comment=""):
    return AppointmentRequest(
        booking_id=booking_id, slot=slot, patient=JANE, emr_patient_id=patient_id, comment=comment
    )


# --- token ---------------------------------------------------------------------------------------------------------


def test_capabilities():
    assert NextechClient.capabilities == frozenset({WRITE})


def test_token_fetched_once_and_reused_across_calls_and_workers(fake_nextech, nextech, make_client):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    make_client().availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))  # another worker: cache

    assert fake_nextech.grants == {"password": 1}
    (grant,) = fake_nextech.calls("POST", "/token")
    assert grant.form == {
        "grant_type": "password",
        "client_id": CLIENT_ID,
        "username": USERNAME,
        "password": PASSWORD,
        "resource": "https://select.nextech-api.com/api",
    }
    api_calls = fake_nextech.calls("GET", "/Slot")
    assert len(api_calls) == 3
    assert len({c.headers["authorization"] for c in api_calls}) == 1
    assert all(c.headers["nx-practice-id"] == PRACTICE_ID for c in api_calls)


def test_token_refreshed_with_refresh_token_a_minute_before_expiry(fake_nextech, nextech):
    fake_nextech.token_lifetime = 30  # inside the one-minute margin: stale at the next call
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert fake_nextech.grants == {"password": 1, "refresh_token": 1}
    refresh = fake_nextech.calls("POST", "/token")[1]
    assert refresh.form["refresh_token"].startswith("rt-")
    assert "password" not in refresh.form


def test_failed_refresh_falls_back_to_password_grant(fake_nextech, nextech):
    fake_nextech.token_lifetime = 30
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    fake_nextech.refresh_tokens.clear()  # revoked
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert fake_nextech.grants == {"password": 2, "refresh_token": 1}


def test_401_renews_the_token_and_retries_once(fake_nextech, nextech):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    fake_nextech.revoke_tokens()

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert slots
    assert fake_nextech.grants == {"password": 1, "refresh_token": 1}
    statuses = [c.headers["authorization"] for c in fake_nextech.calls("GET", "/Slot")]
    assert len(statuses) == 3 and statuses[1] != statuses[2]


def test_bad_credentials_are_not_transient(make_client, fake_nextech):
    client = make_client(password="wrong")
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert caught.value.transient is False and caught.value.status == 400
    assert "invalid username or password" in str(caught.value)


# --- slots ---------------------------------------------------------------------------------------------------------


def test_slot_search_sends_exactly_the_documented_parameters(fake_nextech, nextech):
    end = DAY + timedelta(days=7)
    nextech.availability(service_ref="12", start=DAY, end=end, provider_ref="9")

    (call,) = fake_nextech.calls("GET", "/Slot")
    assert call.query == {
        "start": [f"ge{DAY.isoformat()}", f"lt{end.isoformat()}"],
        "schedule.actor": [f"location/{LOCATION_ID}", "practitioner/9"],
        "appointment-type": ["12"],
        "_count": ["50"],
    }


def test_slot_search_without_provider_sends_only_the_location_actor(fake_nextech, nextech):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    (call,) = fake_nextech.calls("GET", "/Slot")
    assert call.query["schedule.actor"] == [f"location/{LOCATION_ID}"]


def test_slots_parsed_across_pages(fake_nextech, nextech):
    fake_nextech.slot_pages = 2
    fake_nextech.practitioners = ("9", "11")

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert len(fake_nextech.calls("GET", "/Slot")) == 2
    assert fake_nextech.calls("GET", "/Slot")[1].query["page"] == ["2"]
    assert len(slots) == 8
    assert [s.start for s in slots] == sorted(s.start for s in slots)
    assert {s.provider_ref for s in slots} == {"9", "11"}
    first = slots[0]
    assert first.start == DAY.replace(hour=9) and first.start.tzinfo is not None
    assert first.end - first.start == timedelta(minutes=30)
    assert (first.service_ref, first.location_ref) == ("12", LOCATION_ID)
    assert first.emr_slot_id


def test_only_free_slots_are_returned(fake_nextech, nextech, monkeypatch):
    original = fake_nextech._slots

    def with_busy(query):
        status, body = original(query)
        body["entry"][0]["resource"]["status"] = "busy"
        return status, body

    monkeypatch.setattr(fake_nextech, "_slots", with_busy)
    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert len(slots) == 3 and DAY.replace(hour=9) not in {s.start for s in slots}


def test_naive_datetimes_are_refused(nextech):
    with pytest.raises(ValueError):
        nextech.availability(service_ref="12", start=datetime(2026, 12, 1), end=datetime(2026, 12, 2))


# --- patients ------------------------------------------------------------------------------------------------------


def test_patient_found_by_phone_sent_as_ten_digits(fake_nextech, nextech):
    ident = fake_nextech.add_patient("Jane", "Doe", phone="6175550123")

    assert nextech.find_or_create_patient(JANE) == ident
    (search,) = fake_nextech.calls("GET", "/Patient")
    assert search.query == {"phone": ["6175550123"]}
    assert not fake_nextech.calls("POST", "/Patient")


def test_patient_found_by_name_when_phone_unknown(fake_nextech, nextech):
    ident = fake_nextech.add_patient("Jane", "Doe", email="jane@example.com")

    assert nextech.find_or_create_patient(JANE) == ident
    searches = fake_nextech.calls("GET", "/Patient")
    assert [s.query for s in searches] == [{"phone": ["6175550123"]}, {"family": ["Doe"], "given": ["Jane"]}]


def test_patient_created_when_not_found(fake_nextech, nextech):
    fake_nextech.add_patient("Jane", "Doe", phone="5085550000")  # same name, another phone: another person

    ident = nextech.find_or_create_patient(JANE)

    (create,) = fake_nextech.calls("POST", "/Patient")
    assert create.json == {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
        "telecom": [
            {"system": "phone", "value": "6175550123", "use": "mobile"},
            {"system": "email", "value": "jane@example.com"},
        ],
    }
    assert fake_nextech.patients[ident]["name"][0]["family"] == "Doe"
    assert nextech.find_or_create_patient(JANE) == ident  # found by phone the next time
    assert len(fake_nextech.calls("POST", "/Patient")) == 1


def test_phone_shared_with_another_family_is_not_a_match(fake_nextech, nextech):
    other = fake_nextech.add_patient("Mary", "Smith", phone="6175550123")

    ident = nextech.find_or_create_patient(JANE)

    assert ident != other and len(fake_nextech.calls("POST", "/Patient")) == 1


def test_phone_match_prefers_the_same_given_name(fake_nextech, nextech):
    fake_nextech.add_patient("John", "Doe", phone="6175550123")
    jane = fake_nextech.add_patient("Jane", "Doe", phone="6175550123")

    assert nextech.find_or_create_patient(JANE) == jane


def test_nextech_phone():
    assert nextech_phone("+16175550123") == "6175550123"
    assert nextech_phone("+447700900123") == "447700900123"


# --- appointments --------------------------------------------------------------------------------------------------


def test_appointment_created(fake_nextech, nextech):
    appointment = nextech.create_appointment(request_for(slot_at(10), patient_id="77", comment="Botox 20 units"))

    assert appointment.status == "proposed"
    assert appointment.start == DAY.replace(hour=10)
    (post,) = fake_nextech.calls("POST", "/Appointment")
    ext = "https://select.nextech-api.com/api/structuredefinition/"
    assert post.json == {
        "resourceType": "Appointment",
        "status": "proposed",
        "start": "2026-12-01T10:00:00-05:00",
        "end": "2026-12-01T10:30:00-05:00",
        "comment": "booking:41 Botox 20 units",
        "participant": [
            {"actor": {"reference": "patient/77"}, "status": "accepted"},
            {"actor": {"reference": f"location/{LOCATION_ID}"}, "status": "accepted"},
            {"actor": {"reference": "practitioner/9"}, "status": "accepted"},
        ],
        "extension": [
            {"url": ext + "appointment-type", "valueReference": {"reference": "appointment-type/12"}},
            {"url": ext + "appointment-schedule", "valueString": "book"},
        ],
    }
    assert list(fake_nextech.appointments) == [appointment.emr_appointment_id]


def test_appointment_without_patient_id_finds_or_creates_the_patient(fake_nextech, nextech):
    nextech.create_appointment(request_for(slot_at(10)))
    (patient_id,) = fake_nextech.patients
    (stored,) = fake_nextech.appointments.values()
    assert stored["participant"][0]["actor"]["reference"] == f"patient/{patient_id}"


def test_409_raises_slot_taken(fake_nextech, nextech):
    fake_nextech.taken.add("2026-12-01T10:00:00-05:00")

    with pytest.raises(SlotTakenError) as caught:
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert caught.value.status == 409 and caught.value.transient is False
    assert "no longer available" in str(caught.value)
    assert not fake_nextech.appointments


def test_429_retried_with_retry_after_delays(fake_nextech, nextech, sleeps):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))  # token first
    fake_nextech.throttle(2, retry_after=3)

    appointment = nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert appointment.emr_appointment_id in fake_nextech.appointments
    assert sleeps == [3.0, 3.0]
    assert len(fake_nextech.calls("POST", "/Appointment")) == 3


def test_5xx_exhausted_raises_transient_after_backoff(fake_nextech, nextech, sleeps):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    fake_nextech.fail(503, times=10)

    with pytest.raises(EmrError) as caught:
        nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert caught.value.transient is True and caught.value.status == 503
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(fake_nextech.calls("GET", "/Slot")) == 1 + 4


def test_5xx_then_success_recovers(fake_nextech, nextech, sleeps):
    fake_nextech.fail(502, times=1)
    assert nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert sleeps == [0.5]


def test_5xx_on_create_is_not_retried(fake_nextech, nextech, sleeps):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    fake_nextech.fail(502, times=1)

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert caught.value.transient is True and sleeps == []
    assert len(fake_nextech.calls("POST", "/Appointment")) == 1


def test_other_4xx_is_permanent_with_the_servers_message(fake_nextech, nextech, monkeypatch):
    monkeypatch.setattr(
        fake_nextech,
        "_slots",
        lambda query: (
            400,
            {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "error", "code": "invalid", "diagnostics": "Window is longer than 60 days"}],
            },
        ),
    )
    with pytest.raises(EmrError) as caught:
        nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert caught.value.transient is False and caught.value.status == 400
    assert "Window is longer than 60 days" in str(caught.value)


def test_timed_out_create_is_found_not_written_twice(fake_nextech, make_client, sleeps):
    client = make_client(timeout=0.5)
    client.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    fake_nextech.create_delay = 1.5  # stored, but answered after the client gave up
    slot = slot_at(10)

    with pytest.raises(EmrError) as caught:
        client.create_appointment(request_for(slot, booking_id=41, patient_id="77"))
    assert caught.value.transient is True
    assert len(fake_nextech.calls("POST", "/Appointment")) == 1 and sleeps == []

    # The caller checks before writing again.
    found = client.find_appointment(booking_id=41, patient_id="77", start=slot.start)
    assert found is not None
    assert list(fake_nextech.appointments) == [found.emr_appointment_id]
    assert found.start == slot.start
    (search,) = fake_nextech.calls("GET", "/Appointment")
    assert search.query == {"patient": ["patient/77"], "date": ["eq2026-12-01"]}


def test_find_appointment_matches_the_exact_booking_id(fake_nextech, nextech):
    nextech.create_appointment(request_for(slot_at(10), booking_id=123, patient_id="77"))

    assert nextech.find_appointment(booking_id=12, patient_id="77", start=DAY.replace(hour=10)) is None
    assert nextech.find_appointment(booking_id=123, patient_id="77", start=DAY.replace(hour=10)) is not None
    assert nextech.find_appointment(booking_id=123, patient_id="78", start=DAY.replace(hour=10)) is None


def test_confirm_and_cancel_send_put_with_status(fake_nextech, nextech):
    created = nextech.create_appointment(request_for(slot_at(10), patient_id="77"))
    ident = created.emr_appointment_id

    confirmed = nextech.confirm_appointment(ident)
    nextech.cancel_appointment(ident)

    puts = fake_nextech.calls("PUT", f"/Appointment/{ident}")
    assert [p.json for p in puts] == [
        {"resourceType": "Appointment", "id": ident, "status": "booked"},
        {"resourceType": "Appointment", "id": ident, "status": "cancelled"},
    ]
    assert confirmed.status == "booked"
    assert fake_nextech.appointments[ident]["status"] == "cancelled"
    # A cancelled appointment holds no time: a retry may write again.
    assert nextech.find_appointment(booking_id=41, patient_id="77", start=DAY.replace(hour=10)) is None


def test_cancel_refused_with_422(fake_nextech, nextech):
    ident = nextech.create_appointment(request_for(slot_at(10), patient_id="77")).emr_appointment_id
    fake_nextech.refuse_cancel = "Appointment is already checked in"

    with pytest.raises(EmrError) as caught:
        nextech.cancel_appointment(ident)

    assert caught.value.status == 422 and caught.value.transient is False
    assert "already checked in" in str(caught.value)


def test_every_api_call_carried_token_and_practice(fake_nextech, nextech):
    nextech.create_appointment(request_for(slot_at(10)))
    api = [r for r in fake_nextech.requests if r.path != "/token"]
    assert api and all(r.headers["authorization"].startswith("Bearer at-") for r in api)
    assert all(r.headers["nx-practice-id"] == PRACTICE_ID for r in api)


def test_log_lines_carry_no_patient_details(fake_nextech, nextech, caplog):
    caplog.set_level("DEBUG")
    fake_nextech.throttle(1, retry_after=0)
    nextech.create_appointment(request_for(slot_at(10)))
    text = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    # settings.LOGGING keeps httpx (which logs request URLs, queries included) at WARNING.
    assert not [r for r in caplog.records if r.name.startswith("httpx") and r.levelno < logging.WARNING]
    for secret in ("Jane", "Doe", "6175550123", "jane@example.com"):
        assert secret not in text


# --- STU3 models (fhir.resources) ------------------------------------------------------------------------------------


def test_posted_appointment_is_a_valid_stu3_appointment_with_both_extensions(fake_nextech, nextech):
    from fhir.resources.STU3.appointment import Appointment as FhirAppointment

    nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    (post,) = fake_nextech.calls("POST", "/Appointment")
    assert post.headers["content-type"] == "application/json"
    sent = FhirAppointment.model_validate(post.json)  # raises if the body is not a valid STU3 Appointment
    assert sent.status == "proposed" and sent.start == DAY.replace(hour=10) and sent.comment == "booking:41"
    assert [p.actor.reference for p in sent.participant] == ["patient/77", f"location/{LOCATION_ID}", "practitioner/9"]
    ext = "https://select.nextech-api.com/api/structuredefinition/"
    extensions = {e.url: e for e in sent.extension}
    assert set(extensions) == {ext + "appointment-type", ext + "appointment-schedule"}
    assert extensions[ext + "appointment-type"].valueReference.reference == "appointment-type/12"
    assert extensions[ext + "appointment-schedule"].valueString == "book"


def test_posted_patient_is_a_valid_stu3_patient(fake_nextech, nextech):
    from fhir.resources.STU3.patient import Patient as FhirPatient

    nextech.find_or_create_patient(PatientInfo(first_name="Jane", last_name="Doe", phone=""))

    (create,) = fake_nextech.calls("POST", "/Patient")
    assert "telecom" not in create.json  # FHIR JSON has no empty arrays
    assert FhirPatient.model_validate(create.json).name[0].family == "Doe"


def test_invalid_outgoing_resource_is_refused_before_sending(fake_nextech, nextech, monkeypatch):
    # An empty comment (as a broken booking marker would make) is not a valid STU3 string.
    monkeypatch.setattr("emr.nextech.booking_marker", lambda booking_id: "")

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert caught.value.transient is False
    assert str(caught.value).startswith("Refusing to send an invalid STU3 Appointment to Nextech: comment")
    assert not fake_nextech.calls("POST", "/Appointment")


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda slot: slot.pop("start"), id="no-start"),
        pytest.param(lambda slot: slot.update(start="9am tomorrow"), id="start-not-a-datetime"),
        pytest.param(lambda slot: slot.update(end="2026-12-01T25:00:00-05:00"), id="end-not-a-time"),
        pytest.param(lambda slot: slot.update(schedule="location_1_practitioner_9"), id="schedule-not-a-reference"),
    ],
)
def test_a_malformed_slot_is_skipped_logged_by_id_and_counted_and_the_others_kept(
    fake_nextech, nextech, monkeypatch, caplog, change
):
    serve_slots(fake_nextech, monkeypatch, lambda body: change(body["entry"][1]["resource"]))
    before = skipped()

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert [s.start.hour for s in slots] == [9, 11, 12]
    assert skipped() == before + 1
    assert "nextech Slot 1-9-202612011000 skipped (invalid)" in caplog.text
    assert "malformed Slot (Bundle entry 1)" in caplog.text
    assert "9am tomorrow" not in caplog.text and "25:00" not in caplog.text  # paths and kinds, never values


def test_a_slot_with_a_garbage_start_is_skipped_and_counted(fake_nextech, nextech, monkeypatch):
    serve_slots(fake_nextech, monkeypatch, lambda body: body["entry"][0]["resource"].update(start="soon-ish"))
    before = skipped()

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert len(slots) == 3 and DAY.replace(hour=9) not in {s.start for s in slots}
    assert skipped() == before + 1


@pytest.mark.parametrize("field", ["start", "end"])
def test_a_slot_time_without_a_utc_offset_is_skipped_and_the_good_ones_kept(
    fake_nextech, nextech, monkeypatch, caplog, field
):
    # Decision (docs/DECISIONS.md): never guessed in the clinic's zone. 10:00 without an offset could be 10:00 EST
    # or 10:00 UTC (05:00 EST): offering the wrong hour is worse than offering one time fewer.
    naive = {"start": "2026-12-01T10:00:00", "end": "2026-12-01T10:30:00"}[field]
    serve_slots(fake_nextech, monkeypatch, lambda body: body["entry"][1]["resource"].update({field: naive}))
    before, before_invalid = skipped(reason="no_offset"), skipped()

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert [s.start for s in slots] == [DAY.replace(hour=9), DAY.replace(hour=11), DAY.replace(hour=12)]
    assert all(s.start.utcoffset() == timedelta(hours=-5) for s in slots)
    assert skipped(reason="no_offset") == before + 1 and skipped() == before_invalid
    assert "nextech Slot 1-9-202612011000 skipped (no_offset)" in caplog.text


def test_bundle_entries_that_are_not_resources_are_skipped_not_fatal(fake_nextech, nextech, monkeypatch):
    def garbled(body):
        body["entry"][1] = "not an entry"
        body["entry"][2]["resource"] = ["not", "a", "resource"]
        body["entry"][3]["fullUrl"] = 42

    serve_slots(fake_nextech, monkeypatch, garbled)
    before = skipped()

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert [s.start.hour for s in slots] == [9]
    assert skipped() == before + 3


def test_a_skipped_slots_id_is_logged_only_when_it_looks_like_an_id(fake_nextech, nextech, monkeypatch, caplog):
    def garbled(body):
        body["entry"][0]["resource"].update(id="Jane Doe 617-555-0123", start="soon")

    serve_slots(fake_nextech, monkeypatch, garbled)
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert "nextech Slot (no id) skipped (invalid)" in caplog.text
    assert "Jane" not in log_text(caplog) and "0123" not in log_text(caplog)


def test_nextechs_own_slot_sample_yields_its_slot_without_the_practitioner_stu3_refuses(
    fake_nextech, nextech, monkeypatch, caplog
):
    # slot_search.json: Nextech's published "GET /Slot" sample (github.com/NextechSystems/selectapidocspub,
    # source/includes/_slot.md lines 25-89, verbatim). It has no Bundle type, and its contained Practitioner's name
    # is "given": ["Sherri", ""], which the STU3 model refuses: that Practitioner is dropped, the Slot kept.
    sample = json.loads((VENDOR_SAMPLES / "slot_search.json").read_text())
    monkeypatch.setattr(fake_nextech, "_slots", lambda query: (200, sample))
    before = skipped("Practitioner")
    day = datetime(2018, 2, 26, tzinfo=EST)

    slots = nextech.availability(service_ref="9", start=day, end=day + timedelta(days=1))

    assert slots == [
        Slot(
            start=datetime(2018, 2, 26, 14, tzinfo=EST),
            end=datetime(2018, 2, 26, 15, tzinfo=EST),
            provider_ref="9323",
            service_ref="9",
            location_ref="1",
            emr_slot_id="",  # the sample's Slot has no id
        )
    ]
    assert skipped("Practitioner") == before + 1
    assert "nextech Practitioner 9323 skipped (invalid): contained in Slot (Bundle entry 0)" in caplog.text
    assert "Sherri" not in caplog.text and "Walters" not in caplog.text


def test_a_contained_resource_of_a_type_stu3_does_not_know_is_dropped_not_a_crash(fake_nextech, nextech, monkeypatch):
    def with_unknown(body):
        body["entry"][0]["resource"]["contained"] = [{"resourceType": "NxRoom", "id": "3"}, "junk"]

    serve_slots(fake_nextech, monkeypatch, with_unknown)
    before = skipped("unknown")

    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert len(slots) == 4
    assert skipped("unknown") == before + 2


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"resourceType": "Slot", "id": "1", "status": "free"}, id="a-bare-slot"),
        pytest.param([{"resourceType": "Slot"}], id="a-json-list"),
        pytest.param({"entry": []}, id="no-resource-type"),
    ],
)
def test_an_answer_that_is_not_a_bundle_is_still_a_permanent_error(fake_nextech, nextech, monkeypatch, answer):
    monkeypatch.setattr(fake_nextech, "_slots", lambda query: (200, answer))

    with pytest.raises(EmrError) as caught:
        nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert caught.value.transient is False
    assert "something other than a Bundle for Slot" in str(caught.value)


def test_a_bundle_without_a_type_is_read_as_a_searchset(fake_nextech, nextech, monkeypatch):
    # Nextech's own Slot and Appointment samples omit it (STU3 requires it).
    serve_slots(fake_nextech, monkeypatch, lambda body: body.pop("type"))
    assert len(nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))) == 4


def test_malformed_bundle_is_a_permanent_error(fake_nextech, nextech, monkeypatch):
    monkeypatch.setattr(fake_nextech, "_slots", lambda query: (200, {"resourceType": "Bundle", "total": "many"}))

    with pytest.raises(EmrError) as caught:
        nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))

    assert caught.value.transient is False and "malformed Bundle for Slot: total" in str(caught.value)


def test_elements_stu3_does_not_define_are_ignored_not_fatal(fake_nextech, nextech, monkeypatch, caplog):
    original = fake_nextech._slots

    def extended(query):
        status, body = original(query)
        body["nxVendorPaging"] = {"total": 4}
        for entry in body["entry"]:
            entry["resource"]["nxColor"] = "#ffcc00"
        return status, body

    monkeypatch.setattr(fake_nextech, "_slots", extended)
    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert len(slots) == 4
    assert "ignoring elements STU3 does not define" in caplog.text and "#ffcc00" not in caplog.text


def test_nextech_ids_with_underscores_are_accepted(fake_nextech, nextech, monkeypatch):
    original = fake_nextech._slots

    def underscored(query):
        status, body = original(query)
        for entry in body["entry"]:
            entry["resource"]["id"] = "location_1_practitioner_9_" + entry["resource"]["id"]
        return status, body

    monkeypatch.setattr(fake_nextech, "_slots", underscored)
    slots = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert len(slots) == 4 and all(s.emr_slot_id.startswith("location_1_practitioner_9_") for s in slots)


def test_malformed_patient_in_search_is_a_permanent_error_without_patient_data(fake_nextech, nextech):
    ident = fake_nextech.add_patient("Jane", "Doe", phone="6175550123")
    fake_nextech.patients[ident]["name"] = [{"family": ["Doe"], "given": ["Jane"]}]  # STU3 family is one string

    with pytest.raises(EmrError) as caught:
        nextech.find_or_create_patient(JANE)

    assert caught.value.transient is False
    assert "malformed Patient (Bundle entry 0): name.0.family" in str(caught.value)
    assert "Doe" not in str(caught.value) and "Jane" not in str(caught.value)
    assert not fake_nextech.calls("POST", "/Patient")


def test_malformed_create_answer_is_not_retried_and_is_found_next_time(fake_nextech, nextech, monkeypatch, sleeps):
    original = fake_nextech._appointment_create

    def malformed(body):
        status, stored = original(body)  # stored for real...
        return status, {"resourceType": "Appointment", "id": stored["id"], "start": "soon"}  # ...answered garbled

    monkeypatch.setattr(fake_nextech, "_appointment_create", malformed)
    slot = slot_at(10)

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request_for(slot, booking_id=41, patient_id="77"))

    # The write may have happened: no retry, and transient so the caller's next attempt checks first.
    assert caught.value.transient is True and caught.value.status == 201
    assert "malformed Appointment" in str(caught.value) and "find_appointment" in str(caught.value)
    assert len(fake_nextech.calls("POST", "/Appointment")) == 1 and sleeps == []

    # The next attempt (bookings.services.booking_confirm) looks it up before writing again, and finds it.
    found = nextech.find_appointment(booking_id=41, patient_id="77", start=slot.start)
    assert found is not None and list(fake_nextech.appointments) == [found.emr_appointment_id]
    assert (found.status, found.start) == ("proposed", slot.start)
    assert len(fake_nextech.calls("POST", "/Appointment")) == 1


def test_slot_times_use_standard_library_timezones(nextech):
    (slot, *_) = nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    assert type(slot.start.tzinfo) is timezone and slot.start.utcoffset() == timedelta(hours=-5)
