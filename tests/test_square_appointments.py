"""The Square Appointments client (emr/square_appointments.py) through the real squareup SDK, against a fake of
Square's Bookings / Customers / Catalog APIs at the HTTP boundary (tests/fakes/square_appointments.py); never the
internet. Times are fixed datetimes: nothing here depends on the clock."""

import json
import logging
from datetime import UTC, datetime, timedelta

import pytest

from emr.base import WRITE, AppointmentRequest, EmrConfigError, EmrError, PatientInfo, Slot, SlotTakenError
from emr.models import EmrConfig
from emr.services import emr_client
from emr.square_appointments import SquareAppointmentsClient
from payments.models import PaymentConfig
from tests.fakes.square_appointments import (
    LOCATION_ID,
    TEAM_A,
    TEAM_B,
    TOKEN,
    VARIATION_ID,
    VARIATION_VERSION,
    FakeSquareAppointments,
)

NINE = datetime(2020, 11, 26, 13, 0, tzinfo=UTC)  # Square's example start_at
TEN = NINE + timedelta(hours=1)
PATIENT = PatientInfo(first_name="Dana", last_name="Whitfield", phone="+16175550123", email="dana@example.com")


@pytest.fixture
def fake():
    square = FakeSquareAppointments()
    square.offer(NINE, TEAM_A)
    square.offer(TEN, TEAM_B)
    return square


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake, sleeps):
    return SquareAppointmentsClient(
        access_token=TOKEN,
        location_id=LOCATION_ID,
        base_url="https://connect.squareupsandbox.com",
        transport=fake.transport(),
        sleep=sleeps.append,
    )


def request_for(start, *, booking_id=42, provider_ref=TEAM_A, patient_id=""):
    slot = Slot(start=start, end=start + timedelta(hours=1), provider_ref=provider_ref, service_ref=VARIATION_ID)
    return AppointmentRequest(booking_id=booking_id, slot=slot, patient=PATIENT, emr_patient_id=patient_id)


def test_writes_appointments_and_never_prints_its_token(client):
    assert client.capabilities == frozenset({WRITE})
    assert TOKEN not in repr(client)


def test_availability_widens_a_short_question_to_squares_24_hours_and_filters(client, fake):
    slots = client.availability(service_ref=VARIATION_ID, start=NINE, end=NINE + timedelta(minutes=30))
    assert [(s.start, s.end, s.provider_ref, s.location_ref) for s in slots] == [
        (NINE, NINE + timedelta(hours=1), TEAM_A, LOCATION_ID)
    ]
    method, path, body = fake.requests[0]
    assert (method, path) == ("POST", "/v2/bookings/availability/search")
    assert body["query"]["filter"] == {
        "start_at_range": {"start_at": "2020-11-26T13:00:00Z", "end_at": "2020-11-27T13:00:00Z"},
        "location_id": LOCATION_ID,
        "segment_filters": [{"service_variation_id": VARIATION_ID}],
    }


def test_availability_for_one_team_member_filters_by_any(client, fake):
    slots = client.availability(service_ref=VARIATION_ID, start=NINE, end=NINE + timedelta(days=1), provider_ref=TEAM_B)
    assert [(s.start, s.provider_ref) for s in slots] == [(TEN, TEAM_B)]
    assert fake.requests[0][2]["query"]["filter"]["segment_filters"][0]["team_member_id_filter"] == {"any": [TEAM_B]}


def test_availability_over_40_days_asks_in_pieces_square_accepts(client, fake):
    later = NINE + timedelta(days=35)
    fake.offer(later, TEAM_A)
    slots = client.availability(service_ref=VARIATION_ID, start=NINE, end=NINE + timedelta(days=40))
    assert [s.start for s in slots] == [NINE, TEN, later]
    assert len(fake.requests) == 2  # 32 days, then 8: each within Square's limits (the fake refuses others)


def test_find_or_create_patient_searches_the_exact_phone_then_creates_once(client, fake):
    first = client.find_or_create_patient(PATIENT)
    again = client.find_or_create_patient(PATIENT)
    assert first == again and len(fake.customers) == 1
    searched = fake.requests[0][2]
    assert searched["query"] == {"filter": {"phone_number": {"exact": "+16175550123"}}}
    created = fake.requests[1][2]
    assert {k: created[k] for k in ("given_name", "family_name", "phone_number", "email_address")} == {
        "given_name": "Dana",
        "family_name": "Whitfield",
        "phone_number": "+16175550123",
        "email_address": "dana@example.com",
    }


def test_create_books_the_segments_square_offered_with_their_version(client, fake):
    customer = client.find_or_create_patient(PATIENT)
    appointment = client.create_appointment(request_for(NINE, patient_id=customer))
    assert (appointment.status, appointment.start) == ("ACCEPTED", NINE)
    method, path, body = fake.requests[-1]
    assert (method, path) == ("POST", "/v2/bookings")
    assert body["idempotency_key"] == "medspa-booking-42"
    assert body["booking"] == {
        "start_at": "2020-11-26T13:00:00Z",
        "location_id": LOCATION_ID,
        "customer_id": customer,
        "appointment_segments": [
            {
                "team_member_id": TEAM_A,
                "service_variation_id": VARIATION_ID,
                "service_variation_version": VARIATION_VERSION,
                "duration_minutes": 60,
            }
        ],
        "seller_note": "medspa booking 42",
    }
    # The time is gone from Square's availability now.
    assert [s.start for s in client.availability(service_ref=VARIATION_ID, start=NINE, end=TEN)] == []


def test_a_retried_create_returns_the_first_booking(client, fake):
    customer = client.find_or_create_patient(PATIENT)
    first = client.create_appointment(request_for(NINE, patient_id=customer))
    found = client.find_appointment(booking_id=42, patient_id=customer, start=NINE)
    assert found is not None and found.emr_appointment_id == first.emr_appointment_id
    assert client.find_appointment(booking_id=43, patient_id=customer, start=NINE) is None
    assert len(fake.bookings) == 1


def test_a_time_taken_meanwhile_is_slot_taken(client, fake):
    customer = client.find_or_create_patient(PATIENT)
    client.create_appointment(request_for(NINE, booking_id=1, patient_id=customer))
    with pytest.raises(SlotTakenError):
        client.create_appointment(request_for(NINE, booking_id=2, patient_id=customer))


def test_squares_own_refusal_of_a_taken_time_is_slot_taken(client, fake):
    customer = client.find_or_create_patient(PATIENT)
    # The time is offered at the search, then refused by CreateBooking (booked in Square in between).
    real_create = fake._create

    def create_after_someone_else(body):
        fake.open_times.pop(NINE, None)
        return real_create(body)

    fake._create = create_after_someone_else
    with pytest.raises(SlotTakenError, match="BAD_REQUEST"):
        client.create_appointment(request_for(NINE, patient_id=customer))


def test_cancel_reads_the_version_then_cancels_and_a_second_cancel_does_nothing(client, fake):
    customer = client.find_or_create_patient(PATIENT)
    made = client.create_appointment(request_for(NINE, patient_id=customer))
    client.cancel_appointment(made.emr_appointment_id)
    assert fake.bookings[made.emr_appointment_id]["status"] == "CANCELLED_BY_SELLER"
    cancel = [r for r in fake.requests if r[1].endswith("/cancel")]
    assert len(cancel) == 1 and cancel[0][2]["booking_version"] == 0
    client.cancel_appointment(made.emr_appointment_id)
    assert len([r for r in fake.requests if r[1].endswith("/cancel")]) == 1


def test_outages_are_retried_with_backoff_then_transient(client, fake, sleeps):
    fake.fail_next(503, times=1, code="SERVICE_UNAVAILABLE", detail="Service unavailable.")
    assert len(client.availability(service_ref=VARIATION_ID, start=NINE, end=TEN + timedelta(minutes=1))) == 2
    assert sleeps == [0.5]
    fake.fail_next(429, times=3, code="RATE_LIMITED", detail="Rate limit exceeded.")
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref=VARIATION_ID, start=NINE, end=TEN)
    assert caught.value.transient and caught.value.status == 429
    assert sleeps == [0.5, 0.5, 1.0]


def test_a_seller_without_appointments_plus_is_a_permanent_error_saying_so(client, fake, sleeps):
    fake.fail_next(403, code="INSUFFICIENT_SCOPES", detail="The merchant must subscribe to Appointments Plus.")
    with pytest.raises(EmrError, match="Appointments Plus or Premium") as caught:
        client.availability(service_ref=VARIATION_ID, start=NINE, end=TEN)
    assert not caught.value.transient and sleeps == []


def test_an_error_echoing_the_phone_is_not_logged_nor_kept(client, fake, caplog):
    fake.fail_next(400, code="INVALID_PHONE_NUMBER", detail="Invalid phone number +16175550123.")
    with caplog.at_level(logging.INFO), pytest.raises(EmrError) as caught:
        client.find_or_create_patient(PATIENT)
    assert "6175550123" not in str(caught.value) and "6175550123" not in caplog.text
    assert "Dana" not in caplog.text


def test_catalog_lists_bookable_variations_and_team_members(client):
    services, members = client.catalog()
    assert services == [(VARIATION_ID, "Botox consult: 60 minutes")]
    assert members == [(TEAM_A, "Sandbox Seller"), (TEAM_B, "Sandbox Staff")]


# --- from the clinic's configuration ---------------------------------------------------------------------------


def test_from_config_uses_the_deposit_settings_square_account(clinic_a):
    config = EmrConfig.objects.create(clinic=clinic_a, kind=EmrConfig.Kind.SQUARE)
    PaymentConfig.objects.create(clinic=clinic_a, square_access_token=TOKEN, square_location_id=LOCATION_ID)
    client = emr_client(clinic=clinic_a)
    assert isinstance(client, SquareAppointmentsClient)
    assert (client.access_token, client.location_id) == (TOKEN, LOCATION_ID)
    config.credentials = json.dumps({"access_token": "EAAA-own"})
    config.location_ref = "L-OTHER"
    config.save()
    client = emr_client(clinic=clinic_a)
    assert (client.access_token, client.location_id) == ("EAAA-own", "L-OTHER")


def test_from_config_without_any_square_account_says_where_to_enter_one(clinic_a):
    EmrConfig.objects.create(clinic=clinic_a, kind=EmrConfig.Kind.SQUARE)
    with pytest.raises(EmrConfigError, match="deposit \\(payment\\) settings"):
        emr_client(clinic=clinic_a)
