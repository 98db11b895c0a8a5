"""The flow that must always work (DESIGN.md), end to end: a patient reaches the clinic (missed call, their own
text, a web lead), asks for Botox, gets the catalog price and real open times, picks one, gives a name, pays the
Square deposit link, and the appointment is written to the clinic's EMR and confirmed by text. On Nextech, on the
built-in calendar and on a manual EMR (staff confirm)."""

from datetime import datetime

import pytest

from bookings.models import Booking
from conversation.models import Conversation
from medspa.models import StaffAlert
from messaging.models import Message

from .checks import PATIENT_TEXTS, assert_booked, assert_nextech, book_until_deposit, deposit_payment
from .flow import Expected, outbox_settled, wait_for, when_short

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_missed_call_to_confirmed_booking(clinic_factory, patient_factory, e2e):
    """Missed call to a confirmed, deposit-paid booking written to Nextech

    The patient calls the clinic's number and nobody answers; the clinic texts its intro within seconds, and the
    patient books Botox by text, pays the Square link, and the appointment lands in the clinic's EMR (Nextech)."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[
            expect.intro(),
            expect.price(),
            expect.offer(),
            expect.ask_name(),
            link,
            expect.confirmation(start),
        ],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert_nextech(patient, booking)
    e2e.assert_no_errors()


def test_patient_texts_first_to_confirmed_booking(clinic_factory, patient_factory, e2e):
    """The patient's own text to a confirmed, deposit-paid booking written to Nextech

    No call and no form: the patient's first text starts the conversation, and the same booking follows."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[expect.price(), expect.offer(), expect.ask_name(), link, expect.confirmation(start)],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.INBOUND_TEXT,
    )
    assert_nextech(patient, booking)
    e2e.assert_no_errors()


def test_web_lead_with_consent_to_confirmed_booking(clinic_factory, patient_factory, e2e):
    """A web lead with consent to texts to a confirmed, deposit-paid booking written to Nextech

    The clinic's web form posts the lead (POST /api/leads, from the clinic's website, with the consent wording the
    person saw); the clinic texts the web-lead intro, and the same booking follows."""
    from leads.models import Lead

    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.submit_lead("Hi, I'm interested in Botox for my forehead lines.") == [expect.lead_intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[
            expect.lead_intro(),
            expect.price(),
            expect.offer(),
            expect.ask_name(),
            link,
            expect.confirmation(start),
        ],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.WEB_LEAD,
    )
    lead = Lead.objects.get(clinic=setup.clinic)
    assert (lead.name, lead.phone, lead.service_of_interest) == ("Jane Doe", setup.patient_phone, setup.service)
    assert lead.sms_consent and lead.consent_at and lead.consent_ip == "127.0.0.1"
    assert lead.consent_text.startswith("By checking this box I agree to receive appointment texts from Lumen")
    patient.transcript.check(f"Lead #{lead.pk}: Botox, consent to texts recorded with its wording, time and IP.")
    assert_nextech(patient, booking)
    e2e.assert_no_errors()


def test_nextech_known_patient_and_a_flaky_slot_search(clinic_factory, patient_factory, e2e):
    """On Nextech: a patient the practice already has, and a Slot search that fails once

    Nextech's FHIR API is asked for free slots (it answers 503 once and is asked again), the patient is found by
    phone rather than created again, the time is checked once more right before writing, and the appointment is
    written as proposed with the practice's appointment type and practitioner."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)
    known = e2e.nextech.add_patient("Jane", "Doe", phone=setup.patient_phone[2:])  # on file, by 10-digit phone
    patient.note(f"Nextech already has Jane Doe on file as Patient/{known}.")

    assert patient.miss_call() == [expect.intro()]
    assert patient.say("How much is Botox?") == [expect.price()]
    e2e.nextech.fail(503, times=1)
    patient.note("Nextech's API answers the next request with 503.")
    assert patient.say("Yes, tomorrow afternoon") == [expect.offer()]
    assert patient.say("2") == [expect.ask_name()]
    (link,) = patient.say("Jane Doe")
    start = expect.times()[1]
    payment = deposit_payment(setup)
    assert link == expect.deposit_link("Jane", start, payment)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[expect.intro(), expect.price(), expect.offer(), expect.ask_name(), link, expect.confirmation(start)],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    calls = e2e.nextech.calls()
    state = e2e.nextech.state()
    assert state["grants"] == {"password": 1}  # one Azure AD token, reused for every call
    token_calls = [c for c in calls if c["path"] == "/token"]
    assert token_calls[0]["form"]["grant_type"] == "password"
    bearer = {c["headers"]["authorization"] for c in calls if c["path"] != "/token"}
    assert len(bearer) == 1 and next(iter(bearer)).startswith("Bearer at-")
    slot_calls = [c for c in calls if c["path"] == "/Slot"]
    assert len(slot_calls) == 3  # tomorrow's slots (503), the same again (200), the chosen time before writing
    day = slot_calls[0]["query"]
    assert slot_calls[1]["query"] == day
    assert day["schedule.actor"] == ["location/1"] and day["_count"] == ["50"]
    assert day["appointment-type"] == ["appointment-type/12"]  # the reference form of Nextech's docs
    assert [s[:2] for s in day["start"]] == ["ge", "lt"]
    recheck = slot_calls[-1]["query"]  # right before writing: is the chosen time still free?
    assert recheck["schedule.actor"] == ["location/1", "practitioner/9"]
    assert datetime.fromisoformat(recheck["start"][0][2:]) == start
    assert not [c for c in calls if c["method"] == "POST" and c["path"] == "/Patient"]  # found, not created
    assert list(state["patients"]) == [known]
    (appointment,) = state["appointments"].values()
    assert booking.emr_appointment_id == appointment["id"]
    assert {p["actor"]["reference"] for p in appointment["participant"]} == {
        f"patient/{known}",
        "location/1",
        "practitioner/9",
    }
    schedule = [e["valueString"] for e in appointment["extension"] if "valueString" in e]
    assert appointment["status"] == "proposed" and schedule == ["book"]
    patient.transcript.check(
        f"Nextech: one password grant; {len(slot_calls)} Slot searches (one answered 503 and retried, the last one "
        f"re-checking the chosen time for practitioner 9); Patient/{known} found by phone, none created; "
        f"Appointment/{appointment['id']} written once for patient/{known}."
    )
    e2e.assert_no_errors()


def test_builtin_calendar_booking(clinic_factory, patient_factory, e2e):
    """On the built-in calendar: open times from the provider's hours, the booking kept here

    The clinic has no external EMR: open times come from the provider's working hours (9-5, on a 15-minute grid,
    spread at least 90 minutes apart), and the paid booking is the appointment."""
    setup = clinic_factory("builtin")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[
            expect.intro(),
            expect.price(),
            expect.offer(),
            expect.ask_name(),
            link,
            expect.confirmation(start),
        ],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert booking.emr_appointment_id == f"builtin-{booking.pk}"
    assert not e2e.nextech.calls()
    patient.transcript.check(f"Built-in calendar: appointment builtin-{booking.pk}; no EMR was called.")
    e2e.assert_no_errors()


def test_i_want_botox_gets_the_price_and_the_soonest_times_in_one_reply(clinic_factory, patient_factory, e2e):
    """ "I want Botox": the price and the soonest open times in the same reply (DESIGN.md's flow)

    The patient names the treatment and nothing else. The one reply carries the catalog price and the three soonest
    real open times, on more than one day, from the built-in calendar; the patient picks the first, gives a name,
    pays, and is booked at exactly that time."""
    setup = clinic_factory("builtin")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    (offer,) = patient.say("I want Botox")
    assert offer.startswith("Botox is $12 per unit (most treatments use 20-30 units, about $240-$360). Here are open ")
    assert offer.endswith("Reply 1, 2 or 3 to pick one, or tell me a day that suits you.")
    conversation = Conversation.objects.get(clinic=setup.clinic, patient_phone=patient.phone)
    starts = [datetime.fromisoformat(o["start"]) for o in conversation.offered_slots]
    assert len(starts) == 3 and len({s.astimezone(setup.tz).date() for s in starts}) >= 2
    lines = [f"{i}. {when_short(s, setup.tz)} with {expect.doctor}" for i, s in enumerate(starts, 1)]
    assert "\n".join(lines) in offer
    patient.transcript.check("One reply: the catalog price and three real open times on more than one day.")
    assert patient.say("1") == [expect.ask_name(starts[0])]
    (link,) = patient.say("Jane Doe")
    payment = deposit_payment(setup)
    assert link == expect.deposit_link("Jane", starts[0], payment)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(starts[0])]
    booking, _ = assert_booked(
        patient,
        start=starts[0],
        payment=payment,
        texts=[expect.intro(), offer, expect.ask_name(starts[0]), link, expect.confirmation(starts[0])],
        inbound=["I want Botox", "1", "Jane Doe"],
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert booking.emr_appointment_id == f"builtin-{booking.pk}"
    e2e.assert_no_errors()


def test_manual_emr_booking_confirmed_by_staff(clinic_factory, patient_factory, e2e):
    """On a manual EMR (Aesthetic Record): paid, then confirmed by the front desk in the admin

    The clinic's EMR has no API: after the deposit the patient is told the front desk is confirming, staff are
    alerted, someone enters the booking in their EMR and presses "Mark confirmed" in the admin, and only then does
    the patient get the confirmation."""
    from .flow import FrontDesk

    setup = clinic_factory("manual")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.received_for_staff(start)]
    booking = Booking.objects.get(clinic=setup.clinic)
    wait_for(lambda: outbox_settled(payment), "the outbox")
    booking.refresh_from_db()
    assert booking.status == Booking.Status.AWAITING_STAFF
    alert = StaffAlert.objects.get(clinic=setup.clinic, kind=StaffAlert.Kind.MANUAL_BOOKING)
    assert alert.resolved_at is None and f"Booking #{booking.pk}" in alert.text

    desk = FrontDesk(e2e, setup, patient.transcript)
    try:
        desk.log_in()
        assert desk.mark_confirmed(booking.pk, patient) == [expect.confirmation(start)]
    finally:
        desk.close()

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[
            expect.intro(),
            expect.price(),
            expect.offer(),
            expect.ask_name(),
            link,
            expect.received_for_staff(start),
            expect.confirmation(start),
        ],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    kinds = list(
        Message.objects.filter(conversation__clinic=setup.clinic, direction="outbound").values_list("kind", flat=True)
    )
    assert kinds[-2:] == ["reply", "notice"]  # the staff confirmation is a notice: quiet hours would defer it
    assert not e2e.nextech.calls()
    patient.transcript.check(
        f"Manual EMR: booking #{booking.pk} waited as awaiting_staff with a staff alert; the front desk's "
        "\u201cMark confirmed\u201d confirmed it, resolved the alert and texted the patient (a notice)."
    )
    e2e.assert_no_errors()
