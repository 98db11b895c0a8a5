"""The waitlist, end to end (issue 17): a cancellation whose freed time goes to a waitlisted patient who pays the
deposit. Real web process, workers and beat, the Nextech fake as the clinic's EMR (its practice has four Botox
times a day, so a day is full with few bookings); two patients of the same clinic, A and B."""

import dataclasses
from datetime import datetime, timedelta
from datetime import timezone as fixed_zone

import pytest
from django.utils import timezone

from bookings.models import Booking
from conversation.models import Conversation
from emr.availability import availability_invalidate
from medspa.timetext import time_label, when_label
from payments.models import Payment
from waitlist.models import FreedTime, WaitlistEntry, WaitlistOffer

from .checks import PATIENT_TEXTS, assert_messages, book_until_deposit
from .flow import Expected, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_cancelled_time_goes_to_the_waitlisted_patient_who_pays(clinic_factory, patient_factory, e2e):
    """A cancellation's freed time goes to a waitlisted patient, who pays the deposit

    Patient A books Botox tomorrow at 2:00 PM on Nextech and pays; the practice's other three times that day are
    then booked by others. Patient B asks for tomorrow afternoon: nothing is open, so the assistant offers the
    waitlist, and B says YES. A cancels ("cancel my appointment", then YES) and is told the deposit is refunded
    (Square refund). The freed 2:00 PM is held for B at once and texted (B's name is not known yet: reply YES with
    the name); B answers, gets the deposit link, pays it and is confirmed. The time is booked once, at Nextech and
    here, and A's booking is cancelled there and here."""
    setup = clinic_factory("nextech")
    a = patient_factory(setup, label="A")
    b_setup = dataclasses.replace(setup, patient_phone=setup.patient_phone[:-2] + f"5{setup.patient_phone[-1]}")
    b = patient_factory(b_setup, name="Mary Major", label="B")
    expect = Expected(setup)
    clinic, tz, doctor = setup.clinic, setup.tz, setup.provider.name

    # A books and pays the 2:00 PM.
    start, payment_a, link_a = book_until_deposit(a, expect)
    assert a.pay_deposit(payment_a.link_url) == [expect.confirmation(start)]
    booking_a = Booking.objects.get(clinic=clinic)
    wait_for(lambda: Booking.objects.get(pk=booking_a.pk).status == Booking.Status.CONFIRMED, "A's booking")

    # The practice's other times that day are booked by others (at Nextech: the front desk, by phone).
    offset = timezone.localtime(timezone.now(), tz).utcoffset()
    wall = fixed_zone(offset)
    others = [datetime.combine(start.date(), datetime.min.time(), tzinfo=wall).replace(hour=h) for h in (13, 15, 16)]
    e2e.nextech.config(taken=[t.isoformat() for t in others])
    availability_invalidate(clinic_id=clinic.pk)  # what the app cached of the day is no longer true
    a.note("At Nextech the practice's other Botox times tomorrow (1:00, 3:00 and 4:00 PM) are booked by others.")

    # B asks for the same afternoon: nothing open, the waitlist is offered, B joins.
    assert b.say("How much is Botox?") == [expect.price()]
    label = "tomorrow afternoon"  # no clock time in it: said back without the zone
    assert b.say("Yes, tomorrow afternoon") == [
        f"I don't see any Botox openings tomorrow afternoon. Want me to text you if something opens {label}? "
        "Reply YES, or tell me another day."
    ]
    assert b.say("yes") == [
        f"Done! I'll text you if a Botox time opens {label}, and hold it for you for a few minutes. Or tell me "
        "another day that works."
    ]
    entry = WaitlistEntry.objects.get(clinic=clinic, patient_phone=b.phone)
    assert entry.state == WaitlistEntry.State.WAITING and entry.service == setup.service
    assert entry.window_start <= start < entry.window_end

    e2e.square.config(refund_status="COMPLETED")
    a.note("Square completes card refunds at once here (they may start PENDING at Square).")

    # A cancels: the refund text; the time frees up and is offered to B (held, reply YES with the name).
    when = when_label(start, tz)
    assert a.say("cancel my appointment") == [
        f"Reply YES to cancel your Botox on {when}; your $50 deposit will be refunded. Or reply NO to keep it."
    ]
    cancel = a.say("yes", wait=False)
    assert a.replies_to(cancel, 1, 60) == [
        f"Done: your Botox on {when} is cancelled. Your $50 deposit will be refunded. Want to pick another time?"
    ]
    (offer_text,) = b.replies_to(cancel, 1, 90)
    offer = WaitlistOffer.objects.select_related("booking").get(clinic=clinic)
    assert offer.patient_phone == b.phone and offer.start == start
    assert offer_text == (
        f"Good news from {clinic.name}: a Botox time opened up, {when} with {doctor}. It's held for you until "
        f"{time_label(offer.expires_at, tz)}. Want it? Reply YES with the name to book under, or NO to pass."
    )
    assert offer.expires_at - offer.offered_at == timedelta(minutes=15)  # the clinic's default hold
    assert offer.booking.status == Booking.Status.HELD and offer.booking.hold_expires_at == offer.expires_at
    assert Conversation.objects.get(clinic=clinic, patient_phone=b.phone).booking_id == offer.booking_id

    # B takes it: the name, the deposit link, the payment, the confirmation.
    assert b.say("yes") == ["Great! What name should I put the appointment under?"]
    (link_b,) = b.say("Mary Major")
    booking_b = Booking.objects.get(pk=offer.booking_id)
    payment_b = Payment.objects.get(booking=booking_b)
    assert link_b == (
        f"Thanks, Mary! I'm holding Botox on {when} with {doctor} until {time_label(payment_b.expires_at, tz)}. "
        f"To confirm, please pay the $50 deposit here: {payment_b.link_url}"
    )
    assert b.pay_deposit(payment_b.link_url, expect=1) == [expect.confirmation(start)]

    # The end state: the time booked once (B's), A's cancelled and refunded, the offer taken.
    wait_for(lambda: Payment.objects.get(pk=payment_a.pk).refund_status == "COMPLETED", "A's refund", timeout=60)
    booking_a.refresh_from_db()
    booking_b.refresh_from_db()
    assert booking_a.status == Booking.Status.CANCELLED
    assert booking_b.status == Booking.Status.CONFIRMED and booking_b.start == start
    assert (booking_b.patient_name, booking_b.patient_phone) == ("Mary Major", b.phone)
    active = Booking.objects.filter(clinic=clinic).exclude(status__in=["cancelled", "expired", "failed"])
    assert list(active.values_list("pk", flat=True)) == [booking_b.pk]
    a.transcript.check(
        f"Booking #{booking_a.pk} (A): cancelled; booking #{booking_b.pk} (B): confirmed for the same "
        f"{start.isoformat()}, the only active booking of the clinic."
    )

    payment_a.refresh_from_db()
    payment_b.refresh_from_db()
    assert payment_a.status == Payment.Status.REFUNDED and payment_a.refunded_cents == 5000
    (refund,) = e2e.square.state()["refunds"].values()
    assert refund["payment_id"] == payment_a.payment_id
    assert refund["amount_money"] == {"amount": 5000, "currency": "USD"}
    assert payment_b.status == Payment.Status.PAID and payment_b.paid_cents == 5000
    a.transcript.check(
        f"Payments: A's #{payment_a.pk} refunded $50.00 at Square (refund {refund['id']}); B's #{payment_b.pk} "
        "paid $50.00."
    )

    offer.refresh_from_db()
    entry.refresh_from_db()
    assert offer.state == WaitlistOffer.State.TAKEN and entry.state == WaitlistEntry.State.BOOKED
    (freed,) = FreedTime.objects.filter(clinic=clinic)
    assert freed.source_booking_id == booking_a.pk and freed.state == FreedTime.State.OFFERED
    a.transcript.check(
        f"Waitlist: entry #{entry.pk} (B) booked through offer #{offer.pk} (taken) of freed time #{freed.pk} "
        f"(from booking #{booking_a.pk})."
    )

    appointments = e2e.nextech.state()["appointments"]
    assert booking_a.emr_appointment_id != booking_b.emr_appointment_id and len(appointments) == 2
    assert appointments[booking_a.emr_appointment_id]["status"] == "cancelled"
    assert appointments[booking_b.emr_appointment_id]["status"] == "proposed"
    live = [x for x in appointments.values() if x["status"] != "cancelled"]
    assert [datetime.fromisoformat(x["start"]) for x in live] == [start]
    a.transcript.check(
        f"Nextech: Appointment/{booking_a.emr_appointment_id} (A) cancelled; Appointment/"
        f"{booking_b.emr_appointment_id} (B) written once for the same time."
    )

    assert_messages(
        a,
        Conversation.objects.get(clinic=clinic, patient_phone=a.phone),
        texts=a.received(),
        inbound=[*PATIENT_TEXTS, "cancel my appointment", "yes"],
    )
    assert len(a.received()) == 7 and a.received()[3] == link_a
    conversation_b = Conversation.objects.get(clinic=clinic, patient_phone=b.phone)
    assert conversation_b.booking_id == booking_b.pk and conversation_b.state == Conversation.State.CONFIRMED
    assert_messages(
        b,
        conversation_b,
        texts=b.received(),
        inbound=["How much is Botox?", "Yes, tomorrow afternoon", "yes", "yes", "Mary Major"],
    )
    assert len(b.received()) == 7
    a.assert_no_more_texts(seconds=5)
    b.assert_no_more_texts()
    e2e.assert_no_errors()
