"""The Zenoti client (emr/zenoti.py) against a fake of Zenoti's service booking API at the HTTP boundary
(tests/fakes/zenoti.py, built from the published reference); never the internet. Times are fixed datetimes."""

import json
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from emr.base import HOLD, WRITE, AppointmentRequest, EmrConfigError, EmrError, PatientInfo, Slot, SlotTakenError
from emr.models import EmrConfig, Provider
from emr.services import emr_client
from emr.zenoti import ZenotiClient
from medspa.models import Service
from tests.fakes.zenoti import API_KEY, CENTER_ID, SERVICE_ID, THERAPIST_ID, FakeZenoti

NY = ZoneInfo("America/New_York")
MON_9 = datetime(2025, 3, 10, 9, 0, tzinfo=NY)
MON_10 = datetime(2025, 3, 10, 10, 0, tzinfo=NY)
TUE_9 = datetime(2025, 3, 11, 9, 0, tzinfo=NY)
PATIENT = PatientInfo(first_name="Dana", last_name="Whitfield", phone="+16175550123", email="dana@example.com")


@pytest.fixture
def fake():
    zenoti = FakeZenoti()
    zenoti.open_times = {t.replace(tzinfo=None) for t in (MON_9, MON_10, TUE_9)}
    return zenoti


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake, sleeps):
    return ZenotiClient(api_key=API_KEY, center_id=CENTER_ID, transport=fake.transport(), sleep=sleeps.append, zone=NY)


def slot(start):
    return Slot(start=start, end=start + timedelta(hours=1), provider_ref=THERAPIST_ID, service_ref=SERVICE_ID)


def test_writes_and_holds_in_zenoti_and_never_prints_its_key(client):
    assert client.capabilities == frozenset({WRITE, HOLD})
    assert API_KEY not in repr(client)


def test_availability_asks_one_booking_per_day_and_reads_local_times(client, fake):
    slots = client.availability(service_ref=SERVICE_ID, start=MON_9, end=TUE_9 + timedelta(minutes=1))
    assert [(s.start, s.end, s.location_ref) for s in slots] == [
        (MON_9, MON_9 + timedelta(hours=1), CENTER_ID),
        (MON_10, MON_10 + timedelta(hours=1), CENTER_ID),
        (TUE_9, TUE_9 + timedelta(hours=1), CENTER_ID),
    ]
    creates = [r for r in fake.requests if r[:2] == ("POST", "/v1/bookings")]
    assert [r[3]["date"] for r in creates] == ["2025-03-10", "2025-03-11"]
    assert creates[0][3] == {
        "center_id": CENTER_ID,
        "date": "2025-03-10",
        "is_only_catalog_employees": False,
        "guests": [{"items": [{"item": {"id": SERVICE_ID}}]}],
    }


def test_availability_asked_in_utc_still_reads_the_centers_wall_clock(client):
    slots = client.availability(
        service_ref=SERVICE_ID, start=MON_9.astimezone(UTC), end=MON_10.astimezone(UTC) + timedelta(minutes=1)
    )
    assert [s.start for s in slots] == [MON_9, MON_10]


def test_find_or_create_guest_searches_the_national_number_then_creates_once(client, fake):
    first = client.find_or_create_patient(PATIENT)
    assert client.find_or_create_patient(PATIENT) == first and len(fake.guests) == 1
    created = next(r for r in fake.requests if r[:2] == ("POST", "/v1/guests"))[3]
    assert created == {
        "center_id": CENTER_ID,
        "personal_info": {
            "first_name": "Dana",
            "last_name": "Whitfield",
            "mobile_phone": {"country_code": 225, "number": "6175550123"},
            "email": "dana@example.com",
        },
    }


def test_hold_reserves_in_zenoti_and_the_write_confirms_that_reservation(client, fake):
    guest = client.find_or_create_patient(PATIENT)
    hold = client.hold_slot(slot(MON_9), guest)
    assert hold.ref in fake.bookings and hold.expires_at is not None and hold.expires_at.tzinfo is not None
    reserve = next(r for r in fake.requests if r[1].endswith("/slots/reserve"))
    assert reserve[3] == {"slot_time": "2025-03-10T09:00:00"}
    # Held in Zenoti: no longer offered to anyone else.
    assert [s.start for s in client.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10)] == []
    made = client.create_appointment(
        AppointmentRequest(booking_id=42, slot=slot(MON_9), patient=PATIENT, emr_patient_id=guest, hold_ref=hold.ref)
    )
    assert made.status == "confirmed" and made.emr_appointment_id in fake.invoices
    confirm = next(r for r in fake.requests if r[1].endswith("/slots/confirm"))
    assert confirm[1] == f"/v1/bookings/{hold.ref}/slots/confirm" and confirm[3] == {"notes": "medspa booking 42"}
    assert len([r for r in fake.requests if r[1].endswith("/slots/reserve")]) == 1


def test_a_write_without_a_hold_reserves_then_confirms(client, fake):
    guest = client.find_or_create_patient(PATIENT)
    made = client.create_appointment(
        AppointmentRequest(booking_id=7, slot=slot(MON_10), patient=PATIENT, emr_patient_id=guest)
    )
    assert fake.bookings[fake.invoices[made.emr_appointment_id]]["reserved"] == MON_10.replace(tzinfo=None)
    found = client.find_appointment(booking_id=7, patient_id=guest, start=MON_10.astimezone(UTC))
    assert found is not None and found.emr_appointment_id == made.emr_appointment_id
    listed = next(r for r in fake.requests if r[1] == f"/v1/guests/{guest}/appointments")
    assert listed[2] == {"start_date": "2025-03-10", "end_date": "2025-03-10"}
    assert client.find_appointment(booking_id=8, patient_id=guest, start=MON_10) is None


def test_a_time_zenoti_will_not_reserve_is_slot_taken(client, fake):
    guest = client.find_or_create_patient(PATIENT)
    client.hold_slot(slot(MON_9), guest)
    with pytest.raises(SlotTakenError, match="not available"):
        client.hold_slot(slot(MON_9), guest)


def test_a_lapsed_reservation_is_slot_taken_at_confirm(client, fake):
    guest = client.find_or_create_patient(PATIENT)
    hold = client.hold_slot(slot(MON_9), guest)
    fake.expire()
    with pytest.raises(SlotTakenError, match="expired"):
        client.create_appointment(
            AppointmentRequest(booking_id=1, slot=slot(MON_9), patient=PATIENT, emr_patient_id=guest, hold_ref=hold.ref)
        )


def test_cancel_cancels_the_invoice_and_an_unknown_one_is_an_error(client, fake):
    guest = client.find_or_create_patient(PATIENT)
    made = client.create_appointment(
        AppointmentRequest(booking_id=3, slot=slot(MON_9), patient=PATIENT, emr_patient_id=guest)
    )
    assert client.find_appointment(booking_id=3, patient_id=guest, start=MON_9) is not None
    client.cancel_appointment(made.emr_appointment_id)
    assert fake.bookings[fake.invoices[made.emr_appointment_id]]["cancelled"]
    assert client.find_appointment(booking_id=3, patient_id=guest, start=MON_9) is None
    assert [s.start for s in client.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10)] == [MON_9]
    with pytest.raises(EmrError, match="502: invoice doesn't have any appointments"):
        client.cancel_appointment("0" * 32)


def test_outages_are_retried_with_backoff_then_transient_and_a_bad_key_is_permanent(client, fake, sleeps):
    fake.fail_next(503)
    assert len(client.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10)) == 1
    assert sleeps == [0.5]
    fake.fail_next(429, times=3)
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10)
    assert caught.value.transient and caught.value.status == 429 and sleeps == [0.5, 0.5, 1.0]
    wrong = ZenotiClient(api_key="nope", center_id=CENTER_ID, transport=fake.transport(), sleep=sleeps.append)
    with pytest.raises(EmrError) as caught:
        wrong.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10)
    assert not caught.value.transient and caught.value.status == 401 and len(sleeps) == 3


def test_logs_carry_ids_not_the_patient(client, caplog):
    with caplog.at_level(logging.INFO):
        guest = client.find_or_create_patient(PATIENT)
        client.create_appointment(
            AppointmentRequest(booking_id=5, slot=slot(MON_9), patient=PATIENT, emr_patient_id=guest)
        )
    assert "zenoti confirmed booking=5" in caplog.text
    assert "Dana" not in caplog.text and "6175550123" not in caplog.text and "example.com" not in caplog.text


def test_catalog_lists_the_centers_services_and_therapists(client):
    assert client.catalog() == ([(SERVICE_ID, "Botox consult")], [(THERAPIST_ID, "Ana Reyes")])


def test_a_question_for_anyone_asks_each_mapped_therapist_and_names_them(clinic_a, fake):
    other = "9e0d6a3c-0000-4000-8000-000000000002"
    service = Service.objects.create(clinic=clinic_a, name="Botox", price_cents=1000, emr_service_id=SERVICE_ID)
    for name, ref in (("Ana", THERAPIST_ID), ("Bo", other), ("Unmapped", "")):
        Provider.objects.create(clinic=clinic_a, name=name, emr_ref=ref).services.add(service)
    Provider.objects.create(clinic=clinic_a, name="Other service", emr_ref="not-asked")
    credentials = json.dumps({"api_key": API_KEY})
    config = EmrConfig.objects.create(
        clinic=clinic_a, kind=EmrConfig.Kind.ZENOTI, credentials=credentials, location_ref=CENTER_ID
    )
    built = ZenotiClient.from_config(clinic_a, config)  # its therapists_for reads our providers' mapping
    client = ZenotiClient(
        api_key=API_KEY, center_id=CENTER_ID, zone=NY, therapists_for=built.therapists_for, transport=fake.transport()
    )
    fake.therapist_of = {MON_10.replace(tzinfo=None): other}
    slots = client.availability(service_ref=SERVICE_ID, start=MON_9, end=MON_10 + timedelta(minutes=1))
    assert [(s.start, s.provider_ref) for s in slots] == [(MON_9, THERAPIST_ID), (MON_9, other), (MON_10, other)]
    creates = [r[3] for r in fake.requests if r[:2] == ("POST", "/v1/bookings")]
    assert sorted(c["guests"][0]["items"][0]["therapist"]["id"] for c in creates) == sorted([THERAPIST_ID, other])
    # A service nobody is mapped to yet is asked for anyone: Zenoti is still reached, the slots name nobody.
    unmapped = client.availability(service_ref="unmapped-service", start=MON_9, end=MON_9 + timedelta(minutes=1))
    assert [(s.start, s.provider_ref) for s in unmapped] == [(MON_9, "")]


def test_from_config_takes_the_key_from_credentials_and_the_center_from_location(clinic_a):
    config = EmrConfig.objects.create(
        clinic=clinic_a,
        kind=EmrConfig.Kind.ZENOTI,
        credentials=json.dumps({"api_key": API_KEY}),
        location_ref=CENTER_ID,
    )
    client = emr_client(clinic=clinic_a)
    assert isinstance(client, ZenotiClient) and client.center_id == CENTER_ID and client.zone == clinic_a.tz
    config.location_ref = ""
    config.save()
    with pytest.raises(EmrConfigError, match="center id"):
        emr_client(clinic=clinic_a)
