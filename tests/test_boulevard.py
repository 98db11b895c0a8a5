"""The Boulevard adapter (emr/boulevard.py) against a local fake Client API (tests/fakes/boulevard.py) built from
Boulevard's own SDK and schema (tests/data/providers/boulevard/, sources in SOURCES.md); never the internet."""

import base64
import json
import logging
import socket
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from emr.base import (
    MANUAL,
    STEPS,
    WRITE,
    AppointmentRequest,
    EmrConfigError,
    EmrError,
    PatientInfo,
    Slot,
    SlotTakenError,
)
from emr.boulevard import (
    BookingQuestionsRequired,
    BoulevardClient,
    CardRequired,
    CheckoutOutcomeUnknown,
    split_reference,
)

pytest_plugins = ["tests.fakes.boulevard"]  # the fake_boulevard fixture

SAMPLES = Path(__file__).parent / "data/providers/boulevard"
LOCATION_ID = "urn:blvd:Location:loc-7"
ITEM_ID = "urn:blvd:Service:lip-filler"
OTHER_ITEM_ID = "urn:blvd:Service:botox"
STAFF_ID = "urn:blvd:Staff:anna"  # the provider's mapping: a Boulevard staff member
OTHER_STAFF_ID = "urn:blvd:Staff:ben"
STAFF_VARIANT_ID = "urn:blvd:ServiceStaffPrice:filler-anna"  # Anna's variant of lip filler
OTHER_VARIANT_ID = "urn:blvd:ServiceStaffPrice:botox-anna"  # Anna's variant of botox: another id

NY = ZoneInfo("America/New_York")
MON_9 = datetime(2025, 3, 10, 9, 0, tzinfo=NY)
MON_1030 = datetime(2025, 3, 10, 10, 30, tzinfo=NY)
MON_14 = datetime(2025, 3, 10, 14, 0, tzinfo=NY)
TUE_9 = datetime(2025, 3, 11, 9, 0, tzinfo=NY)
NEXT_WED_11 = datetime(2025, 3, 19, 11, 0, tzinfo=NY)
PATIENT = PatientInfo(first_name="Dana", last_name="Whitfield", phone="+16175550123", email="dana@example.com")


@pytest.fixture
def sleeps():
    return []


def make_client(fake, sleeps, **options):
    options = {"api_secret": fake.api_secret, **options}
    return BoulevardClient(
        business_id=fake.business_id,
        api_key=fake.api_key,
        location_id=LOCATION_ID,
        base_url=fake.url,
        timeout=5.0,
        sleep=sleeps.append,
        **options,
    )


@pytest.fixture
def client(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.items = {
        ITEM_ID: {
            "duration": 30,
            "variants": {
                STAFF_VARIANT_ID: {"staff": STAFF_ID, "duration": 45},
                "urn:blvd:ServiceStaffPrice:filler-ben": {"staff": OTHER_STAFF_ID, "duration": 60},
            },
        },
        OTHER_ITEM_ID: {"duration": 20, "variants": {OTHER_VARIANT_ID: {"staff": STAFF_ID, "duration": 15}}},
    }
    fake_boulevard.schedule = [MON_9, MON_1030, MON_14, TUE_9, NEXT_WED_11]
    blvd = make_client(fake_boulevard, sleeps)
    yield blvd
    blvd.close()


def slot(start, provider_ref=STAFF_ID, service_ref=ITEM_ID):
    return Slot(start=start, end=start + timedelta(minutes=45), provider_ref=provider_ref, service_ref=service_ref)


def request_for(start, *, booking_id=42, patient=PATIENT, provider_ref=STAFF_ID):
    return AppointmentRequest(booking_id=booking_id, slot=slot(start, provider_ref), patient=patient)


def test_capabilities_and_default_urls():
    assert BoulevardClient.capabilities == frozenset({WRITE})
    assert BoulevardClient(business_id="b1", api_key="k", location_id="l", card_via_boulevard=True).capabilities == (
        frozenset({MANUAL})
    )
    sandbox = BoulevardClient(business_id="b1", api_key="k", location_id="l")
    live = BoulevardClient(business_id="b1", api_key="k", location_id="l", sandbox=False)
    assert sandbox.url == "https://sandbox.joinblvd.com/api/2020-01/b1/client"
    assert live.url == "https://dashboard.boulevard.io/api/2020-01/b1/client"
    sandbox.close()
    live.close()


@pytest.mark.parametrize("vector", json.loads((SAMPLES / "platform_client_auth_vectors.json").read_text())["vectors"])
def test_guest_access_is_the_sdks_basic_header(vector, fake_boulevard, sleeps):
    """book-sdk src/platformClient.test.ts: the Authorization header its PlatformClient sends for an API key."""
    fake_boulevard.api_key = vector["apiKey"]
    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.items = {ITEM_ID: {"duration": 30, "variants": {}}}
    blvd = make_client(fake_boulevard, sleeps)
    blvd.availability(service_ref=ITEM_ID, start=MON_9, end=MON_9 + timedelta(days=1))
    blvd.close()
    assert {r.authorization for r in fake_boulevard.requests} == {vector["Authorization"]}
    assert {r.path for r in fake_boulevard.requests} == {f"/api/2020-01/{fake_boulevard.business_id}/client"}


def test_wrong_key_is_a_permanent_error_without_retries(fake_boulevard, sleeps):
    blvd = BoulevardClient(
        business_id=fake_boulevard.business_id,
        api_key="wrong",
        location_id=LOCATION_ID,
        base_url=fake_boulevard.url,
        sleep=sleeps.append,
    )
    with pytest.raises(EmrError) as caught:
        blvd.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    blvd.close()
    assert caught.value.status == 401 and not caught.value.transient
    assert "Unauthorized" in str(caught.value)
    assert sleeps == [] and len(fake_boulevard.requests) == 1


def test_availability_returns_the_fakes_times_as_aware_slots_in_order(client, fake_boulevard):
    start = datetime(2025, 3, 10, 0, 0, tzinfo=NY)
    slots = client.availability(service_ref=ITEM_ID, start=start, end=start + timedelta(days=14))

    assert [s.start for s in slots] == [MON_9, MON_1030, MON_14, TUE_9, NEXT_WED_11]
    assert all(s.start.tzinfo is not None and s.start.utcoffset() is not None for s in slots)
    assert all(s.end - s.start == timedelta(minutes=30) for s in slots)  # the item's listed duration
    assert all(s.provider_ref == "" and s.service_ref == ITEM_ID and s.location_ref == LOCATION_ID for s in slots)
    assert all(s.emr_slot_id.startswith(slots[0].emr_slot_id.split(":time:")[0]) for s in slots)  # one cart's ids

    dates = fake_boulevard.calls("cartBookableDates")
    assert [
        (c.variables["searchRangeLower"], c.variables["searchRangeUpper"], c.variables["limit"]) for c in dates
    ] == [
        ("2025-03-10", "2025-03-24", 31)
    ]  # one call: the answer is limited by `limit` (default 31), so a window of 31 days cannot be cut short
    assert {c.variables["tz"] for c in dates} == {"America/New_York"}
    assert [c.variables["searchDate"] for c in fake_boulevard.calls("cartBookableTimes")] == [
        "2025-03-10",
        "2025-03-11",
        "2025-03-19",
    ]
    create = fake_boulevard.calls("createCart")
    assert [c.variables["input"] for c in create] == [{"locationId": LOCATION_ID}]
    assert create[0].variables["itemId"] == ITEM_ID  # the service's staff variants come with the new cart
    add = fake_boulevard.calls("addCartSelectedBookableItem")[0].variables["input"]
    assert add == {"id": add["id"], "itemId": ITEM_ID}  # no staff variant asked


def test_availability_for_a_provider_uses_their_variant_of_that_service_and_its_duration(client, fake_boulevard):
    slots = client.availability(service_ref=ITEM_ID, start=MON_1030, end=TUE_9, provider_ref=STAFF_ID)

    assert [(s.start, s.end) for s in slots] == [
        (MON_1030, MON_1030 + timedelta(minutes=45)),
        (MON_14, MON_14 + timedelta(minutes=45)),
    ]  # [start, end): 9:00 is before, Tuesday 9:00 is the end
    assert {s.provider_ref for s in slots} == {STAFF_ID}
    assert fake_boulevard.calls("addCartSelectedBookableItem")[0].variables["input"]["itemStaffVariantId"] == (
        STAFF_VARIANT_ID
    )


def test_each_availability_call_builds_a_fresh_cart(client, fake_boulevard):
    first = client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    second = client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert len(fake_boulevard.calls("createCart")) == 2
    assert {s.emr_slot_id for s in first}.isdisjoint({s.emr_slot_id for s in second})


def test_availability_in_utc_asks_boulevard_in_utc(client, fake_boulevard):
    start = MON_9.astimezone(ZoneInfo("UTC"))
    slots = client.availability(service_ref=ITEM_ID, start=start, end=start + timedelta(hours=2))
    assert [s.start for s in slots] == [MON_9, MON_1030]
    assert {c.variables["tz"] for c in fake_boulevard.calls("cartBookableDates")} == {"UTC"}


def test_create_appointment_runs_the_cart_flow_in_order(client, fake_boulevard):
    appointment = client.create_appointment(request_for(MON_1030))

    assert fake_boulevard.operations() == [
        "createCart",
        "addCartSelectedBookableItem",
        "cartBookableTimes",
        "reserveCartBookableItems",
        "updateCart",
        "cart",  # what checkout would refuse, read first
        "checkoutCart",
    ]
    (cart_id,) = fake_boulevard.carts
    assert fake_boulevard.calls("createCart")[0].variables == {"input": {"locationId": LOCATION_ID}, "itemId": ITEM_ID}
    assert fake_boulevard.calls("addCartSelectedBookableItem")[0].variables == {
        "input": {"id": cart_id, "itemId": ITEM_ID, "itemStaffVariantId": STAFF_VARIANT_ID}
    }
    assert fake_boulevard.calls("cartBookableTimes")[0].variables == {
        "id": cart_id,
        "searchDate": "2025-03-10",
        "tz": "America/New_York",
    }
    time_id = fake_boulevard.carts[cart_id]["time_ids"][MON_1030]
    assert fake_boulevard.calls("reserveCartBookableItems")[0].variables == {
        "input": {"id": cart_id, "bookableTimeId": time_id}
    }
    assert fake_boulevard.calls("updateCart")[0].variables == {
        "input": {
            "id": cart_id,
            "clientInformation": {
                "firstName": "Dana",
                "lastName": "Whitfield",
                "phoneNumber": "+16175550123",
                "email": "dana@example.com",
            },
            "clientMessage": "booking:42",
        }
    }
    assert fake_boulevard.calls("checkoutCart")[0].variables == {"input": {"id": cart_id}}

    appointment_id, client_id = split_reference(appointment.emr_appointment_id)
    booked = fake_boulevard.appointments[appointment_id]
    assert appointment.status == "booked" and appointment.start == MON_1030
    assert appointment_id.startswith("urn:blvd:Appointment:") and client_id == booked["client_id"]
    assert len(appointment.emr_appointment_id) <= 100  # what Booking.emr_appointment_id holds
    assert booked["start"] == MON_1030 and booked["client_message"] == "booking:42"


def test_create_without_email_or_staff_variant_leaves_them_out(client, fake_boulevard):
    patient = PatientInfo(first_name="Sam", last_name="Lee", phone="+16175550199")
    client.create_appointment(request_for(TUE_9, patient=patient, provider_ref=""))
    assert "itemStaffVariantId" not in fake_boulevard.calls("addCartSelectedBookableItem")[0].variables["input"]
    assert "email" not in fake_boulevard.calls("updateCart")[0].variables["input"]["clientInformation"]


def test_time_taken_at_reserve_is_slot_taken_because_it_is_no_longer_listed(client, fake_boulevard):
    """The schema's cart error enum has no "time taken" code and the refusal's wording is not published: a refused
    reservation is a taken time when the day's times, listed again on the same cart, no longer have it."""
    fake_boulevard.take(MON_1030)  # still listed, but someone else got it first
    with pytest.raises(SlotTakenError):
        client.create_appointment(request_for(MON_1030))
    assert fake_boulevard.operations()[-2:] == ["reserveCartBookableItems", "cartBookableTimes"]
    assert not fake_boulevard.calls("checkoutCart") and not fake_boulevard.appointments


def test_time_no_longer_listed_is_slot_taken_without_reserving(client, fake_boulevard):
    fake_boulevard.take(MON_1030, listed=False)
    with pytest.raises(SlotTakenError):
        client.create_appointment(request_for(MON_1030))
    assert not fake_boulevard.calls("reserveCartBookableItems")


def test_the_fakes_cart_errors_are_the_schemas_enum():
    from .fakes.boulevard import CART_ERROR_CODES

    codes = json.loads((SAMPLES / "cart_error_codes.json").read_text())["CartErrorCode"]
    assert set(codes) == CART_ERROR_CODES and "BOOKABLE_TIME_UNAVAILABLE" not in codes


@pytest.mark.parametrize("message", ["This time is already booked", "The selected time is no longer available"])
def test_a_refused_reservation_of_a_time_still_listed_is_not_slot_taken(client, fake_boulevard, message):
    """Words are not codes: whatever the message says, a time Boulevard still lists was not taken."""
    fake_boulevard.graphql_error("reserveCartBookableItems", message)
    with pytest.raises(EmrError) as caught:
        client.create_appointment(request_for(MON_9))
    assert not isinstance(caught.value, SlotTakenError)
    assert str(caught.value) == message


def test_503_is_retried_with_backoff_then_succeeds(client, fake_boulevard, sleeps):
    fake_boulevard.fail(503, times=2)
    slots = client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert [s.start for s in slots] == [MON_9, MON_1030, MON_14]
    assert sleeps == [0.5, 1.0]
    assert [r.status for r in fake_boulevard.requests[:3]] == [503, 503, 200]
    assert {r.operation for r in fake_boulevard.requests[:3]} == {"createCart"}


def test_503_until_attempts_run_out_is_a_transient_error(client, fake_boulevard, sleeps):
    fake_boulevard.fail(503, times=5)
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert caught.value.transient and caught.value.status == 503
    assert len(fake_boulevard.requests) == 3 and sleeps == [0.5, 1.0]


def test_connection_refused_is_retried_then_transient(sleeps):
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    blvd = BoulevardClient(
        business_id="b1", api_key="k", location_id="l", base_url=f"http://127.0.0.1:{port}/x", sleep=sleeps.append
    )
    with pytest.raises(EmrError) as caught:
        blvd.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    blvd.close()
    assert caught.value.transient and sleeps == [0.5, 1.0]


def test_checkout_is_not_retried_after_a_5xx(client, fake_boulevard, sleeps):
    original = fake_boulevard.handle

    def handle(request):  # 503 only for checkoutCart
        if request.operation == "checkoutCart":
            return 503, {"errors": [{"message": "Service Unavailable"}]}
        return original(request)

    fake_boulevard.handle = handle
    with pytest.raises(CheckoutOutcomeUnknown) as caught:
        client.create_appointment(request_for(MON_9))
    assert caught.value.transient and caught.value.status == 503
    assert len([r for r in fake_boulevard.requests if r.operation == "checkoutCart"]) == 1 and sleeps == []


def test_graphql_error_becomes_emr_error_with_its_message(client, fake_boulevard, sleeps):
    fake_boulevard.graphql_error("createCart", "Location is not accepting online bookings")
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert str(caught.value) == "Location is not accepting online bookings"
    assert not caught.value.transient and not isinstance(caught.value, SlotTakenError)
    assert sleeps == []


def test_unknown_item_is_an_emr_error(client):
    with pytest.raises(EmrError, match="does not offer this service"):
        client.availability(service_ref="urn:blvd:Service:nope", start=MON_9, end=TUE_9)


def test_patient_lookup_and_find_appointment_are_no_ops(client, fake_boulevard):
    assert client.find_or_create_patient(PATIENT) == ""
    assert client.find_appointment(booking_id=42, patient_id="", start=MON_9) is None
    assert fake_boulevard.requests == []


def test_cancel_signs_in_as_the_appointments_client(client, fake_boulevard):
    """book-sdk tests/integration.test.ts: anonymous appointment access is UNAUTHENTICATED; the client token
    (blvd-client-v1 + business + client + time, HMAC-SHA256 with the API secret) is how an appointment is read and
    cancelled."""
    appointment = client.create_appointment(request_for(MON_14))
    appointment_id, client_id = split_reference(appointment.emr_appointment_id)
    client.cancel_appointment(appointment.emr_appointment_id)

    assert fake_boulevard.appointments[appointment_id]["cancelled"] is True
    assert [r.variables for r in fake_boulevard.calls("cancelAppointment")] == [{"input": {"id": appointment_id}}]
    signed = [r for r in fake_boulevard.requests if r.operation in ("appointment", "cancelAppointment")]
    assert {r.client_id for r in signed} == {client_id}
    key, _, token = base64.b64decode(signed[0].authorization.removeprefix("Basic ")).decode().partition(":")
    assert key == fake_boulevard.api_key and token[44:].startswith(
        f"blvd-client-v1{fake_boulevard.business_id}{client_id}"
    )

    client.cancel_appointment(appointment.emr_appointment_id)  # again (a retry): read first, nothing to do
    assert len(fake_boulevard.calls("cancelAppointment")) == 1
    assert client.appointment_status(appointment.emr_appointment_id).status == "cancelled"


def test_the_guest_key_cannot_cancel(client, fake_boulevard):
    """What the adapter used to send: cancelAppointment with the guest key answers UNAUTHENTICATED."""
    expected = json.loads((SAMPLES / "anonymous_appointment_unauthenticated_fragment.json").read_text())
    appointment_id = fake_boulevard.book(MON_14)
    answer = httpx.post(
        fake_boulevard.url,
        json={"query": "mutation { cancelAppointment(input: {id: $id}) { appointment { id } } }", "variables": {}},
        headers={"Authorization": fake_boulevard.guest_authorization},
    ).json()
    assert answer["errors"][0]["code"] == expected["errors"][0]["code"] == "UNAUTHENTICATED"
    assert fake_boulevard.appointments[appointment_id]["cancelled"] is False


def test_cancel_needs_the_secret_and_the_client(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    without_secret = make_client(fake_boulevard, sleeps, api_secret="")
    with pytest.raises(EmrError, match="API secret") as caught:
        without_secret.cancel_appointment("urn:blvd:Appointment:1|f9d25e50-c5f0-4879-ae20-026303e23405")
    assert not caught.value.transient and fake_boulevard.requests == []
    without_secret.close()
    blvd = make_client(fake_boulevard, sleeps)
    with pytest.raises(EmrError, match="no Boulevard client"):
        blvd.cancel_appointment("urn:blvd:Appointment:booked-before-this-change")
    with pytest.raises(EmrError, match="Appointment not found"):  # another client's appointment
        blvd.cancel_appointment(f"{fake_boulevard.book(MON_9)}|f9d25e50-c5f0-4879-ae20-026303e23405")
    blvd.close()


def test_a_wrong_secret_is_refused_as_unauthenticated(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    appointment_id = fake_boulevard.book(MON_9, client_id="f9d25e50-c5f0-4879-ae20-026303e23405")
    blvd = make_client(fake_boulevard, sleeps, api_secret=base64.b64encode(b"another secret").decode())
    with pytest.raises(EmrError) as caught:
        blvd.cancel_appointment(f"{appointment_id}|f9d25e50-c5f0-4879-ae20-026303e23405")
    blvd.close()
    assert caught.value.code == "UNAUTHENTICATED" and not caught.value.transient
    assert fake_boulevard.appointments[appointment_id]["cancelled"] is False


def test_an_api_secret_that_is_not_base64_is_a_configuration_error():
    with pytest.raises(EmrConfigError, match="base64"):
        BoulevardClient(business_id="b", api_key="k", location_id="l", api_secret="not base64!")


def test_logs_carry_no_patient_details(client, fake_boulevard, caplog):
    caplog.set_level(logging.DEBUG)
    fake_boulevard.fail(503, times=1)
    appointment = client.create_appointment(request_for(MON_9))
    client.cancel_appointment(appointment.emr_appointment_id)
    assert caplog.records  # it does log
    for secret in ("Dana", "Whitfield", "6175550123", "dana@example.com"):
        assert secret not in caplog.text


# --- Staff variants are listed per service --------------------------------------------------------------------------


def test_one_provider_has_a_different_staff_variant_for_each_service(client, fake_boulevard):
    """graph.ts: ``CartAvailableBookableItem.staffVariants`` belong to the item. A provider mapped to one variant id
    would be refused for every other service; mapped to their staff id, each service gets its own variant."""
    client.create_appointment(request_for(MON_9))
    client.availability(service_ref=OTHER_ITEM_ID, start=MON_9, end=TUE_9, provider_ref=STAFF_ID)
    chosen = [c.variables["input"]["itemStaffVariantId"] for c in fake_boulevard.calls("addCartSelectedBookableItem")]
    assert chosen == [STAFF_VARIANT_ID, OTHER_VARIANT_ID]


def test_an_older_mapping_to_a_variant_id_still_works_for_its_service(client, fake_boulevard):
    slots = client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9, provider_ref=STAFF_VARIANT_ID)
    assert slots and {s.end - s.start for s in slots} == {timedelta(minutes=45)}


def test_a_provider_without_a_variant_for_the_service_is_named_as_such(client, fake_boulevard):
    with pytest.raises(EmrError, match="no Boulevard staff variant") as caught:
        client.availability(service_ref=OTHER_ITEM_ID, start=MON_9, end=TUE_9, provider_ref=OTHER_STAFF_ID)
    assert not caught.value.transient and not fake_boulevard.calls("addCartSelectedBookableItem")


# --- What checkout requires: a card on file, booking questions -------------------------------------------------------


def test_a_business_that_requires_a_card_on_file_is_refused_before_checkout(client, fake_boulevard):
    """CartFeatures.paymentInfoRequired / CART_MISSING_ITEM_PAYMENT_METHOD (graph.ts); Boulevard's help centre: a
    client booking online cannot finalise the appointment until they add a valid card. We never hold a card."""
    fake_boulevard.payment_info_required = True
    with pytest.raises(CardRequired, match="card_via_boulevard") as caught:
        client.create_appointment(request_for(MON_9))
    assert not caught.value.transient
    assert "checkoutCart" not in fake_boulevard.operations() and not fake_boulevard.appointments


def test_card_via_boulevard_clinics_read_open_times_and_hand_bookings_to_staff(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.payment_info_required = True
    fake_boulevard.items = {ITEM_ID: {"duration": 30, "variants": {}}}
    fake_boulevard.schedule = [MON_9]
    blvd = make_client(fake_boulevard, sleeps, card_via_boulevard=True)
    assert blvd.capabilities == frozenset({MANUAL})  # booking_confirm hands the paid booking to the front desk
    assert [s.start for s in blvd.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)] == [MON_9]
    steps = blvd.automation()
    blvd.close()
    assert set(steps) == set(STEPS)
    assert "card via Boulevard" in steps["book"] and steps["availability"].startswith("automatic")


def test_required_booking_questions_are_named(client, fake_boulevard):
    fake_boulevard.booking_questions = [{"id": "q1", "label": "Any allergies?", "required": True}]
    with pytest.raises(BookingQuestionsRequired, match="Any allergies"):
        client.create_appointment(request_for(MON_9))
    assert "checkoutCart" not in fake_boulevard.operations()


# --- Boulevard's cost-based limit -----------------------------------------------------------------------------------


def test_the_cost_limit_in_graphql_errors_is_waited_out_and_retried(client, fake_boulevard, sleeps):
    """HTTP 200 with "API limit exceeded ... Please wait Zms and try again.": not an error to show, a wait."""
    fake_boulevard.rate_limit(times=2, wait_ms=840)
    slots = client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert [s.start for s in slots] == [MON_9, MON_1030, MON_14]
    assert sleeps == [0.84, 0.84]


def test_a_checkout_refused_by_the_cost_limit_is_retried_it_was_not_processed(client, fake_boulevard, sleeps):
    original = fake_boulevard.handle
    limited = []

    def handle(request):  # the cost limit once, on checkoutCart only
        if request.operation == "checkoutCart" and not limited:
            limited.append(request)
            return 200, {
                "errors": [
                    {
                        "message": json.loads((SAMPLES / "cost_limit_error_fragment.json").read_text())["errors"][0][
                            "message"
                        ].replace("Zms", "300ms")
                    }
                ]
            }
        return original(request)

    fake_boulevard.handle = handle
    appointment = client.create_appointment(request_for(MON_9))
    assert split_reference(appointment.emr_appointment_id)[0] in fake_boulevard.appointments
    assert sleeps == [0.3] and len(fake_boulevard.appointments) == 1


def test_the_cost_limit_until_attempts_run_out_is_transient(client, fake_boulevard, sleeps):
    fake_boulevard.rate_limit(times=5, wait_ms=100)
    with pytest.raises(EmrError) as caught:
        client.availability(service_ref=ITEM_ID, start=MON_9, end=TUE_9)
    assert caught.value.transient and sleeps == [0.1, 0.1]


# --- What the admin states and "test connection" exercises ----------------------------------------------------------


def test_automation_states_every_step(client):
    steps = client.automation()
    assert list(steps) == list(STEPS)
    assert steps["book"].startswith("automatic") and "signed" in steps["cancel"]


def test_connection_checks_exercise_the_variants_the_card_rule_and_the_signed_token(client, fake_boulevard, sleeps):
    client.test_client_id = "f9d25e50-c5f0-4879-ae20-026303e23405"  # the client id of book-sdk's integration test
    checks = client.connection_checks(
        service_ref=ITEM_ID, provider_refs=[STAFF_ID, OTHER_STAFF_ID], start=MON_9, end=TUE_9
    )
    assert [(step, ok) for step, ok, _ in checks] == [("staff", True), ("book", True), ("cancel", True)]
    assert [r.client_id for r in fake_boulevard.calls("client")] == ["f9d25e50-c5f0-4879-ae20-026303e23405"]

    fake_boulevard.payment_info_required = True
    checks = client.connection_checks(service_ref=OTHER_ITEM_ID, provider_refs=[OTHER_STAFF_ID], start=MON_9, end=TUE_9)
    assert [(step, ok) for step, ok, _ in checks][:2] == [("staff", False), ("book", False)]
    assert "card_via_boulevard" in checks[1][2]


def test_connection_checks_say_a_missing_secret_leaves_cancel_to_staff(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    blvd = make_client(fake_boulevard, sleeps, api_secret="")
    checks = blvd.connection_checks(
        service_ref=next(iter(fake_boulevard.items)), provider_refs=[], start=MON_9, end=TUE_9
    )
    blvd.close()
    assert checks[-1][:2] == ("cancel", False) and "secret" in checks[-1][2]


def boulevard_clinic(clinic, fake, **credentials):
    """The demo clinic on Boulevard: Botox is the fake's item, its providers Boulevard staff."""
    from emr.models import EmrConfig
    from medspa.models import Service

    fake.location_id = LOCATION_ID
    botox = Service.objects.get(clinic=clinic, name="Botox")
    botox.emr_service_id = ITEM_ID
    botox.save()
    for provider in botox.providers.all():
        provider.emr_ref = STAFF_ID
        provider.save()
    fake.items = {ITEM_ID: {"duration": 30, "variants": {STAFF_VARIANT_ID: {"staff": STAFF_ID, "duration": 45}}}}
    EmrConfig.objects.filter(clinic=clinic).update(
        kind=EmrConfig.Kind.BOULEVARD,
        location_ref=LOCATION_ID,
        credentials=json.dumps(
            {
                "business_id": fake.business_id,
                "api_key": fake.api_key,
                "api_secret": fake.api_secret,
                "base_url": fake.url,
                **credentials,
            }
        ),
    )
    return EmrConfig.objects.get(clinic=clinic)


def test_test_connection_runs_every_check_of_a_boulevard_clinic(demo, fake_boulevard):
    from emr.services import emr_connection_test

    boulevard_clinic(demo, fake_boulevard, test_client_id="f9d25e50-c5f0-4879-ae20-026303e23405")
    fake_boulevard.schedule = [MON_9]
    ok, text = emr_connection_test(clinic=demo, now=MON_9 - timedelta(hours=1))
    assert ok, text
    assert "1 open time(s) for Botox" in text and "staff: ok" in text and "book: ok" in text and "cancel: ok" in text

    fake_boulevard.payment_info_required = True
    ok, text = emr_connection_test(clinic=demo, now=MON_9 - timedelta(hours=1))
    assert not ok and "book: PROBLEM" in text and "card_via_boulevard" in text


def test_the_admin_states_which_steps_are_automated_and_refuses_bad_credentials(demo, fake_boulevard):
    from django.contrib import admin as django_admin

    from emr.admin import EmrConfigAdmin, EmrConfigForm

    config = boulevard_clinic(demo, fake_boulevard, card_via_boulevard=True)
    page = EmrConfigAdmin(type(config), django_admin.site).automated_steps(config)
    assert all(f"<strong>{step}</strong>" in page for step in STEPS) and "card via Boulevard" in page

    credentials = json.loads(config.credentials)
    data = {
        "clinic": demo.pk,
        "kind": "boulevard",
        "location_ref": LOCATION_ID,
        "slot_minutes": 15,
        "buffer_minutes": 0,
        "min_notice_minutes": 120,
        "horizon_days": 60,
    }
    form = EmrConfigForm(
        data={**data, "credentials": json.dumps({**credentials, "api_secret": "not base64!"})}, instance=config
    )
    assert not form.is_valid() and "base64" in str(form.errors["credentials"])
    misspelt = {**credentials, "api_sekret": credentials["api_secret"]}
    form = EmrConfigForm(data={**data, "credentials": json.dumps(misspelt)}, instance=config)
    assert not form.is_valid() and "api_secret" in str(form.errors["credentials"])
    assert EmrConfigForm(data={**data, "credentials": json.dumps(credentials)}, instance=config).is_valid()


def hold_botox(clinic, start, replacing=None):
    from bookings.services import booking_hold
    from emr.models import Provider
    from medspa.models import Service

    botox = Service.objects.get(clinic=clinic, name="Botox")
    return booking_hold(
        clinic=clinic,
        service=botox,
        provider=Provider.objects.filter(clinic=clinic, services=botox).order_by("name").first(),
        start=start,
        patient_phone="+16175550123",
        patient_name="Dana Whitfield",
        replacing=replacing,
        now=start - timedelta(days=3),
    )


def test_a_booking_is_written_to_boulevard_and_cancelled_there_as_its_client(demo, fake_boulevard):
    """The booking code's own path (booking_confirm, booking_cancel) on a Boulevard clinic."""
    from bookings.models import Booking
    from bookings.services import booking_cancel, booking_confirm

    boulevard_clinic(demo, fake_boulevard)
    start = datetime(2026, 11, 24, 10, tzinfo=demo.tz)
    fake_boulevard.schedule = [start]
    booking = hold_botox(demo, start)

    confirmed = booking_confirm(booking_id=booking.pk)
    appointment_id, client_id = split_reference(confirmed.emr_appointment_id)
    assert confirmed.status == Booking.Status.CONFIRMED
    assert fake_boulevard.appointments[appointment_id]["client_id"] == client_id
    assert fake_boulevard.appointments[appointment_id]["variant_id"] == STAFF_VARIANT_ID

    cancelled = booking_cancel(booking_id=booking.pk, by="staff", now=start - timedelta(days=1))
    assert cancelled.status == Booking.Status.CANCELLED
    assert fake_boulevard.appointments[appointment_id]["cancelled"] is True
    assert {r.client_id for r in fake_boulevard.calls("cancelAppointment")} == {client_id}


def test_a_card_via_boulevard_clinics_paid_booking_waits_for_the_front_desk(demo, fake_boulevard):
    from bookings.models import Booking
    from bookings.services import booking_confirm

    boulevard_clinic(demo, fake_boulevard, card_via_boulevard=True)
    fake_boulevard.payment_info_required = True
    start = datetime(2026, 11, 24, 10, tzinfo=demo.tz)
    fake_boulevard.schedule = [start]
    booking = booking_confirm(booking_id=hold_botox(demo, start).pk)
    assert booking.status == Booking.Status.AWAITING_STAFF
    assert "checkoutCart" not in fake_boulevard.operations() and not fake_boulevard.appointments


def test_the_emr_change_page_shows_the_steps_and_the_credentials_wanted(demo, fake_boulevard):
    from django.test import Client
    from django.urls import reverse

    from .conftest import make_staff

    config = boulevard_clinic(demo, fake_boulevard)
    browser = Client()
    browser.force_login(make_staff("owner-blvd", demo, role="owner"))
    page = browser.get(reverse("admin:emr_emrconfig_change", args=[config.pk])).content.decode()
    assert "what is automated" in page.lower() and "<strong>read status</strong>" in page
    assert "api_secret" in page and "card_via_boulevard" in page


def test_a_reschedule_books_the_new_time_in_boulevard_and_cancels_the_old_one(demo, fake_boulevard):
    from bookings.models import Booking
    from bookings.services import booking_confirm, booking_reschedule

    boulevard_clinic(demo, fake_boulevard)
    first, second = datetime(2026, 11, 24, 10, tzinfo=demo.tz), datetime(2026, 11, 25, 11, tzinfo=demo.tz)
    fake_boulevard.schedule = [first, second]
    old = booking_confirm(booking_id=hold_botox(demo, first).pk)
    new = booking_reschedule(
        booking_id=old.pk, new_booking_id=hold_botox(demo, second, replacing=old).pk, now=first - timedelta(days=2)
    )
    assert new.status == Booking.Status.CONFIRMED and Booking.objects.get(pk=old.pk).status == Booking.Status.CANCELLED
    old_id, new_id = split_reference(old.emr_appointment_id)[0], split_reference(new.emr_appointment_id)[0]
    assert fake_boulevard.appointments[old_id]["cancelled"] is True
    assert (
        fake_boulevard.appointments[new_id]["cancelled"] is False
        and fake_boulevard.appointments[new_id]["start"] == second
    )


def test_a_service_several_staff_perform_gets_its_times_asked_per_staff_member(demo, fake_boulevard, sleeps):
    """Boulevard's times for "anyone" do not say who is free; the conversation offers only times with a provider.
    emr.availability asks again once per provider of the service, so each time comes with the person it is with."""
    from datetime import date

    from emr.availability import availability_for_day
    from emr.models import Provider
    from medspa.models import Service

    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.items = {
        ITEM_ID: {
            "duration": 30,
            "variants": {
                STAFF_VARIANT_ID: {"staff": STAFF_ID, "duration": 45},
                "urn:blvd:ServiceStaffPrice:filler-ben": {"staff": OTHER_STAFF_ID, "duration": 45},
            },
        }
    }
    fake_boulevard.schedule = [MON_9, MON_14]
    service = Service.objects.filter(clinic=demo).first()
    service.emr_service_id = ITEM_ID
    service.save()
    anna, ben = Provider.objects.filter(clinic=demo).order_by("pk")[:2]
    Provider.objects.filter(pk=anna.pk).update(emr_ref=STAFF_ID)
    Provider.objects.filter(pk=ben.pk).update(emr_ref=OTHER_STAFF_ID)
    anna.services.add(service)
    ben.services.add(service)
    client = make_client(fake_boulevard, sleeps)

    assert {
        s.provider_ref for s in client.availability(service_ref=ITEM_ID, start=MON_9, end=MON_14 + timedelta(hours=1))
    } == {""}
    slots = availability_for_day(client=client, clinic=demo, service=service, day=date(2025, 3, 10))
    assert [(s.start, s.provider_ref) for s in slots] == [
        (MON_9, STAFF_ID),
        (MON_9, OTHER_STAFF_ID),
        (MON_14, STAFF_ID),
        (MON_14, OTHER_STAFF_ID),
    ]
