"""The Nextech adapter (emr/nextech.py) against a local fake Nextech (tests/fakes/nextech.py); never the internet."""

import json
import logging
from datetime import date, datetime, timedelta, timezone
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
# Everything Nextech's POST /Patient requires (_patient.md, "Create Patient").
JANE_IN_FULL = PatientInfo(
    first_name="Jane",
    last_name="Doe",
    phone="+16175550123",
    email="jane@example.com",
    birth_date=date(1980, 4, 2),
    postal_code="02118",
)
JANE_STORED_PHONE = "(617) 555-0123"  # as Nextech stores it (its Patient sample: "(813) 555-5555")
EXT = "https://select.nextech-api.com/api/structuredefinition/"


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


def slot_at(hour, provider="9", service="12", purpose="224"):
    start = DAY.replace(hour=hour)
    return Slot(
        start=start, end=start + timedelta(minutes=30), provider_ref=provider, service_ref=service, purpose_ref=purpose
    )


def vendor_sample(name):
    return json.loads((VENDOR_SAMPLES / name).read_text())


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
        "appointment-type": ["appointment-type/12"],  # the reference form _slot.md's example sends
        "_count": ["50"],
    }


def test_slot_search_without_provider_sends_only_the_location_actor(fake_nextech, nextech):
    nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))
    (call,) = fake_nextech.calls("GET", "/Slot")
    assert call.query["schedule.actor"] == [f"location/{LOCATION_ID}"]


def test_slots_parsed_across_pages(fake_nextech, nextech):
    fake_nextech.slot_pages = 2
    fake_nextech.slot_ids = True
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
    assert (first.service_ref, first.location_ref, first.purpose_ref) == ("12", LOCATION_ID, "224")
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


def test_patient_found_by_phone_sent_in_the_format_nextech_stores(fake_nextech, nextech):
    # Nextech matches the start of the stored value (_gettingstarted.md, "Searching"), stored as "(813) 555-5555"
    # (its Patient sample): ten digits would match nobody.
    ident = fake_nextech.add_patient("Jane", "Doe", phone="6175550123")

    assert nextech.find_or_create_patient(JANE) == ident
    (search,) = fake_nextech.calls("GET", "/Patient")
    assert search.query == {"phone": [JANE_STORED_PHONE]}
    assert not fake_nextech.calls("POST", "/Patient")


def test_a_phone_search_hit_must_carry_the_same_number(fake_nextech, nextech):
    fake_nextech.add_patient("Jane", "Doe", phone="(617) 555-01234")  # starts with Jane's number: not hers

    assert nextech.find_or_create_patient(JANE) == ""


def test_patient_found_by_name_when_phone_unknown(fake_nextech, nextech):
    ident = fake_nextech.add_patient("Jane", "Doe", email="jane@example.com")

    assert nextech.find_or_create_patient(JANE) == ident
    searches = fake_nextech.calls("GET", "/Patient")
    assert [s.query for s in searches] == [{"phone": [JANE_STORED_PHONE]}, {"family": ["Doe"], "given": ["Jane"]}]


def test_a_new_patient_without_what_post_patient_requires_is_left_to_the_appointment(fake_nextech, nextech):
    # POST /Patient requires email, a phone, birthDate and address.postalCode (_patient.md): without a birth date
    # and a zip code it would be refused, so the patient goes with the appointment (a contained Patient).
    assert NextechClient.patient_create_missing(JANE) == ["birth date", "postal code"]

    assert nextech.find_or_create_patient(JANE) == ""
    assert not fake_nextech.calls("POST", "/Patient")


def test_patient_created_when_every_required_field_is_known(fake_nextech, nextech):
    fake_nextech.add_patient("Jane", "Doe", phone="5085550000")  # same name, another phone: another person

    ident = nextech.find_or_create_patient(JANE_IN_FULL)

    (create,) = fake_nextech.calls("POST", "/Patient")
    assert create.json == {
        "resourceType": "Patient",
        "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
        "telecom": [
            {"system": "phone", "value": JANE_STORED_PHONE, "use": "mobile"},
            {"system": "email", "value": "jane@example.com"},
        ],
        "birthDate": "1980-04-02",
        "address": [{"use": "home", "postalCode": "02118"}],
    }
    assert fake_nextech.patients[ident]["name"][0]["family"] == "Doe"
    assert nextech.find_or_create_patient(JANE_IN_FULL) == ident  # found by phone the next time
    assert len(fake_nextech.calls("POST", "/Patient")) == 1


def test_a_409_to_post_patient_uses_the_patient_nextech_matched(fake_nextech, nextech, monkeypatch):
    # _patient.md: a match on the required fields is "a 409 Conflict with a message indicating the patient already
    # exists". Here the searches before the create miss that patient (its number stored another way, its name
    # search answering nothing), as they can.
    ident = fake_nextech.add_patient(
        "Jane", "Doe", phone="617-555-0123", email="jane@example.com", birth_date="1980-04-02", postal_code="02118"
    )
    fake_nextech.patients[ident]["telecom"][0]["value"] = "617.555.0123"
    original = fake_nextech._patient_search
    monkeypatch.setattr(
        fake_nextech,
        "_patient_search",
        lambda q: original(q) if "birthdate" in q else (200, {"resourceType": "Bundle"}),
    )

    assert nextech.find_or_create_patient(JANE_IN_FULL) == ident

    assert len(fake_nextech.calls("POST", "/Patient")) == 1
    assert fake_nextech.calls("GET", "/Patient")[-1].query == {
        "family": ["Doe"],
        "given": ["Jane"],
        "birthdate": ["eq1980-04-02"],
    }
    assert list(fake_nextech.patients) == [ident]


def test_a_409_to_post_patient_without_a_match_is_a_clear_permanent_error(fake_nextech, nextech, monkeypatch):
    monkeypatch.setattr(
        fake_nextech, "_patient_create", lambda body: (409, {"resourceType": "OperationOutcome", "issue": []})
    )

    with pytest.raises(EmrError) as caught:
        nextech.find_or_create_patient(JANE_IN_FULL)

    assert caught.value.transient is False and caught.value.status == 409
    assert "already exists" in str(caught.value) and "by hand" in str(caught.value)
    assert "Jane" not in str(caught.value) and "Doe" not in str(caught.value)


def test_phone_shared_with_another_family_is_not_a_match(fake_nextech, nextech):
    other = fake_nextech.add_patient("Mary", "Smith", phone="6175550123")

    ident = nextech.find_or_create_patient(JANE_IN_FULL)

    assert ident != other and len(fake_nextech.calls("POST", "/Patient")) == 1


def test_phone_match_prefers_the_same_given_name(fake_nextech, nextech):
    fake_nextech.add_patient("John", "Doe", phone="6175550123")
    jane = fake_nextech.add_patient("Jane", "Doe", phone="6175550123")

    assert nextech.find_or_create_patient(JANE) == jane


def test_nextech_phone():
    assert nextech_phone("+16175550123") == "(617) 555-0123"
    assert nextech_phone("+447700900123") == "447700900123"
    assert nextech_phone("") == ""


# --- appointments --------------------------------------------------------------------------------------------------


def test_appointment_created(fake_nextech, nextech):
    appointment = nextech.create_appointment(request_for(slot_at(10), patient_id="77", comment="Botox 20 units"))

    assert appointment.status == "proposed"
    assert appointment.start == DAY.replace(hour=10)
    (post,) = fake_nextech.calls("POST", "/Appointment")
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
            {"url": EXT + "appointment-type", "valueReference": {"reference": "appointment-type/12"}},
            {"url": EXT + "appointment-purpose", "valueReference": {"reference": "appointment-purpose/224"}},
            {"url": EXT + "appointment-schedule", "valueString": "book"},
        ],
    }
    assert list(fake_nextech.appointments) == [appointment.emr_appointment_id]


def test_mappings_in_nextechs_reference_form_are_read_as_ids(fake_nextech, nextech):
    # _slot.md's example sends appointment-type=appointment-type/87: a clinic may paste either form.
    slot = slot_at(10, provider="practitioner/9", service="appointment-type/12", purpose="appointment-purpose/224")
    nextech.create_appointment(request_for(slot, patient_id="77"))
    nextech.availability(service_ref="appointment-type/12", start=DAY, end=DAY + timedelta(days=1))

    (post,) = fake_nextech.calls("POST", "/Appointment")
    references = [e.get("valueReference", {}).get("reference") for e in post.json["extension"]]
    assert references == ["appointment-type/12", "appointment-purpose/224", None]
    assert post.json["participant"][2]["actor"]["reference"] == "practitioner/9"
    assert fake_nextech.calls("GET", "/Slot")[-1].query["appointment-type"] == ["appointment-type/12"]


def test_the_purpose_comes_from_the_slot_nextech_offers_and_the_recheck_is_reused(fake_nextech, nextech):
    # Nextech up to 16.2 requires the appointment-purpose on a create (issue 18); the Slot carries it (_slot.md).
    fake_nextech.purpose_required = True
    slot = slot_at(10, purpose="")  # bookings builds the slot from our booking: no purpose

    assert nextech.is_time_free(slot)  # what bookings.services.booking_confirm asks right before writing
    nextech.create_appointment(request_for(slot, patient_id="77"))

    assert len(fake_nextech.calls("GET", "/Slot")) == 1  # the re-check's Slot gave the purpose
    (post,) = fake_nextech.calls("POST", "/Appointment")
    assert {
        "url": EXT + "appointment-purpose",
        "valueReference": {"reference": "appointment-purpose/224"},
    } in post.json["extension"]

    # Without a re-check first, the create asks for the Slot itself; a Slot without purpose sends none.
    fake_nextech.purpose_required, fake_nextech.purpose_id = False, ""
    nextech.create_appointment(request_for(slot_at(11, purpose=""), booking_id=42, patient_id="77"))
    assert len(fake_nextech.calls("GET", "/Slot")) == 2
    urls = [e["url"] for e in fake_nextech.calls("POST", "/Appointment")[-1].json["extension"]]
    assert urls == [EXT + "appointment-type", EXT + "appointment-schedule"]


def test_a_new_patient_goes_as_a_contained_patient_and_nextech_makes_the_prospect(fake_nextech, nextech):
    # _appointment.md, "Book Appointment", option 2: the demographics in the contained section create a prospect
    # linked to the appointment (given and family name, a phone, an email).
    appointment = nextech.create_appointment(request_for(slot_at(10)))

    (post,) = fake_nextech.calls("POST", "/Appointment")
    assert post.json["contained"] == [
        {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": "Doe", "given": ["Jane"]}],
            "telecom": [
                {"system": "phone", "value": JANE_STORED_PHONE, "use": "mobile"},
                {"system": "email", "value": "jane@example.com"},
            ],
        }
    ]
    assert [p["actor"]["reference"] for p in post.json["participant"]] == [f"location/{LOCATION_ID}", "practitioner/9"]
    assert not fake_nextech.calls("POST", "/Patient")
    (prospect,) = fake_nextech.patients
    stored = fake_nextech.appointments[appointment.emr_appointment_id]
    assert stored["participant"][0]["actor"]["reference"] == f"patient/{prospect}"
    # The next attempt finds the prospect by phone and the appointment by booking id: nothing written twice.
    assert nextech.find_or_create_patient(JANE) == prospect
    found = nextech.find_appointment(booking_id=41, patient_id=prospect, start=slot_at(10).start)
    assert found.emr_appointment_id == appointment.emr_appointment_id


def test_an_appointment_for_a_new_patient_is_found_by_location_and_day(fake_nextech, nextech):
    appointment = nextech.create_appointment(request_for(slot_at(10)))

    found = nextech.find_appointment(booking_id=41, patient_id="", start=slot_at(10).start)

    assert found.emr_appointment_id == appointment.emr_appointment_id
    assert fake_nextech.calls("GET", "/Appointment")[-1].query == {
        "location.id": [LOCATION_ID],
        "date": ["eq2026-12-01"],
    }


def test_a_new_patient_without_an_email_is_refused_by_nextech_with_its_reason(fake_nextech, nextech):
    # A contained Patient needs "An email address" (_appointment.md); we may have none, so it is sent without
    # and Nextech's 409 reason reaches staff. The time is still free: not SlotTakenError.
    no_email = PatientInfo(first_name="Jane", last_name="Doe", phone="+16175550123")
    request = AppointmentRequest(booking_id=41, slot=slot_at(10), patient=no_email)

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request)

    assert not isinstance(caught.value, SlotTakenError)
    assert caught.value.status == 409 and caught.value.transient is False
    assert "the time is still free" in str(caught.value) and "an email address" in str(caught.value)
    assert not fake_nextech.appointments and not fake_nextech.patients
    telecom = fake_nextech.calls("POST", "/Appointment")[0].json["contained"][0]["telecom"]
    assert telecom == [{"system": "phone", "value": JANE_STORED_PHONE, "use": "mobile"}]


def test_409_for_a_taken_time_raises_slot_taken(fake_nextech, nextech):
    fake_nextech.taken.add("2026-12-01T10:00:00-05:00")

    with pytest.raises(SlotTakenError) as caught:
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert caught.value.status == 409 and caught.value.transient is False
    assert "no longer available" in str(caught.value)  # the AppointmentResponse comment
    assert not fake_nextech.appointments


def test_409_whose_reason_says_the_time_is_gone_is_slot_taken_even_if_still_listed(fake_nextech, nextech, monkeypatch):
    monkeypatch.setattr(
        fake_nextech,
        "_appointment_create",
        lambda body: (409, {"resourceType": "AppointmentResponse", "comment": "Slot is not available"}),
    )
    with pytest.raises(SlotTakenError):
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))


def test_409_for_another_reason_is_a_clear_permanent_emr_error(fake_nextech, nextech):
    fake_nextech.purpose_required, fake_nextech.purpose_id = True, ""  # a 16.2 practice, Slots without purpose

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request_for(slot_at(10, purpose=""), patient_id="77"))

    assert not isinstance(caught.value, SlotTakenError)
    assert caught.value.status == 409 and caught.value.transient is False
    assert "An appointment purpose is required" in str(caught.value)


def test_409_with_the_recheck_failing_is_transient(fake_nextech, nextech, monkeypatch):
    monkeypatch.setattr(fake_nextech, "_appointment_create", lambda body: (fake_nextech.fail(503, times=9) or 409, {}))

    with pytest.raises(EmrError) as caught:
        nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert not isinstance(caught.value, SlotTakenError) and caught.value.transient is True


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
    assert search.query == {"patient": ["77"], "date": ["eq2026-12-01"]}  # _appointment.md: ?patient=12345


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
    for secret in ("Jane", "Doe", "6175550123", "555-0123", "jane@example.com"):
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
    assert set(extensions) == {ext + "appointment-type", ext + "appointment-purpose", ext + "appointment-schedule"}
    assert extensions[ext + "appointment-type"].valueReference.reference == "appointment-type/12"
    assert extensions[ext + "appointment-schedule"].valueString == "book"


def test_posted_patient_is_a_valid_stu3_patient(fake_nextech, nextech):
    from fhir.resources.STU3.patient import Patient as FhirPatient

    nextech.find_or_create_patient(JANE_IN_FULL)

    (create,) = fake_nextech.calls("POST", "/Patient")
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
    fake_nextech.slot_ids = True
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
    fake_nextech.slot_ids = True
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


def test_nextechs_own_slot_sample_yields_its_slot_and_its_practitioner_with_an_empty_given_name(
    fake_nextech, nextech, monkeypatch, caplog
):
    # slot_search.json: Nextech's published "GET /Slot" sample (github.com/NextechSystems/selectapidocspub,
    # source/includes/_slot.md lines 25-89, verbatim). It has no Bundle type, and its contained Practitioner's name
    # is "given": ["Sherri", ""], which the STU3 model refuses: the empty string is read as absent, nothing skipped
    # (Nextech sends one on every Practitioner: a skip per Slot would be noise).
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
            purpose_ref="224",
        )
    ]
    assert skipped("Practitioner") == before
    assert "skipped" not in caplog.text
    assert fake_nextech.calls("GET", "/Slot")[0].query["appointment-type"] == ["appointment-type/9"]


def test_a_contained_resource_that_still_fails_its_model_is_dropped_and_counted(fake_nextech, nextech, monkeypatch):
    def with_bad_practitioner(body):
        body["entry"][0]["resource"]["contained"][1]["name"][0]["family"] = ["Provider"]  # STU3: one string

    serve_slots(fake_nextech, monkeypatch, with_bad_practitioner)
    before = skipped("Practitioner")

    assert len(nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))) == 4
    assert skipped("Practitioner") == before + 1


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


@pytest.mark.parametrize("bundle_type", ["", "searchset"])
def test_a_bundle_with_or_without_a_type_is_read_as_a_searchset(fake_nextech, nextech, bundle_type):
    # Nextech's own Slot and Appointment samples omit it (STU3 requires it); its other search samples carry it.
    fake_nextech.bundle_type = bundle_type
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
    fake_nextech.slot_ids = True
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


# --- Nextech's own samples (tests/data/providers/nextech/vendor-samples/, lines in its SOURCES.md) -------------------


def test_nextechs_own_patient_sample_with_an_empty_given_name_is_found_by_phone(fake_nextech, nextech, monkeypatch):
    # patient_search.json: _patient.md's Patient (its official name "given": ["Gregory", ""]) in a search Bundle.
    # The STU3 model refuses the empty string; read as absent, the patient is found and not created again.
    sample = vendor_sample("patient_search.json")
    monkeypatch.setattr(fake_nextech, "_patient_search", lambda query: (200, sample))
    gregory = PatientInfo(first_name="Gregory", last_name="Brinkley", phone="+18135555555")

    assert nextech.find_or_create_patient(gregory) == "45bb641e-44c5-49a8-a36f-9dd7a0a50828"
    assert fake_nextech.calls("GET", "/Patient")[0].query == {"phone": ["(813) 555-5555"]}  # its stored format


def test_nextechs_own_appointment_sample_as_the_201_answer_is_the_created_appointment(
    fake_nextech, nextech, monkeypatch
):
    # appointment_create_201.json: _appointment.md's Appointment, participants without status (STU3 requires one),
    # a contained Practitioner named "given": ["Darren", ""].
    sample = vendor_sample("appointment_create_201.json")
    monkeypatch.setattr(fake_nextech, "_appointment_create", lambda body: (201, sample))

    appointment = nextech.create_appointment(request_for(slot_at(10), patient_id="77"))

    assert (appointment.emr_appointment_id, appointment.status) == ("12312", "booked")
    assert appointment.start == datetime(2017, 3, 12, 9, 10, tzinfo=timezone(timedelta(hours=-4)))


def test_nextechs_own_appointment_search_sample_finds_ours_and_an_unmapped_status_is_live(
    fake_nextech, nextech, monkeypatch
):
    # appointment_search.json, with our marker in its comment; then without its status, as Nextech answers an
    # appointment in a Select status FHIR has no word for ("this field is omitted", _appointment.md Fields).
    sample = vendor_sample("appointment_search.json")
    resource = sample["entry"][0]["resource"]
    resource["comment"] = "booking:41 " + resource["comment"]
    monkeypatch.setattr(fake_nextech, "_appointment_search", lambda query: (200, sample))
    start = datetime.fromisoformat(resource["start"])

    assert nextech.find_appointment(booking_id=41, patient_id="77", start=start).emr_appointment_id == "12312"
    del resource["status"]
    found = nextech.find_appointment(booking_id=41, patient_id="77", start=start)
    assert (found.emr_appointment_id, found.status) == ("12312", "")  # live: never written twice


def test_an_empty_string_is_read_as_absent_and_a_list_it_empties_goes_too(fake_nextech, nextech, monkeypatch):
    def emptied(body):
        practitioner = body["entry"][0]["resource"]["contained"][1]
        practitioner["name"][0]["given"] = [""]  # nothing but the empty name Nextech appends
        practitioner["name"][0]["text"] = ""

    serve_slots(fake_nextech, monkeypatch, emptied)
    before = skipped("Practitioner")

    assert len(nextech.availability(service_ref="12", start=DAY, end=DAY + timedelta(days=1))) == 4
    assert skipped("Practitioner") == before
    from emr.nextech import _without

    data = {"name": [{"family": "X", "given": ["", "A", ""]}, {"given": [""]}], "id": "1"}
    paths = [("name", 0, "given", 0), ("name", 0, "given", 2), ("name", 1, "given", 0)]
    assert _without(data, paths) == {"name": [{"family": "X", "given": ["A"]}], "id": "1"}
    assert data["name"][1] == {"given": [""]}  # a copy: the answer itself is left as it came
