"""One patient never ends up with two appointments by accident: asking for another time while booked is a move,
and a second appointment for the same treatment needs the patient's explicit yes. The invariant is the bookings
layer's (``booking_hold``), so no engine and no sequence of texts can break it."""

from datetime import datetime, timedelta

import pytest
import time_machine
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bookings.models import Booking
from bookings.services import AlreadyBooked, booking_hold
from conversation.tools import Tools
from emr.models import Provider
from medspa.models import Service

from .test_assistant import NOW, Patient, booked


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    with time_machine.travel(NOW, tick=False):
        yield Patient(django_capture_on_commit_callbacks, sms_outbox)


def book_botox(patient, when="thursday afternoon", pick="1"):
    patient.reply("i want botox")
    patient.reply(when)
    patient.reply(pick)
    if patient.conversation.state == "holding":
        patient.reply("jane doe")
    if patient.conversation.state == "awaiting_deposit":
        patient.pay()
    return booked(patient.phone).get(status="confirmed")


def confirmed(phone="+16175550123"):
    return Booking.objects.filter(patient_phone=phone, status__in=["confirmed", "awaiting_staff"])


def test_asking_for_another_time_while_booked_moves_the_appointment(patient):
    first = book_botox(patient)
    offer = patient.reply("actually make it tuesday after 3")
    assert "Here are open times for Botox" in offer
    moved = patient.reply("1")
    assert moved.startswith("Done! Your Botox is now") and "Your deposit carries over" in moved
    assert confirmed().count() == 1
    now_booked = confirmed().get()
    assert now_booked.rescheduled_from_id == first.pk and now_booked.deposit_cents == first.deposit_cents
    first.refresh_from_db()
    assert first.status == "cancelled"


def test_a_second_appointment_for_the_same_treatment_needs_an_explicit_yes(patient):
    book_botox(patient)
    offer = patient.reply("i'd like to book another botox appointment as well, next week")
    assert "Here are open times for Botox" in offer and patient.conversation.rescheduling_id is None
    done = patient.reply("2")  # a returning client: this service asks new clients only for a deposit
    assert done.startswith("You're all set: Botox on Tue Dec 1")  # next week: one time a day, 2 = Tuesday
    assert confirmed().count() == 2
    first, second = confirmed().order_by("start")
    assert first.service == second.service and second.start >= first.end


def test_a_pick_the_engine_offered_outside_a_reschedule_asks_move_or_another(patient, demo):
    book_botox(patient)
    conversation = patient.conversation
    tools = Tools(conversation, now=NOW)
    tools.choose_service(Service.objects.get(clinic=demo, name="Botox").pk)
    start = datetime(2026, 12, 1, 10, 0, tzinfo=demo.tz)
    tools.find_open_times(start=start, end=start + timedelta(days=1), label="on Tuesday")
    conversation.refresh_from_db()
    assert conversation.state == "offering" and conversation.rescheduling_id is None  # as another engine may leave it

    question = patient.reply("1")
    assert "You already have Botox on Thu Nov 26" in question and "Reply MOVE" in question and "ANOTHER" in question
    assert confirmed().count() == 1 and patient.conversation.pending_pick == 1
    moved = patient.reply("move it")
    assert moved.startswith("Done! Your Botox is now Tue Dec 1")
    assert confirmed().count() == 1 and confirmed().get().rescheduled_from_id is not None


def test_an_overlapping_time_is_refused_even_with_a_yes(demo):
    botox, hydra = (Service.objects.get(clinic=demo, name=n) for n in ("Botox", "HydraFacial"))
    smith, johnson = (Provider.objects.get(clinic=demo, name=n) for n in ("Dr. Sarah Smith", "Dr. Emily Johnson"))
    start = datetime(2026, 11, 24, 11, tzinfo=demo.tz)
    booking_hold(clinic=demo, service=botox, provider=smith, start=start, patient_phone="+16175550123", now=NOW)
    with pytest.raises(AlreadyBooked):  # another provider, another service, the same half hour
        booking_hold(
            clinic=demo,
            service=hydra,
            provider=johnson,
            start=start + timedelta(minutes=15),
            patient_phone="+16175550123",
            allow_another=True,
            now=NOW,
        )
    later = booking_hold(  # a different service at another time is simply a second appointment
        clinic=demo, service=hydra, provider=johnson, start=start + timedelta(hours=3), patient_phone="+16175550123",
        now=NOW,
    )  # fmt: skip
    assert later.status == "held"


# --- The invariant, over any sequence of texts ------------------------------------------------------------------

TEXTS = [
    "i want botox",
    "can i book botox",
    "how much is botox",
    "thursday afternoon",
    "tuesday after 3",
    "next week",
    "actually make it friday morning",
    "can i reschedule",
    "1",
    "2",
    "3",
    "yes",
    "no",
    "move it",
    "another one please",
    "jane doe",
    "cancel my appointment",
    "hydrafacial tuesday",
    "PAY",
]


def doubled(phone="+16175550123"):
    """Two of the patient's active bookings of one service, or at overlapping times, unless the patient said
    ANOTHER (or asked for another) before the later one was held."""
    active = list(Booking.objects.filter(patient_phone=phone).active().order_by("pk"))
    for i, a in enumerate(active):
        for b in active[i + 1 :]:
            if a.start < b.end and b.start < a.end:
                return (a, b)
            if a.service_id == b.service_id and not _said_another_before(b):
                return (a, b)
    return None


def _said_another_before(booking):
    from messaging.models import Message

    texts = Message.objects.filter(
        direction="inbound", from_number=booking.patient_phone, created_at__lte=booking.created_at
    )
    return any(w in m.body.lower() for m in texts for w in ("another", "second", "also", "as well"))


PHONES = iter(range(1000, 9999))
DAYS = ["thursday afternoon", "friday morning", "next monday", "next tuesday afternoon", "next wednesday",
        "next thursday morning", "next friday", "dec 7", "dec 8 afternoon", "dec 9"]  # fmt: skip


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(st.sampled_from(TEXTS), min_size=4, max_size=12))
def test_no_sequence_of_texts_leaves_a_patient_double_booked(demo, django_capture_on_commit_callbacks, steps):
    from messaging.backends import locmem

    phone = f"+1617555{next(PHONES):04d}"  # a new patient each time, on the same clinic and calendar
    with time_machine.travel(NOW, tick=False):
        patient = Patient(django_capture_on_commit_callbacks, locmem.outbox, phone=phone)
        patient.seen = len([m for m in locmem.outbox if m.to_number == phone])
        # Each example starts from a confirmed Botox on another day, so the examples do not fill one afternoon.
        n = next(PHONES)
        start_day = DAYS[n % len(DAYS)]
        patient.reply("i want botox")
        patient.reply(start_day)
        patient.reply(str(1 + n % 3))
        if patient.conversation.state == "holding":
            patient.reply("jane doe")
        if patient.conversation.state == "awaiting_deposit":
            patient.pay()
        assume(booked(phone).filter(status="confirmed").exists())
        for text in steps:
            if text == "PAY":
                payment = Booking.objects.filter(patient_phone=phone, status="awaiting_deposit").first()
                if payment is not None and payment.payment.status == "created":
                    patient.pay()
                continue
            patient.say(text)
            assert doubled(phone) is None, steps
