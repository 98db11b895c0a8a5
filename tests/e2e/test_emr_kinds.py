"""The booking flow on each EMR kind with an API (issue 18): the patient books Botox by text and pays the deposit,
the appointment is written to the clinic's EMR (its fake, in its own process, speaking the vendor's wire format),
then the patient moves it to another day (the new time booked in the EMR, the old one cancelled there) and finally
cancels it (cancelled in the EMR, the deposit refunded). Nextech's own booking scenarios are in
test_booking_flow.py."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from bookings.models import Booking
from conversation.models import Conversation

from .checks import PATIENT_TEXTS, assert_booked, book_until_deposit
from .flow import Expected, emr_open_times, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _book_move_cancel(setup, patient, expect):
    """Book (deposit paid), reschedule to the first time the day after tomorrow, cancel. Returns (first booking,
    moved booking, first start, new start)."""
    tz = setup.tz
    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]
    first, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[expect.intro(), expect.price(), expect.offer(), expect.ask_name(), link, expect.confirmation(start)],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    booked_at = first.emr_appointment_id
    assert booked_at

    # The patient moves it to the day after tomorrow (named by its weekday), the first time offered.
    later = timezone.localtime(timezone.now(), tz).date() + timedelta(days=2)
    new_times = [t for t in emr_open_times(tz, days=(2,)) if t.date() == later]
    assert patient.say("hey can i reschedule?") == [expect.ask_new_time(start)]
    assert patient.say(f"{later:%A} afternoon") == [expect.offer(new_times)]
    new_start = new_times[0]
    assert patient.say("1") == [expect.moved(new_start)]
    moved = Booking.objects.get(clinic=setup.clinic, rescheduled_from=first)
    first.refresh_from_db()
    assert first.status == Booking.Status.CANCELLED and moved.status == Booking.Status.CONFIRMED
    assert moved.start == new_start and moved.deposit_cents == 5000
    assert moved.emr_appointment_id and moved.emr_appointment_id != booked_at
    patient.transcript.check(
        f"Booking #{first.pk} moved to booking #{moved.pk} ({new_start.isoformat()}): EMR appointment "
        f"{moved.emr_appointment_id} written, {booked_at} cancelled; the deposit carried over."
    )

    # Then cancels it.
    assert patient.say("i need to cancel my appointment") == [expect.ask_cancel(new_start)]
    assert patient.say("yes") == [expect.cancelled(new_start)]
    moved.refresh_from_db()
    assert moved.status == Booking.Status.CANCELLED
    wait_for(lambda: patient.stack.square.state()["refunds"], "the deposit refund at Square", timeout=60)
    (refund,) = patient.stack.square.state()["refunds"].values()
    assert refund["amount_money"] == {"amount": 5000, "currency": "USD"}
    patient.transcript.check(f"Booking #{moved.pk} cancelled; the $50 deposit refunded at Square ({refund['id']}).")
    return first, moved, start, new_start


def test_boulevard_book_reschedule_cancel(clinic_factory, patient_factory, e2e):
    """On Boulevard: booked through a cart checkout, moved to another day, then cancelled

    The clinic's EMR is Boulevard (its Client API, GraphQL): open times are the business's bookable times, the
    booking is a cart checked out with the patient's name and phone, the move books the new time and cancels the old
    appointment, and the cancel is made as the appointment's client (a token signed with the API secret)."""
    setup = clinic_factory("boulevard")
    patient = patient_factory(setup)
    expect = Expected(setup)

    first, moved, start, new_start = _book_move_cancel(setup, patient, expect)

    appointments = e2e.boulevard.state()["appointments"]
    by_start = {datetime.fromisoformat(a["start"]): (key, a) for key, a in appointments.items()}
    assert set(by_start) == {start, new_start}, appointments
    for when in (start, new_start):
        _, appointment = by_start[when]
        assert appointment["cancelled"] is True
        assert appointment["client_information"]["firstName"] == "Jane"
        assert appointment["client_information"]["lastName"] == "Doe"
        assert appointment["client_information"]["phoneNumber"] == setup.patient_phone
    assert f"booking:{first.pk}" in by_start[start][1]["client_message"]
    assert f"booking:{moved.pk}" in by_start[new_start][1]["client_message"]
    assert by_start[start][0] in first.emr_appointment_id and by_start[new_start][0] in moved.emr_appointment_id
    calls = e2e.boulevard.calls()
    ok = [c for c in calls if c["status"] == 200]
    checkouts = [c for c in ok if c["operation"] == "checkoutCart"]
    cancels = [c for c in ok if c["operation"] == "cancelAppointment"]
    assert len(checkouts) == 2 and len(cancels) == 2
    assert {c["variables"]["input"]["id"] for c in cancels} == {by_start[start][0], by_start[new_start][0]}
    assert all(c["client_id"] for c in cancels)  # signed in as the appointment's client, not as a guest
    patient.transcript.check(
        f"Boulevard: 2 carts checked out, appointments {by_start[start][0]} and {by_start[new_start][0]}, both "
        f"cancelled with a signed client token; {len(calls)} GraphQL calls in all."
    )
    e2e.assert_no_errors()


def test_zenoti_hold_book_reschedule_cancel(clinic_factory, patient_factory, e2e):
    """On Zenoti: the paid booking reserved at Zenoti and confirmed, moved, then cancelled

    The clinic's EMR is Zenoti (its REST API, an API key per clinic): open times are a service booking's slots for
    the clinic's therapist; while the patient pays, the time is held here (Zenoti's reservation needs the guest,
    who is known only once the patient has given a name); the paid booking reserves the time at Zenoti (its hold
    step) and confirms it at once under a guest created by phone; the move books the new time and cancels the old
    invoice, and the cancel cancels the new one."""
    setup = clinic_factory("zenoti")
    patient = patient_factory(setup)
    expect = Expected(setup)

    first, moved, start, new_start = _book_move_cancel(setup, patient, expect)

    state = e2e.zenoti.state()
    assert set(state["invoices"]) == {first.emr_appointment_id, moved.emr_appointment_id}
    confirmed = {invoice: state["bookings"][booking_id] for invoice, booking_id in state["invoices"].items()}
    (guest_id,) = state["guests"]
    guest = state["guests"][guest_id]["personal_info"]
    assert (guest["first_name"], guest["last_name"]) == ("Jane", "Doe")
    assert guest["mobile_phone"]["number"] == setup.patient_phone[2:]
    for booking, when in ((first, start), (moved, new_start)):
        held = confirmed[booking.emr_appointment_id]
        assert held["confirmed"] and held.get("cancelled") is True
        assert held["guest"] == guest_id and held["therapist"] == setup.provider.emr_ref
        assert datetime.fromisoformat(held["reserved"]) == when.replace(tzinfo=None)  # the center's clock
    calls = e2e.zenoti.calls()
    reserves = [c for c in calls if c[0] == "PUT" and c[1].endswith("/slots/reserve")]
    confirms = [c for c in calls if c[0] == "POST" and c[1].endswith("/slots/confirm")]
    cancels = [c for c in calls if c[0] == "PUT" and c[1].startswith("/v1/invoices/")]
    assert len(reserves) == len(confirms) == 2
    assert [c[3]["notes"] for c in confirms] == [f"medspa booking {first.pk}", f"medspa booking {moved.pk}"]
    assert sorted(c[1] for c in cancels) == sorted(
        f"/v1/invoices/{b.emr_appointment_id}/cancel" for b in (first, moved)
    )
    patient.transcript.check(
        f"Zenoti: guest {guest_id} created by phone; 2 times reserved then confirmed (invoices "
        f"{first.emr_appointment_id}, {moved.emr_appointment_id}), both cancelled; {len(calls)} API calls in all."
    )
    e2e.assert_no_errors()


def test_square_appointments_book_reschedule_cancel(clinic_factory, patient_factory, e2e):
    """On Square Appointments: booked through Square's Bookings API, moved to another day, then cancelled

    The clinic's EMR is Square Appointments (the squareup SDK against the Bookings API): open times are
    SearchAvailability's for the service variation and team member, the paid booking is a CreateBooking for a
    customer found or created by phone, the move books the new time and cancels the old booking, and the cancel is
    a RetrieveBooking (for its version) then CancelBooking."""
    setup = clinic_factory("square")
    patient = patient_factory(setup)
    expect = Expected(setup)

    first, moved, start, new_start = _book_move_cancel(setup, patient, expect)

    state = e2e.square_appointments.state()
    bookings = state["bookings"]
    assert set(bookings) == {first.emr_appointment_id, moved.emr_appointment_id}
    (customer_id,) = state["customers"]
    customer = state["customers"][customer_id]
    assert (customer["given_name"], customer["family_name"]) == ("Jane", "Doe")
    assert customer["phone_number"] == setup.patient_phone
    for booking, when in ((first, start), (moved, new_start)):
        made = bookings[booking.emr_appointment_id]
        assert made["status"] == "CANCELLED_BY_SELLER" and made["customer_id"] == customer_id
        assert datetime.fromisoformat(made["start_at"].replace("Z", "+00:00")) == when
        assert made["seller_note"] == f"medspa booking {booking.pk}"
        (segment,) = made["appointment_segments"]
        assert segment["team_member_id"] == setup.provider.emr_ref
        assert segment["service_variation_id"] == setup.service.emr_service_id
    calls = e2e.square_appointments.calls()
    creates = [c for c in calls if c[0] == "POST" and c[1] == "/v2/bookings"]
    cancels = [c for c in calls if c[0] == "POST" and c[1].endswith("/cancel")]
    assert len(creates) == 2 and len(cancels) == 2
    wanted = sorted(f"/v2/bookings/{b.emr_appointment_id}/cancel" for b in (first, moved))
    assert sorted(c[1] for c in cancels) == wanted
    patient.transcript.check(
        f"Square Appointments: customer {customer_id} created by phone; bookings {first.emr_appointment_id} and "
        f"{moved.emr_appointment_id} created, both cancelled by the seller; {len(calls)} Bookings API calls in all."
    )
    e2e.assert_no_errors()
