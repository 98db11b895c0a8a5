"""Texts after the booking (lifecycle): planned as rows when a booking is confirmed, moved or cancelled with it,
released by the sweep inside the sending window, never twice, never after STOP; the replies C / R / cancel; the
EMR's side (cancelled there, down); no-shows, completed visits, rebooking at the treatment interval, reviews.

Every test pins the clock (time-machine): the suite also runs with --clock 02:30."""

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bookings.models import Booking
from bookings.services import (
    BookingStateError,
    booking_cancel,
    booking_confirm,
    booking_confirmation_send,
    booking_hold,
    booking_mark,
    booking_reschedule,
)
from conversation.models import Conversation
from emr.models import Provider
from leads.models import Lead
from lifecycle.models import LifecycleSettings, ScheduledText
from lifecycle.services import emr_sync, reply_keyword, text_send, texts_sweep
from medspa.models import Service, StaffAlert
from messaging.compliance import MARKETING_CONSENT_LINE, consent_wording
from messaging.models import Message
from messaging.services import inbound_receive, optout_record
from payments.models import Payment

from .test_bookings import nextech_clinic
from .test_boulevard import ITEM_ID, LOCATION_ID, MON_14, STAFF_ID, STAFF_VARIANT_ID, make_client, request_for

pytest_plugins = ["tests.fakes.nextech", "tests.fakes.boulevard"]

BOSTON = ZoneInfo("America/New_York")
PHONE, NAME, CLINIC_NUMBER = "+16175550123", "Jane Doe", "+15555550100"
Kind, State = ScheduledText.Kind, ScheduledText.State


def local(*args) -> datetime:
    return datetime(*args, tzinfo=BOSTON)


@pytest.fixture
def at(django_capture_on_commit_callbacks):
    """Run beat's sweep at ``moment`` (the clock stopped there), the after-commit sends included."""

    def run(moment):
        with time_machine.travel(moment, tick=False), django_capture_on_commit_callbacks(execute=True):
            return texts_sweep()

    return run


def book(clinic, start, *, booked_at, service="Botox", phone=PHONE, conversation=None, language="en"):
    """A confirmed booking made at ``booked_at`` (its confirmation text publishes the change lifecycle follows)."""
    with time_machine.travel(booked_at, tick=False):
        held = booking_hold(
            clinic=clinic,
            service=Service.objects.get(clinic=clinic, name=service),
            provider=Provider.objects.get(clinic=clinic, name="Dr. Sarah Smith"),
            start=start,
            patient_phone=phone,
            patient_name=NAME,
            conversation=conversation,
            language=language,
        )
        booking = booking_confirm(booking_id=held.pk)
        booking_confirmation_send(booking_id=booking.pk)
    return booking


def texts(booking) -> dict:
    return {t.kind: t for t in ScheduledText.objects.filter(booking=booking)}


def sent_to(outbox, phone=PHONE) -> list[str]:
    return [m.body for m in outbox if m.to_number == phone]


# --- Planning: the confirmation request and the reminder ----------------------------------------------------------


def test_a_confirmed_booking_gets_its_confirmation_request_48h_before_and_a_reminder_2h_before(demo):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    planned = texts(booking)
    assert planned[Kind.CONFIRMATION].send_at == local(2026, 11, 25, 11, 0)
    assert planned[Kind.REMINDER].send_at == local(2026, 11, 27, 9, 0)
    assert planned[Kind.CONFIRMATION].why == f"48 h before booking #{booking.pk}"
    assert planned[Kind.REMINDER].why == f"120 min before booking #{booking.pk}"
    assert {t.state for t in planned.values()} == {State.PENDING}


def test_a_booking_made_inside_48h_gets_its_confirmation_request_the_next_morning(demo):
    booking = book(demo, local(2026, 11, 25, 15, 0), booked_at=local(2026, 11, 23, 20, 30))
    planned = texts(booking)
    assert planned[Kind.CONFIRMATION].send_at == local(2026, 11, 24, 9, 0)
    assert "the next morning" in planned[Kind.CONFIRMATION].why


def test_a_booking_for_tomorrow_morning_gets_the_reminder_only(demo):
    booking = book(demo, local(2026, 11, 24, 10, 0), booked_at=local(2026, 11, 23, 16, 0))
    planned = texts(booking)
    assert set(planned) == {Kind.REMINDER}


def test_the_confirmation_lead_is_counted_on_the_wall_clock_across_dst(demo):
    # DST ends Sunday Nov 1 2026: 48 h before Monday 11:00 EST is Saturday 11:00 EDT (one hour more elapses).
    booking = book(demo, local(2026, 11, 2, 11, 0), booked_at=local(2026, 10, 26, 12, 0))
    confirmation = texts(booking)[Kind.CONFIRMATION]
    assert confirmation.send_at == datetime(2026, 10, 31, 15, 0, tzinfo=UTC)  # 11:00 EDT
    assert booking.start == datetime(2026, 11, 2, 16, 0, tzinfo=UTC)  # 11:00 EST


@pytest.mark.parametrize(
    ("visit", "expected_utc", "zone"),
    [
        (local(2026, 11, 2, 9, 30), datetime(2026, 11, 2, 13, 0, tzinfo=UTC), "ET"),  # the day after DST ended
        (local(2027, 3, 15, 9, 30), datetime(2027, 3, 15, 12, 0, tzinfo=UTC), "ET"),  # the day after it began
    ],
)
def test_a_reminder_due_at_730_waits_for_the_window_and_goes_at_8(demo, at, sms_outbox, visit, expected_utc, zone):
    booking = book(demo, visit, booked_at=visit - timedelta(days=1, hours=3))
    reminder = texts(booking)[Kind.REMINDER]
    assert reminder.due_at.astimezone(BOSTON).strftime("%H:%M") == "07:30"
    assert reminder.send_at == expected_utc
    at(expected_utc - timedelta(minutes=1))
    assert sent_to(sms_outbox) == []
    at(expected_utc)
    (body,) = [b for b in sent_to(sms_outbox) if "see you today" in b]
    assert f"at 9:30 AM ({zone}) for your Botox with Dr. Sarah Smith" in body
    assert "120 Newbury Street" in body
    reminder.refresh_from_db()
    assert reminder.state == State.SENT and reminder.message.kind == Message.Kind.NOTICE


def test_each_text_can_be_turned_off_per_clinic(demo):
    LifecycleSettings.objects.create(clinic=demo, confirmation_on=False, reminder_on=False)
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    assert texts(booking) == {}


def test_a_template_with_an_unknown_placeholder_is_refused(demo):
    from django.core.exceptions import ValidationError

    row = LifecycleSettings(clinic=demo, reminder_template="Hi {patient_name}!")
    with pytest.raises(ValidationError, match="Unknown placeholders"):
        row.full_clean()


# --- Cancel, move, STOP, never twice -------------------------------------------------------------------------------


def test_cancelling_a_booking_cancels_its_pending_texts_in_the_same_transaction(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        booking_cancel(booking_id=booking.pk, by="staff")
    assert {t.state for t in texts(booking).values()} == {State.CANCELLED}
    at(local(2026, 11, 27, 9, 0))
    assert sent_to(sms_outbox) == []


def test_a_rescheduled_booking_takes_its_pending_texts_to_the_new_time(demo):
    old = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 23, 13, 0), tick=False):
        new = booking_hold(
            clinic=demo,
            service=old.service,
            provider=old.provider,
            start=local(2026, 12, 4, 14, 0),
            patient_phone=PHONE,
            patient_name=NAME,
            replacing=old,
        )
        moved = booking_reschedule(booking_id=old.pk, new_booking_id=new.pk)
    assert texts(old) == {}
    planned = texts(moved)
    assert planned[Kind.REMINDER].send_at == local(2026, 12, 4, 12, 0)
    assert planned[Kind.CONFIRMATION].send_at == local(2026, 12, 2, 14, 0)
    assert {t.state for t in planned.values()} == {State.PENDING}


def test_a_manual_emr_reschedule_plans_the_new_times_texts_once_staff_confirm_it(demo):
    from bookings.services import booking_staff_confirm
    from emr.models import EmrConfig

    from .conftest import make_staff

    EmrConfig.objects.filter(clinic=demo).update(kind=EmrConfig.Kind.MANUAL)
    staff = make_staff("frontdesk", demo)
    with time_machine.travel(local(2026, 11, 23, 12, 0), tick=False):
        held = booking_hold(
            clinic=demo,
            service=Service.objects.get(clinic=demo, name="Botox"),
            provider=Provider.objects.get(clinic=demo, name="Dr. Sarah Smith"),
            start=local(2026, 11, 27, 11, 0),
            patient_phone=PHONE,
        )
        booking_confirm(booking_id=held.pk)
        old = booking_staff_confirm(booking_id=held.pk, user=staff)
        booking_confirmation_send(booking_id=old.pk)
        assert set(texts(old)) == {Kind.CONFIRMATION, Kind.REMINDER}
        new = booking_hold(
            clinic=demo,
            service=old.service,
            provider=old.provider,
            start=local(2026, 12, 4, 14, 0),
            patient_phone=PHONE,
            replacing=old,
        )
        new = booking_reschedule(booking_id=old.pk, new_booking_id=new.pk)
        assert new.status == Booking.Status.AWAITING_STAFF and texts(new) == {}
        assert {t.state for t in texts(old).values()} == {State.CANCELLED}
        booking_staff_confirm(booking_id=new.pk, user=staff)
        booking_confirmation_send(booking_id=new.pk)
    assert texts(new)[Kind.REMINDER].send_at == local(2026, 12, 4, 12, 0)


def test_stop_between_booking_and_reminder_means_nothing_goes(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        optout_record(clinic=demo, phone=PHONE, source="keyword")
    at(local(2026, 11, 25, 11, 0))
    at(local(2026, 11, 27, 9, 0))
    assert sent_to(sms_outbox) == []
    planned = texts(booking)
    assert {t.state for t in planned.values()} == {State.SKIPPED}
    assert planned[Kind.REMINDER].outcome == "the patient opted out (STOP)"
    assert planned[Kind.REMINDER].message.status == Message.Status.DROPPED  # recorded, not sent


def test_a_text_is_sent_once_however_often_it_is_released(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    confirmation = texts(booking)[Kind.CONFIRMATION]
    assert at(local(2026, 11, 25, 11, 0)) == [confirmation.pk]
    assert at(local(2026, 11, 25, 11, 1)) == []
    with time_machine.travel(local(2026, 11, 25, 11, 2), tick=False):
        assert text_send(text_id=confirmation.pk) == "claimed"
    assert len(sent_to(sms_outbox)) == 1
    assert Message.objects.filter(idempotency_key__startswith=f"lifecycle-{confirmation.pk}#").count() == 1


def test_a_text_whose_worker_died_is_taken_again_from_its_row(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    confirmation = texts(booking)[Kind.CONFIRMATION]
    ScheduledText.objects.filter(pk=confirmation.pk).update(state=State.SENDING, claimed_at=local(2026, 11, 25, 11))
    assert at(local(2026, 11, 25, 11, 2)) == []  # still within its lease
    assert at(local(2026, 11, 25, 11, 6)) == [confirmation.pk]
    assert len(sent_to(sms_outbox)) == 1


def test_a_text_handed_to_messaging_before_its_worker_died_is_not_rendered_or_sent_again(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    confirmation = texts(booking)[Kind.CONFIRMATION]
    at(local(2026, 11, 25, 11, 0))
    ScheduledText.objects.filter(pk=confirmation.pk).update(state=State.SENDING, claimed_at=local(2026, 11, 25, 11))
    assert at(local(2026, 11, 25, 11, 6)) == [confirmation.pk]
    confirmation.refresh_from_db()
    assert confirmation.state == State.SENT and len(sent_to(sms_outbox)) == 1


# --- Replies: C, R, cancel, anything else --------------------------------------------------------------------------


class Patient:
    def __init__(self, capture, outbox):
        self.capture, self.outbox, self.seen = capture, outbox, 0

    def say(self, text, moment):
        with time_machine.travel(moment, tick=False), self.capture(execute=True):
            inbound_receive(
                provider="telnyx",
                provider_message_id=str(uuid.uuid4()),
                from_number=PHONE,
                to_number=CLINIC_NUMBER,
                body=text,
            )
        mine = sent_to(self.outbox)
        new, self.seen = mine[self.seen :], len(mine)
        return new

    def catch_up(self):
        self.seen = len(sent_to(self.outbox))


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    return Patient(django_capture_on_commit_callbacks, sms_outbox)


@pytest.fixture
def asked(demo, at, patient):
    """A booking whose confirmation request went out on Wednesday Nov 25 at 11:00."""
    conversation = Conversation.objects.create(clinic=demo, patient_phone=PHONE, origin="inbound_text")
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0), conversation=conversation)
    at(local(2026, 11, 25, 11, 0))
    (request,) = [b for b in sent_to(patient.outbox) if "Reply C to confirm" in b]
    assert "Fri Nov 27 at 11:00 AM (ET)" in request
    patient.catch_up()
    return booking


@pytest.mark.parametrize("reply", ["C", "yes", "Confirm", "c."])
def test_c_yes_or_confirm_marks_the_booking_patient_confirmed(asked, patient, reply):
    (answer,) = patient.say(reply, local(2026, 11, 25, 12, 0))
    assert answer.startswith("Thanks, you're confirmed: Botox on Fri Nov 27 at 11:00 AM (ET)")
    asked.refresh_from_db()
    assert asked.patient_confirmed_at == local(2026, 11, 25, 12, 0) and asked.status == Booking.Status.CONFIRMED


@pytest.mark.parametrize("reply", ["R", "reschedule"])
def test_r_or_reschedule_starts_the_assistants_reschedule(asked, patient, reply):
    (answer,) = patient.say(reply, local(2026, 11, 25, 12, 0))
    assert "Your Botox is on Fri Nov 27" in answer and "What day and time would work better" in answer
    assert Conversation.objects.get(patient_phone=PHONE).rescheduling_id == asked.pk


def test_cancel_follows_the_policy_with_its_confirmation_step(asked, patient):
    (question,) = patient.say("cancel appointment", local(2026, 11, 25, 12, 0))
    assert question.startswith("Reply YES to cancel your Botox on Fri Nov 27")
    assert Booking.objects.get(pk=asked.pk).status == Booking.Status.CONFIRMED  # nothing before the YES
    (done,) = patient.say("yes", local(2026, 11, 25, 12, 1))
    assert "is cancelled" in done
    assert Booking.objects.get(pk=asked.pk).status == Booking.Status.CANCELLED
    assert texts(asked)[Kind.REMINDER].state == State.CANCELLED


def test_cancel_alone_stays_an_opt_out_for_compliance(asked, patient):
    patient.say("CANCEL", local(2026, 11, 25, 12, 0))
    assert Conversation.objects.get(patient_phone=PHONE).state == Conversation.State.OPTED_OUT
    assert Booking.objects.get(pk=asked.pk).patient_confirmed_at is None


def test_anything_else_goes_to_the_assistant_with_the_booking_as_context(asked, patient):
    (answer,) = patient.say("is my appointment still on?", local(2026, 11, 25, 12, 0))
    assert "your Botox is on Fri Nov 27" in answer
    assert Booking.objects.get(pk=asked.pk).patient_confirmed_at is None


def test_c_without_a_confirmation_request_is_not_a_confirmation(demo, patient):
    book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    patient.say("C", local(2026, 11, 23, 12, 5))
    assert Booking.objects.get(patient_phone=PHONE).patient_confirmed_at is None


def test_reply_keywords():
    assert [reply_keyword(t) for t in ["C", "yes!", "R", "Reschedule", "cancel my appt", "what about parking?"]] == [
        "confirm",
        "confirm",
        "reschedule",
        "reschedule",
        "cancel",
        None,
    ]


# --- A booking made in Spanish: its texts and the replies to them in Spanish ---------------------------------------


def _gsm7_safe(text):
    return not set("áíóú¿¡ÁÍÓÚ") & set(text)


@pytest.fixture
def asked_es(demo, at, patient):
    """A booking made in Spanish whose confirmation request went out on Wednesday Nov 25 at 11:00."""
    conversation = Conversation.objects.create(clinic=demo, patient_phone=PHONE, origin="inbound_text", language="es")
    booking = book(
        demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0), conversation=conversation, language="es"
    )
    at(local(2026, 11, 25, 11, 0))
    (request,) = [b for b in sent_to(patient.outbox) if "Responda C" in b]
    assert request == (
        "Glow Demo Med Spa: su cita de Botox con Dr. Sarah Smith es el vie 27 nov, 11:00 AM ET. Responda C para "
        "confirmarla o R para cambiarla. Para cancelar, responda 'cancelar cita'."
    )
    patient.catch_up()
    return booking


def test_a_spanish_bookings_confirmation_request_and_reminder_are_in_spanish(asked_es, at, patient):
    LifecycleSettings.objects.create(clinic=asked_es.clinic, parking_line="Parking: the Clarendon St garage.")
    at(local(2026, 11, 27, 9, 0))
    reminder = sent_to(patient.outbox)[-1]
    assert reminder == (
        "Glow Demo Med Spa: lo esperamos hoy a las 11:00 AM (ET) para su cita de Botox con Dr. Sarah Smith, 120 "
        "Newbury Street, Suite 300, Boston. Parking: the Clarendon St garage. Responda R para cambiarla."
    )
    assert _gsm7_safe(reminder)


@pytest.mark.parametrize("reply", ["C", "confirmo", "Sí", "si.", "Confirmo la cita"])
def test_confirmo_c_or_si_confirms_a_spanish_booking_in_spanish(asked_es, patient, reply):
    (answer,) = patient.say(reply, local(2026, 11, 25, 12, 0))
    assert answer == "Gracias, su cita esta confirmada: Botox el vie 27 nov, 11:00 AM ET. Lo esperamos."
    asked_es.refresh_from_db()
    assert asked_es.patient_confirmed_at == local(2026, 11, 25, 12, 0)


@pytest.mark.parametrize("reply", ["R", "cambiar", "Cambiar la cita"])
def test_r_or_cambiar_starts_the_reschedule_in_spanish(asked_es, patient, reply):
    (answer,) = patient.say(reply, local(2026, 11, 25, 12, 0))
    assert answer == "Claro. Su cita de Botox es el vie 27 nov, 11:00 AM ET. Qué dia y hora le convienen mas?"
    assert Conversation.objects.get(patient_phone=PHONE).rescheduling_id == asked_es.pk
    offer = patient.say("el martes por la mañana", local(2026, 11, 25, 12, 1))
    assert offer and offer[0].startswith("Estos son los horarios disponibles para Botox:")


def test_cancelar_mi_cita_asks_for_si_in_spanish_and_cancels(asked_es, patient):
    (question,) = patient.say("cancelar mi cita", local(2026, 11, 25, 12, 0))
    assert question.startswith("Responda SI para cancelar su cita de Botox del vie 27 nov, 11:00 AM ET")
    assert Booking.objects.get(pk=asked_es.pk).status == Booking.Status.CONFIRMED
    (done,) = patient.say("sí", local(2026, 11, 25, 12, 1))
    assert "cancelada" in done
    assert Booking.objects.get(pk=asked_es.pk).status == Booking.Status.CANCELLED


def test_alto_after_a_spanish_reminder_opts_out_as_stop_does(asked_es, patient):
    (confirmation,) = patient.say("ALTO", local(2026, 11, 25, 12, 0))
    assert "Se ha dado de baja" in confirmation
    assert Booking.objects.get(pk=asked_es.pk).patient_confirmed_at is None


def test_an_english_booking_of_a_spanish_speaking_clinic_stays_english(asked, patient):
    assert asked.language == "en"
    (answer,) = patient.say("C", local(2026, 11, 25, 12, 0))
    assert answer.startswith("Thanks, you're confirmed: Botox on Fri Nov 27 at 11:00 AM (ET)")


def test_a_clinic_with_spanish_off_texts_a_spanish_booking_in_english(demo, at, sms_outbox):
    demo.spanish = False
    demo.save(update_fields=["spanish"])
    booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0), language="es")
    at(local(2026, 11, 25, 11, 0))
    (request,) = sent_to(sms_outbox)
    assert "Reply C to confirm" in request and booking.language == "es"


def test_an_english_template_with_a_stop_line_keeps_it_in_spanish(demo, at, sms_outbox):
    LifecycleSettings.objects.create(
        clinic=demo,
        confirmation_template="{clinic}: your {service} is {when} ({zone}). Reply C to confirm. Reply STOP to opt out.",
    )
    book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0), language="es")
    at(local(2026, 11, 25, 11, 0))
    (request,) = sent_to(sms_outbox)
    assert request.startswith("Glow Demo Med Spa: su cita de Botox") and request.endswith(
        "Responda ALTO para darse de baja."
    )


def test_a_spanish_no_show_text_rebooking_and_review_request(demo, at, sms_outbox):
    LifecycleSettings.objects.create(clinic=demo, review_url="https://g.page/r/glow/review")
    missed = book(demo, local(2026, 11, 24, 15, 0), booked_at=local(2026, 11, 23, 12, 0), language="es")
    with time_machine.travel(local(2026, 11, 24, 16, 0), tick=False):
        booking_mark(booking_id=missed.pk, outcome="no_show")
    at(local(2026, 11, 25, 9, 0))
    assert sent_to(sms_outbox)[-1] == (
        "Glow Demo Med Spa: lo extrañamos ayer en su cita de Botox. Esperamos que todo esté bien. Si desea elegir "
        "un nuevo horario, responda a este mensaje."
    )

    _consented_lead(demo)
    seen = book(demo, local(2026, 11, 26, 11, 0), booked_at=local(2026, 11, 25, 12, 0), language="es")
    with time_machine.travel(local(2026, 11, 26, 12, 0), tick=False):
        booking_mark(booking_id=seen.pk, outcome="completed")
    at(local(2026, 11, 26, 14, 0))
    assert sent_to(sms_outbox)[-1] == (
        "Glow Demo Med Spa: gracias por visitarnos para su cita de Botox. Si tiene un minuto, una reseña nos ayuda "
        "mucho: https://g.page/r/glow/review"
    )
    at(local(2027, 2, 24, 9, 0))
    nudge = sent_to(sms_outbox)[-1]
    assert nudge.startswith("Glow Demo Med Spa: ya es tiempo de su proxima cita de Botox. Horarios disponibles: 1) ")
    assert "; 2) " in nudge and "; 3) " in nudge and " (ET). Responda 1, 2 o 3 para reservar uno" in nudge
    assert all(_gsm7_safe(b) for b in sent_to(sms_outbox))


def test_spanish_reply_keywords():
    replies = ["confirmo", "Sí!", "cambiar", "reprogramar", "cancelar mi cita", "quiero cancelarla", "donde estan?"]
    assert [reply_keyword(t) for t in replies] == [
        "confirm",
        "confirm",
        "reschedule",
        "reschedule",
        "cancel",
        "cancel",
        None,
    ]


# --- The EMR's side -----------------------------------------------------------------------------------------------


def test_an_appointment_cancelled_in_nextech_gets_no_reminder_and_is_cancelled_here(demo, fake_nextech, at, sms_outbox):
    nextech_clinic(demo, fake_nextech)
    booking = book(demo, local(2026, 11, 24, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    assert booking.emr_appointment_id and Kind.REMINDER in texts(booking)
    fake_nextech.appointments[booking.emr_appointment_id]["status"] = "cancelled"  # the front desk, in Nextech
    at(local(2026, 11, 24, 8, 0))
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert texts(booking)[Kind.REMINDER].state in (State.CANCELLED, State.SKIPPED)
    assert sent_to(sms_outbox) == []


def test_nextech_down_at_reminder_time_the_reminder_still_goes_and_staff_see_it(demo, fake_nextech, at, sms_outbox):
    nextech_clinic(demo, fake_nextech)
    booking = book(demo, local(2026, 11, 24, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    fake_nextech.failing = [5, 503]
    at(local(2026, 11, 24, 8, 0))
    (body,) = sent_to(sms_outbox)
    assert "see you today at 10:00 AM (ET)" in body
    reminder = texts(booking)[Kind.REMINDER]
    assert reminder.state == State.SENT and "the EMR could not be read" in reminder.outcome
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.EMR_ERROR)
    assert f"Booking #{booking.pk}" in alert.text and PHONE not in alert.text


def test_the_periodic_sync_follows_a_move_made_in_nextech(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    booking = book(demo, local(2026, 11, 25, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    fake_nextech.appointments[booking.emr_appointment_id]["start"] = "2026-11-25T11:00:00-05:00"
    with time_machine.travel(local(2026, 11, 23, 9, 0), tick=False):
        assert emr_sync() == {"moved": 1}
    booking.refresh_from_db()
    assert booking.start == local(2026, 11, 25, 11, 0)
    assert texts(booking)[Kind.REMINDER].send_at == local(2026, 11, 25, 9, 0)


def test_the_periodic_sync_with_nextech_down_tells_staff(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    book(demo, local(2026, 11, 25, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    fake_nextech.failing = [5, 503]
    with time_machine.travel(local(2026, 11, 23, 9, 0), tick=False):
        assert emr_sync() == {"failed": 1}
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.EMR_ERROR, text__contains="coming bookings").exists()


def test_the_periodic_sync_reads_a_no_show_recorded_in_nextech_after_the_visit(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    booking = book(demo, local(2026, 11, 24, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    fake_nextech.appointments[booking.emr_appointment_id]["status"] = "noshow"
    with time_machine.travel(local(2026, 11, 24, 17, 0), tick=False):
        assert emr_sync() == {"no_show": 1}
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.NO_SHOW
    assert texts(booking)[Kind.NO_SHOW].send_at == local(2026, 11, 25, 9, 0)


def test_the_periodic_sync_plans_the_texts_of_a_booking_confirmed_before_they_existed(demo):
    booking = book(demo, local(2026, 11, 25, 15, 0), booked_at=local(2026, 11, 23, 12, 0))
    ScheduledText.objects.filter(booking=booking).delete()
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        assert emr_sync() == {"not_read": 1}
        assert emr_sync() == {"not_read": 1}
    planned = texts(booking)
    assert planned[Kind.REMINDER].send_at == local(2026, 11, 25, 13, 0)
    assert planned[Kind.CONFIRMATION].send_at == local(2026, 11, 25, 9, 0)  # the next morning
    assert ScheduledText.objects.filter(booking=booking).count() == 2


def test_each_emr_reads_an_appointments_state(demo, fake_nextech, fake_boulevard):
    from emr.base import EmrError
    from emr.services import emr_client

    assert emr_client(clinic=demo).appointment_status("builtin-1") is None  # the booking row is the appointment

    nextech_clinic(demo, fake_nextech)
    booking = book(demo, local(2026, 11, 24, 10, 0), booked_at=local(2026, 11, 23, 7, 0))
    read = emr_client(clinic=demo).appointment_status(booking.emr_appointment_id)
    assert read.status == "proposed" and read.start == booking.start

    fake_boulevard.location_id = LOCATION_ID
    fake_boulevard.items = {
        ITEM_ID: {"duration": 30, "variants": {STAFF_VARIANT_ID: {"staff": STAFF_ID, "duration": 45}}}
    }
    fake_boulevard.schedule = [MON_14]
    blvd = make_client(fake_boulevard, [])
    appointment = blvd.create_appointment(request_for(MON_14))
    assert blvd.appointment_status(appointment.emr_appointment_id).start == MON_14
    blvd.cancel_appointment(appointment.emr_appointment_id)
    assert blvd.appointment_status(appointment.emr_appointment_id).status == "cancelled"
    with pytest.raises(EmrError):
        blvd.appointment_status("urn:blvd:Appointment:missing")


# --- After the visit: no-show, completed, rebooking, review -----------------------------------------------------


def _paid(booking):
    return Payment.objects.create(
        clinic=booking.clinic,
        booking=booking,
        provider="sandbox",
        amount_cents=5000,
        status=Payment.Status.PAID,
        paid_cents=5000,
        idempotency_key=f"test-{booking.pk}",
    )


def test_a_no_show_keeps_the_deposit_and_gets_one_kind_text_the_next_morning(demo, at, sms_outbox):
    booking = book(demo, local(2026, 11, 24, 15, 0), booked_at=local(2026, 11, 23, 12, 0))
    payment = _paid(booking)
    with time_machine.travel(local(2026, 11, 24, 16, 0), tick=False):
        booking_mark(booking_id=booking.pk, outcome="no_show")
    payment.refresh_from_db()
    assert payment.kept_at == local(2026, 11, 24, 16, 0) and "No-show" in payment.kept_reason
    assert payment.status == Payment.Status.PAID  # kept, not refunded
    no_show = texts(booking)[Kind.NO_SHOW]
    assert no_show.send_at == local(2026, 11, 25, 9, 0)
    at(local(2026, 11, 25, 9, 0))
    at(local(2026, 11, 25, 9, 5))
    assert [b for b in sent_to(sms_outbox) if "we missed you" in b] == [
        "Glow Demo Med Spa: we missed you yesterday for your Botox. We hope all is well! Reply here if you'd like to "
        "pick a new time."
    ]


def test_a_visit_cannot_be_marked_before_it_starts(demo):
    booking = book(demo, local(2026, 11, 24, 15, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 14, 0), tick=False), pytest.raises(BookingStateError):
        booking_mark(booking_id=booking.pk, outcome="completed")


def test_staff_mark_visits_in_the_admin(client, demo, django_capture_on_commit_callbacks):
    from .conftest import make_staff

    booking = book(demo, local(2026, 11, 24, 15, 0), booked_at=local(2026, 11, 23, 12, 0))
    client.force_login(make_staff("frontdesk", demo))
    with time_machine.travel(local(2026, 11, 24, 16, 0), tick=False):
        response = client.post(
            "/admin/bookings/booking/", {"action": "mark_completed", "_selected_action": [booking.pk]}
        )
        assert response.status_code == 302
        page = client.get(f"/admin/bookings/booking/{booking.pk}/change/")
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.COMPLETED
    assert b"texts after booking (past and pending)" in page.content.lower()


def _consented_lead(clinic):
    return Lead.objects.create(
        clinic=clinic,
        name=NAME,
        phone=PHONE,
        source="web_form",
        sms_consent=True,
        consent_text=consent_wording(clinic),
        consent_at=local(2026, 8, 1, 12, 0),
    )


def test_a_completed_botox_visit_offers_the_soonest_three_times_90_days_later(demo, at, sms_outbox, patient):
    _consented_lead(demo)
    booking = book(demo, local(2026, 11, 24, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        booking_mark(booking_id=booking.pk, outcome="completed")
    rebook = texts(booking)[Kind.REBOOK]
    assert rebook.send_at == local(2027, 2, 22, 9, 0) and "rebook after 90 days" in rebook.why
    at(local(2027, 2, 22, 9, 0))
    (nudge,) = [b for b in sent_to(sms_outbox) if "time for your next Botox" in b]
    assert "1) " in nudge and "2) " in nudge and "3) " in nudge and "(ET)" in nudge
    conversation = Conversation.objects.get(patient_phone=PHONE)
    assert conversation.state == Conversation.State.OFFERING and len(conversation.offered_slots) == 3
    at(local(2027, 2, 22, 9, 5))
    assert len([b for b in sent_to(sms_outbox) if "time for your next Botox" in b]) == 1  # once per visit


def test_no_rebooking_text_without_written_consent_or_with_a_botox_already_booked(demo, at, sms_outbox):
    first = book(demo, local(2026, 11, 24, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        booking_mark(booking_id=first.pk, outcome="completed")
    at(local(2027, 2, 22, 9, 0))
    assert "no written consent" in texts(first)[Kind.REBOOK].outcome

    _consented_lead(demo)
    second = book(demo, local(2027, 2, 23, 11, 0), booked_at=local(2027, 2, 20, 12, 0), phone="+16175550199")
    with time_machine.travel(local(2027, 2, 23, 12, 0), tick=False):
        booking_mark(booking_id=second.pk, outcome="completed")
    book(demo, local(2027, 5, 30, 11, 0), booked_at=local(2027, 5, 1, 12, 0), phone="+16175550199")
    at(local(2027, 5, 24, 9, 0))
    assert "already has an upcoming Botox" in texts(second)[Kind.REBOOK].outcome
    assert not [b for b in sent_to(sms_outbox, "+16175550199") if "time for your next" in b]


def test_the_consent_wording_names_treatment_due_texts():
    from medspa.models import Clinic

    assert MARKETING_CONSENT_LINE in consent_wording(Clinic(name="Glow"))


def test_a_completed_visit_gets_one_review_request_inside_the_window(demo, at, sms_outbox):
    LifecycleSettings.objects.create(clinic=demo, review_url="https://g.page/r/glow/review", review_delay_hours=3)
    booking = book(demo, local(2026, 11, 24, 18, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 19, 0), tick=False):
        booking_mark(booking_id=booking.pk, outcome="completed")
    review = texts(booking)[Kind.REVIEW]
    assert review.due_at == local(2026, 11, 24, 21, 30) and review.send_at == local(2026, 11, 25, 8, 0)
    at(local(2026, 11, 25, 8, 0))
    at(local(2026, 11, 25, 8, 30))
    with time_machine.travel(local(2026, 11, 25, 9, 0), tick=False):
        booking_mark(booking_id=booking.pk, outcome="completed")  # marked again: nothing more
    reviews = [b for b in sent_to(sms_outbox) if "https://g.page/r/glow/review" in b]
    assert len(reviews) == 1


def test_no_review_request_after_a_no_show_or_a_conversation_handed_to_staff(demo, at, sms_outbox):
    LifecycleSettings.objects.create(clinic=demo, review_url="https://g.page/r/glow/review")
    missed = book(demo, local(2026, 11, 24, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
    with time_machine.travel(local(2026, 11, 24, 12, 0), tick=False):
        booking_mark(booking_id=missed.pk, outcome="no_show")
    assert Kind.REVIEW not in texts(missed)

    Conversation.objects.create(clinic=demo, patient_phone=PHONE, origin="inbound_text", state="handed_off")
    seen = book(demo, local(2026, 11, 26, 11, 0), booked_at=local(2026, 11, 25, 12, 0))
    with time_machine.travel(local(2026, 11, 26, 12, 0), tick=False):
        booking_mark(booking_id=seen.pk, outcome="completed")
    at(local(2026, 11, 26, 14, 0))
    assert texts(seen)[Kind.REVIEW].state == State.SKIPPED
    assert not [b for b in sent_to(sms_outbox) if "review" in b]


# --- The controllable clock (the e2e stack moves time with it) ------------------------------------------------------


def test_the_controllable_clock_moves_the_sweep_and_is_refused_in_production(demo, settings, sms_outbox):
    from medspa.checks import insecure_defaults
    from medspa.clock import clock_move_to, clock_reset
    from medspa.clock import now as clock_now

    with time_machine.travel(local(2026, 11, 23, 12, 0), tick=False):
        booking = book(demo, local(2026, 11, 27, 11, 0), booked_at=local(2026, 11, 23, 12, 0))
        with pytest.raises(RuntimeError):
            clock_move_to(local(2026, 11, 25, 11, 0))
        settings.CONTROLLABLE_CLOCK = True
        clock_move_to(local(2026, 11, 25, 11, 0))
        assert clock_now() == local(2026, 11, 25, 11, 0)
        assert texts_sweep() == [texts(booking)[Kind.CONFIRMATION].pk]
        clock_reset()
        assert clock_now() == local(2026, 11, 23, 12, 0)
    settings.DEBUG = False
    assert "medspa.E007" in [e.id for e in insecure_defaults(None)]
