"""The Boulevard adapter (emr/boulevard.py) against a local fake Client API (tests/fakes/boulevard.py); never the
internet."""

import logging
import socket
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from emr.base import WRITE, AppointmentRequest, EmrError, PatientInfo, Slot, SlotTakenError
from emr.boulevard import BoulevardClient, CheckoutOutcomeUnknown

pytest_plugins = ["tests.fakes.boulevard"]  # the fake_boulevard fixture

LOCATION_ID = "urn:blvd:Location:loc-7"
ITEM_ID = "urn:blvd:Service:lip-filler"
STAFF_VARIANT_ID = "urn:blvd:ServiceStaffPrice:sv-9"

NY = ZoneInfo("America/New_York")
MON_9 = datetime(2025, 3, 10, 9, 0, tzinfo=NY)
MON_1030 = datetime(2025, 3, 10, 10, 30, tzinfo=NY)
MON_14 = datetime(2025, 3, 10, 14, 0, tzinfo=NY)
TUE_9 = datetime(2025, 3, 11, 9, 0, tzinfo=NY)
NEXT_WED_11 = datetime(2025, 3, 19, 11, 0, tzinfo=NY)  # beyond the first week of a range starting on the 10th
PATIENT = PatientInfo(first_name="Dana", last_name="Whitfield", phone="+16175550123", email="dana@example.com")


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(fake_boulevard, sleeps):
    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.items = {ITEM_ID: {"duration": 30, "staff": {STAFF_VARIANT_ID: 45}}}
    fake_boulevard.schedule = [MON_9, MON_1030, MON_14, TUE_9, NEXT_WED_11]
    blvd = BoulevardClient(
        business_id=fake_boulevard.business_id,
        api_key=fake_boulevard.api_key,
        location_id=LOCATION_ID,
        base_url=fake_boulevard.url,
        timeout=5.0,
        sleep=sleeps.append,
    )
    yield blvd
    blvd.close()


def slot(start, provider_ref=STAFF_VARIANT_ID):
    return Slot(start=start, end=start + timedelta(minutes=45), provider_ref=provider_ref, service_ref=ITEM_ID)


def request_for(start, *, booking_id=42, patient=PATIENT, provider_ref=STAFF_VARIANT_ID):
    return AppointmentRequest(booking_id=booking_id, slot=slot(start, provider_ref), patient=patient)


def test_capabilities_and_default_urls():
    assert BoulevardClient.capabilities == frozenset({WRITE})
    sandbox = BoulevardClient(business_id="b1", api_key="k", location_id="l")
    live = BoulevardClient(business_id="b1", api_key="k", location_id="l", sandbox=False)
    assert sandbox.url == "https://sandbox.joinblvd.com/api/2020-01/b1/client"
    assert live.url == "https://dashboard.boulevard.io/api/2020-01/b1/client"
    sandbox.close()
    live.close()


def test_basic_auth_header_is_base64_of_key_and_colon(client, fake_boulevard):
    client.availability(service_ref=ITEM_ID, start=MON_9, end=MON_9 + timedelta(days=1))
    assert fake_boulevard.requests
    # base64("blvd_test_key:"), written out so a change in how it is built cannot hide here
    assert {r.authorization for r in fake_boulevard.requests} == {"Basic Ymx2ZF90ZXN0X2tleTo="}
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
    assert [(c.variables["searchRangeLower"], c.variables["searchRangeUpper"]) for c in dates] == [
        ("2025-03-10", "2025-03-16"),
        ("2025-03-17", "2025-03-23"),
        ("2025-03-24", "2025-03-24"),
    ]  # week by week: Boulevard answers only the first week of a longer range
    assert {c.variables["tz"] for c in dates} == {"America/New_York"}
    assert [c.variables["searchDate"] for c in fake_boulevard.calls("cartBookableTimes")] == [
        "2025-03-10",
        "2025-03-11",
        "2025-03-19",
    ]
    create = fake_boulevard.calls("createCart")
    assert [c.variables for c in create] == [{"input": {"locationId": LOCATION_ID}}]
    add = fake_boulevard.calls("addCartSelectedBookableItem")[0].variables["input"]
    assert add == {"id": add["id"], "itemId": ITEM_ID}  # no staff variant asked


def test_availability_with_a_staff_variant_filters_the_range_and_uses_its_duration(client, fake_boulevard):
    slots = client.availability(service_ref=ITEM_ID, start=MON_1030, end=TUE_9, provider_ref=STAFF_VARIANT_ID)

    assert [(s.start, s.end) for s in slots] == [
        (MON_1030, MON_1030 + timedelta(minutes=45)),
        (MON_14, MON_14 + timedelta(minutes=45)),
    ]  # [start, end): 9:00 is before, Tuesday 9:00 is the end
    assert {s.provider_ref for s in slots} == {STAFF_VARIANT_ID}
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
        "checkoutCart",
    ]
    (cart_id,) = fake_boulevard.carts
    assert fake_boulevard.calls("createCart")[0].variables == {"input": {"locationId": LOCATION_ID}}
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

    booked = fake_boulevard.appointments[appointment.emr_appointment_id]
    assert appointment.status == "booked" and appointment.start == MON_1030
    assert appointment.emr_appointment_id.startswith("urn:blvd:Appointment:")
    assert booked["start"] == MON_1030 and booked["client_message"] == "booking:42"


def test_create_without_email_or_staff_variant_leaves_them_out(client, fake_boulevard):
    patient = PatientInfo(first_name="Sam", last_name="Lee", phone="+16175550199")
    client.create_appointment(request_for(TUE_9, patient=patient, provider_ref=""))
    assert "itemStaffVariantId" not in fake_boulevard.calls("addCartSelectedBookableItem")[0].variables["input"]
    assert "email" not in fake_boulevard.calls("updateCart")[0].variables["input"]["clientInformation"]


def test_time_taken_at_reserve_is_slot_taken(client, fake_boulevard):
    fake_boulevard.take(MON_1030)  # still listed, but someone else got it first
    with pytest.raises(SlotTakenError) as caught:
        client.create_appointment(request_for(MON_1030))
    assert str(caught.value) == fake_boulevard.taken_message
    assert fake_boulevard.operations()[-1] == "reserveCartBookableItems"
    assert not fake_boulevard.calls("checkoutCart") and not fake_boulevard.appointments


def test_time_no_longer_listed_is_slot_taken_without_reserving(client, fake_boulevard):
    fake_boulevard.take(MON_1030, listed=False)
    with pytest.raises(SlotTakenError):
        client.create_appointment(request_for(MON_1030))
    assert not fake_boulevard.calls("reserveCartBookableItems")


@pytest.mark.parametrize(
    ("message", "code"),
    [("This time is already booked", None), ("Reservation failed", "BOOKABLE_TIME_UNAVAILABLE")],
)
def test_reserve_errors_meaning_taken_are_slot_taken(client, fake_boulevard, message, code):
    fake_boulevard.graphql_error("reserveCartBookableItems", message, code=code)
    with pytest.raises(SlotTakenError):
        client.create_appointment(request_for(MON_9))


def test_other_reserve_errors_stay_emr_errors(client, fake_boulevard):
    fake_boulevard.graphql_error("reserveCartBookableItems", "Cart expired")
    with pytest.raises(EmrError) as caught:
        client.create_appointment(request_for(MON_9))
    assert not isinstance(caught.value, SlotTakenError)
    assert str(caught.value) == "Cart expired"


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
    with pytest.raises(EmrError, match="Item not found"):
        client.availability(service_ref="urn:blvd:Service:nope", start=MON_9, end=TUE_9)


def test_patient_lookup_and_find_appointment_are_no_ops(client, fake_boulevard):
    assert client.find_or_create_patient(PATIENT) == ""
    assert client.find_appointment(booking_id=42, patient_id="", start=MON_9) is None
    assert fake_boulevard.requests == []


def test_cancel_appointment(client, fake_boulevard):
    appointment = client.create_appointment(request_for(MON_14))
    client.cancel_appointment(appointment.emr_appointment_id)
    assert fake_boulevard.appointments[appointment.emr_appointment_id]["cancelled"] is True
    assert fake_boulevard.calls("cancelAppointment")[0].variables == {"input": {"id": appointment.emr_appointment_id}}
    with pytest.raises(EmrError, match="Appointment not found"):
        client.cancel_appointment("urn:blvd:Appointment:missing")


def test_logs_carry_no_patient_details(client, fake_boulevard, caplog):
    caplog.set_level(logging.DEBUG)
    fake_boulevard.fail(503, times=1)
    client.create_appointment(request_for(MON_9))
    client.cancel_appointment(next(iter(fake_boulevard.appointments)))
    assert caplog.records  # it does log
    for secret in ("Dana", "Whitfield", "6175550123", "dana@example.com"):
        assert secret not in caplog.text
