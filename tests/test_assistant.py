"""Scripted patient conversations on the rules engine, through the real pipeline: inbound texts (compliance first),
the assistant and its tools, bookings on the demo clinic's built-in calendar, sandbox deposits, outbound texts.
Written the way people text: lower case, typos, several short messages, changing their mind."""

import uuid
from datetime import UTC, datetime

import pytest
import time_machine

from bookings.models import Booking
from conversation.models import Conversation, Turn
from medspa.models import StaffAlert
from messaging.services import inbound_receive, missed_call_receive
from payments.models import Payment
from payments.services import sandbox_pay

NOW = datetime(2026, 11, 23, 15, 15, tzinfo=UTC)  # Monday 10:15 in Boston
CLINIC_NUMBER = "+15555550100"


class Patient:
    """A patient texting the demo clinic; ``say`` returns the clinic's texts that followed."""

    def __init__(self, capture, outbox, phone="+16175550123"):
        self.capture, self.outbox, self.phone, self.seen = capture, outbox, phone, 0

    def _new(self):
        mine = [m for m in self.outbox if m.to_number == self.phone]
        new, self.seen = mine[self.seen :], len(mine)
        return [m.body for m in new]

    def say(self, *texts):
        for text in texts:
            with self.capture(execute=True):
                inbound_receive(
                    provider="telnyx",
                    provider_message_id=str(uuid.uuid4()),
                    from_number=self.phone,
                    to_number=CLINIC_NUMBER,
                    body=text,
                )
        return self._new()

    def reply(self, text) -> str:
        replies = self.say(text)
        assert len(replies) == 1, replies
        return replies[0]

    def miss_call(self):
        with self.capture(execute=True):
            missed_call_receive(to_number=CLINIC_NUMBER, from_number=self.phone)
        return self._new()

    def pay(self):
        payment = Payment.objects.filter(booking__patient_phone=self.phone, status="created").latest("pk")
        with self.capture(execute=True):
            sandbox_pay(payment=payment)
        return self._new()

    @property
    def conversation(self):
        return Conversation.objects.get(patient_phone=self.phone)


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    with time_machine.travel(NOW, tick=False):
        yield Patient(django_capture_on_commit_callbacks, sms_outbox)


def booked(phone="+16175550123"):
    return Booking.objects.filter(patient_phone=phone).exclude(status__in=["cancelled", "expired", "failed"])


# --- The flow that must always work ---------------------------------------------------------------------------


def test_missed_call_to_confirmed_botox(patient):
    (intro,) = patient.miss_call()
    assert "Sorry we missed you" in intro
    price = patient.reply("how much is botox?")
    assert "$12 per unit" in price and "$240-$360" in price
    offer = patient.reply("can i come in thursday afternoon")
    assert "1. Thu Nov 26, 12:00 PM ET" in offer and "2." in offer and "3." in offer
    assert patient.conversation.state == "offering"
    ask_name = patient.reply("2")
    assert "What name" in ask_name
    link = patient.reply("jane doe")
    assert "$50 deposit" in link and "/pay/" in link and "holding Botox on Thu Nov 26" in link
    assert patient.conversation.state == "awaiting_deposit"
    (confirmation,) = patient.pay()
    assert confirmation.startswith("You're booked: Botox with") and "Thu Nov 26, 1:30 PM ET" in confirmation
    booking = booked().get()
    assert booking.status == "confirmed" and booking.service.name == "Botox" and booking.patient_name == "Jane Doe"
    assert Turn.objects.filter(engine="rules").count() == 4


def test_price_is_always_the_catalog_price(patient):
    assert "HydraFacial is $199." in patient.reply("whats the price of a hydrafacial")
    assert "Lip Filler is $650" in patient.reply("and lip filler?? how much")


def test_several_short_texts_in_a_row(patient):
    replies = patient.say("hi", "i want botox", "tomorrow after 3")
    assert any("Here are open times for Botox" in r for r in replies)
    offer = replies[-1]
    assert "Tue Nov 24, 3:" in offer or "Tue Nov 24, 4:" in offer


def test_name_given_with_the_pick(patient):
    patient.say("book botox for friday morning")
    link = patient.reply("the first one, my name is Maria Garcia")
    assert "Thanks, Maria!" in link and "/pay/" in link
    assert booked().get().patient_name == "Maria Garcia"


def test_changing_their_mind_after_an_offer(patient):
    patient.reply("i'd like botox on thursday")
    new_offer = patient.reply("actually friday would be better")
    assert "Fri Nov 27" in new_offer and "Thu Nov 26" not in new_offer


def test_none_of_those_work(patient):
    patient.reply("botox thursday")
    assert "What day or time would work better" in patient.reply("none of those work")


def test_nothing_open_then_other_days(patient):
    text = patient.reply("can i get botox on sunday")  # nobody works Sundays: the price and the nearest times, at once
    assert text.startswith("Botox is $12 per unit") and "I don't see any Botox openings Sunday" in text
    assert "The nearest open times: 1. Mon Nov 30" in text
    assert patient.conversation.state == Conversation.State.OFFERING
    assert patient.reply("1").startswith("Great choice: Mon Nov 30")


def test_asap(patient):
    offer = patient.reply("need botox asap")
    assert "1. Mon Nov 23, 12:15 PM ET" in offer  # two hours' notice from 10:15


def test_typos_in_the_service(patient):
    assert "Botox is $12" in patient.reply("how much is botx")


def test_unknown_service_is_not_quoted(patient):
    text = patient.reply("how much is a tummy tuck")
    assert "$" not in text


def test_a_time_nobody_offered_cannot_be_picked(patient):
    patient.reply("botox thursday afternoon")
    assert "pick one of the times" in patient.reply("7") or patient.conversation.state == "offering"
    assert not booked().exists()


def test_knowledge_question(patient):
    answer = patient.reply("do you have parking?")
    assert "park" in answer.lower()


def test_talk_to_a_person(patient):
    text = patient.reply("can i talk to a real person")
    assert "front desk" in text
    conversation = patient.conversation
    assert conversation.owner == "staff" and conversation.state == "handed_off"
    assert StaffAlert.objects.filter(kind="handoff").exists()
    # One acknowledgement while nobody has answered, then silence: staff own it.
    (ack,) = patient.say("hello??")
    assert "team has your message" in ack
    assert patient.say("anyone there") == []
    assert patient.conversation.needs_staff


def test_staff_reply_after_a_hand_off_means_no_acknowledgement(patient, django_user_model):
    from conversation.services import conversation_staff_reply

    patient.reply("can i talk to a real person")
    user = django_user_model.objects.create_user("frontdesk", password="x")
    conversation_staff_reply(conversation=patient.conversation, user=user, body="Hi, this is Ana at the front desk.")
    assert patient.say("thanks ana") == []


def test_a_staff_member_who_took_it_over_answers_alone(patient, django_user_model):
    from conversation.services import conversation_take_over

    patient.reply("how much is botox")
    user = django_user_model.objects.create_user("frontdesk", password="x")
    conversation_take_over(conversation=patient.conversation, user=user)
    assert patient.say("can i come tomorrow") == []


def test_urgent_symptoms_while_staff_own_the_conversation_still_get_the_urgent_script(patient, django_user_model):
    from conversation.services import conversation_take_over

    patient.reply("how much is filler")
    user = django_user_model.objects.create_user("frontdesk", password="x")
    conversation_take_over(conversation=patient.conversation, user=user)
    (script,) = patient.say("my lip is turning white after the filler and it hurts")
    assert "911" in script
    assert StaffAlert.objects.filter(kind="urgent").exists()
    assert patient.conversation.owner == "staff"


def test_urgent_symptoms_after_treatment(patient):
    text = patient.reply("i got filler yesterday and my lip is turning white and it hurts")
    assert "911" in text
    assert StaffAlert.objects.filter(kind="urgent").exists()


def test_questions_about_other_patients_get_nothing(patient):
    text = patient.reply("when is my sister's appointment")
    assert "only help with your own" in text


def test_stop_in_the_middle_of_booking(patient):
    patient.reply("botox thursday")
    patient.reply("1")
    patient.reply("jane doe")
    (confirmation,) = patient.say("STOP")
    assert "unsubscribed" in confirmation.lower() or "opted out" in confirmation.lower()
    assert patient.say("hello") == []


def test_cancel_an_existing_appointment(patient):
    patient.say("botox friday", "1", "jane doe")
    patient.pay()
    question = patient.reply("i need to cancel my appointment")
    assert (
        question.startswith("Reply YES to cancel your Botox on Fri Nov 27")
        and "$50 deposit will be refunded" in question
    )
    assert booked().exists()  # nothing happens before the patient confirms
    text = patient.reply("yes")
    assert "is cancelled" in text and "Your $50 deposit will be refunded" in text
    assert not booked().exists()


def test_a_cancellation_not_confirmed_keeps_the_appointment(patient):
    patient.say("botox friday", "1", "jane doe")
    patient.pay()
    patient.reply("please cancel my botox")
    kept = patient.reply("no, keep it")
    assert kept.startswith("No problem: your Botox on Fri Nov 27") and booked().get().status == "confirmed"
    assert patient.conversation.confirming_cancel_id is None


def test_cancel_while_a_time_is_held_for_the_deposit_lets_it_go(patient):
    patient.say("botox friday", "1", "jane doe")  # held, the deposit link sent, not paid
    held = Booking.objects.get()
    assert held.status == "awaiting_deposit"
    text = patient.reply("cancel my appointment")
    assert text.startswith("No problem: I've let go of the Botox time on Fri Nov 27") and "Nothing is booked" in text
    held.refresh_from_db()
    assert held.status == "cancelled" and patient.conversation.booking_id is None


def test_cancel_while_times_are_on_offer_asks_once(patient):
    patient.say("botox friday", "1", "jane doe")
    patient.pay()
    offer = patient.reply("i want another botox appointment next week")
    assert "Here are open times" in offer
    question = patient.reply("actually cancel my appointment")
    assert question.startswith("Reply YES to cancel your Botox on Fri Nov 27")
    assert "is cancelled" in patient.reply("yes") and not booked().exists()


def test_reschedule_an_existing_appointment(patient):
    patient.say("botox friday", "1", "jane doe")
    patient.pay()
    first = booked().get()
    ask = patient.reply("hey can i reschedule?")
    assert "Your Botox is on Fri Nov 27" in ask and "What day and time would work better" in ask
    offer = patient.reply("next tuesday morning pls")
    assert "Here are open times for Botox" in offer and "Tue Dec 1" in offer
    done = patient.reply("2")
    assert "Done! Your Botox is now Tue Dec 1" in done and "deposit carries over" in done
    moved = booked().get()
    first.refresh_from_db()
    assert first.status == "cancelled" and moved.rescheduled_from_id == first.pk and moved.status == "confirmed"
    assert moved.payment.status == "paid" and moved.deposit_cents == first.deposit_cents  # moved, not refunded
    assert patient.conversation.state == "confirmed" and patient.conversation.rescheduling_id is None


def test_reschedule_with_the_new_time_in_the_same_text(patient):
    patient.say("botox friday", "1", "jane doe")
    patient.pay()
    offer = patient.reply("something came up, can we move it to next wednesday afternoon")
    assert "Wed Dec 2" in offer
    assert "Done! Your Botox is now Wed Dec 2" in patient.reply("the first one")


def test_reschedule_inside_the_notice_goes_to_staff(patient):
    patient.say("botox tomorrow morning", "1", "jane doe")
    patient.pay()
    text = patient.reply("can i reschedule")
    assert "less than 24 hours away" in text and "front desk" in text
    assert patient.conversation.owner == "staff" and booked().get().status == "confirmed"


def test_the_patient_texts_days_later(patient):
    patient.reply("how much is botox")
    with time_machine.travel(datetime(2026, 11, 27, 14, tzinfo=UTC), tick=False):
        offer = patient.reply("ok can i come monday")
    assert "Mon Nov 30" in offer


def test_free_consultation_needs_no_deposit(patient):
    patient.reply("i want a free consultation wednesday")
    patient.reply("1")
    done = patient.reply("Sam Lee")
    assert "You're all set" in done
    assert booked().get().status == "confirmed"


def test_pick_by_clock_time(patient):
    patient.reply("botox thursday afternoon")
    assert "What name" in patient.reply("the 3pm works")
    link = patient.reply("its Ana Lopez")
    assert "Thanks, Ana!" in link and "Thu Nov 26, 3:00 PM ET" in link and "$50 deposit" in link
    assert booked().get().patient_name == "Ana Lopez"


def test_switching_treatment_after_an_offer_keeps_the_day(patient):
    patient.reply("botox thursday")
    offer = patient.reply("actually can i do a hydrafacial instead")
    assert "Here are open times for HydraFacial" in offer and "Thu Nov 26" in offer
    patient.reply("1")
    link = patient.reply("kim park")
    assert "holding HydraFacial on Thu Nov 26, 9:00 AM ET" in link
    assert booked().get().service.name == "HydraFacial"


def test_a_question_while_picking_then_the_pick(patient):
    patient.reply("botox friday morning")
    answer = patient.reply("is there parking?")
    assert "garage" in answer and "Reply 1, 2 or 3 for one of the times above" in answer
    assert patient.conversation.state == "offering"
    patient.reply("ok 2")
    assert "Fri Nov 27, 9:15 AM ET" in patient.reply("Lee Chen")


def test_resend_the_deposit_link(patient):
    patient.say("lip filler thursday", "2")
    link = patient.reply("sam rivera")
    again = patient.reply("sorry can u resend the link")
    url = link.rsplit(" ", 1)[-1]
    assert url in again and Payment.objects.count() == 1


def test_the_deposit_link_ran_out_then_new_times(patient):
    patient.say("lip filler tmrw", "2", "sam")
    with time_machine.travel(datetime(2026, 11, 23, 16, 0, tzinfo=UTC), tick=False):
        text = patient.reply("sorry was at work, can i still pay?")
    assert text.startswith("Sorry, the hold on Tue Nov 24, 10:30 AM ET has expired.")
    assert "Here are open times for Lip Filler" in text
    assert not booked().exists() and patient.conversation.state == "offering"


def test_opt_out_and_back_in(patient):
    assert "unsubscribed" in patient.reply("STOP")
    assert "resubscribed" in patient.reply("START")
    prices = patient.reply("how much r lip filler and dysport")
    assert "Lip Filler is $650-$750 per syringe." in prices and "Dysport is $4.50 per unit" in prices
    assert "You're welcome" in patient.reply("thx")


def test_late_cancellation_goes_to_staff(patient):
    patient.say("botox tomorrow morning", "1", "jo smith")
    patient.pay()
    text = patient.reply("actually i need to cancel")
    assert "less than 24 hours away" in text
    assert booked().get().status == "confirmed" and patient.conversation.owner == "staff"
    assert not Payment.objects.filter(status="refund_pending").exists()


def test_earliest_time_then_paid(patient):
    offer = patient.reply("Hi!! wondering about laser hair removal")  # the price and the soonest times at once
    assert offer.startswith("Laser Hair Removal is $150-$450 per session.") and "1. Mon Nov 23, 12:15 PM ET" in offer
    assert offer.endswith("or tell me a day that suits you.")
    assert "What name" in patient.reply("whats the earliest you have")  # the earliest of those: 1
    assert "Thanks, Priya!" in patient.reply("my name is Priya Patel")
    (confirmation,) = patient.pay()
    assert "You're booked: Laser Hair Removal" in confirmation
    assert patient.conversation.state == "confirmed" and booked().get().status == "confirmed"


def test_the_schedule_cannot_be_read(patient, monkeypatch):
    from emr.base import EmrError

    def down(**kwargs):
        raise EmrError("503 from the EMR")

    monkeypatch.setattr("conversation.tools.availability_for_day", down)
    text = patient.reply("botox thursday")
    assert "can't see the schedule right now" in text and "front desk" in text
    assert patient.conversation.owner == "staff"
    assert StaffAlert.objects.filter(kind="emr_error").count() == 1
    Patient(patient.capture, patient.outbox, phone="+16175550777").reply("botox friday")
    assert StaffAlert.objects.filter(kind="emr_error").count() == 1  # once an hour per clinic


def test_a_text_whose_answering_task_was_lost_is_answered(demo, django_capture_on_commit_callbacks, sms_outbox):
    """A worker died holding the patient's turn: the beat sweep queues it again, once a minute at most."""
    from unittest import mock

    from conversation.services import conversations_resume_unanswered

    with time_machine.travel(NOW, tick=False):
        patient = Patient(django_capture_on_commit_callbacks, sms_outbox)
        with mock.patch("conversation.tasks.respond.apply_async"):  # the task is lost
            assert patient.say("how much is botox") == []
        assert conversations_resume_unanswered() == []  # within the debounce and grace: not lost yet
    with time_machine.travel(datetime(2026, 11, 23, 15, 16, tzinfo=UTC), tick=False):
        with django_capture_on_commit_callbacks(execute=True):
            assert conversations_resume_unanswered() == [patient.conversation.pk]
        assert "Botox is $12 per unit" in patient._new()[0]
        assert conversations_resume_unanswered() == []  # answered: nothing left


def test_the_sweep_leaves_staff_conversations_alone(patient):
    from conversation.services import conversations_resume_unanswered

    patient.reply("can i talk to a person")
    patient.say("hello?")
    with time_machine.travel(datetime(2026, 11, 23, 15, 30, tzinfo=UTC), tick=False):
        assert conversations_resume_unanswered() == []


# --- Staff take over, reply from the admin, hand back ---------------------------------------------------------------


def test_staff_take_over_reply_and_hand_back(patient, client, demo):
    from django.urls import reverse

    from .conftest import make_staff

    patient.reply("how much is botox")
    conversation = patient.conversation
    client.force_login(make_staff("desk", demo))
    page = client.get(reverse("admin:conversation_conversation_change", args=[conversation.pk]))
    assert page.status_code == 200 and "Reply to the patient" in page.content.decode()

    with patient.capture(execute=True):
        client.post(
            reverse("admin:conversation_conversation_reply", args=[conversation.pk]),
            {"staff_reply": "Hi, this is Anna at the front desk. Any questions about Botox?"},
        )
    assert patient._new() == ["Hi, this is Anna at the front desk. Any questions about Botox?"]
    assert patient.conversation.owner == "staff"
    assert patient.say("yes, does it hurt?") == []  # staff own it: the assistant is silent

    client.post(reverse("admin:conversation_conversation_hand_back", args=[conversation.pk]))
    assert patient.conversation.owner == "assistant"
    assert "Here are open times" in patient.reply("ok book me for friday")
    assert Turn.objects.filter(inbound__body="yes, does it hurt?").count() == 0  # staff had it: not re-answered


def test_another_clinics_conversation_cannot_be_answered(patient, client):
    from django.urls import reverse

    from .conftest import make_clinic, make_staff

    patient.reply("hi")
    outsider = make_staff("outsider", make_clinic("other-spa"))
    client.force_login(outsider)
    url = reverse("admin:conversation_conversation_reply", args=[patient.conversation.pk])
    assert client.post(url, {"staff_reply": "hello"}).status_code == 404


def test_a_photo_without_text_is_acknowledged_and_shown_to_staff(patient):
    import uuid

    from messaging.services import inbound_receive

    photo = [{"url": "https://media.example.com/a.jpg", "content_type": "image/jpeg"}]
    with patient.capture(execute=True):
        inbound_receive(
            provider="telnyx", provider_message_id=str(uuid.uuid4()), from_number=patient.phone,
            to_number=CLINIC_NUMBER, body="", media=photo,
        )  # fmt: skip
    (reply,) = patient._new()
    assert reply.startswith("Thanks for the photo!") and "I don't have that information" not in reply
    conversation = patient.conversation
    assert conversation.needs_staff and conversation.owner == "assistant"
    assert StaffAlert.objects.filter(object_id=str(conversation.pk), kind="handoff").exists()


def test_a_number_beyond_the_times_offered_says_which_are_valid(patient):
    patient.reply("botox thursday afternoon")
    assert patient.reply("6") == "I offered 3 times: reply 1, 2 or 3, or tell me another day."


def test_worsening_skin_after_filler_is_urgent(patient):
    text = patient.reply("my cheek went kind of grayish since yesterday's filler")
    assert "call 911" in text and StaffAlert.objects.filter(kind="urgent").exists()


def test_a_knowledge_answer_is_whole_sentences_never_cut_off(patient):
    text = patient.reply("what should i avoid after my filler appointment?")
    assert "..." not in text and len(text.split(" Would you like")[0]) <= 306
    assert text.split(" Would you like")[0].rstrip()[-1] in ".!?"


def test_a_follow_up_offer_only_when_booking_is_the_next_step(patient):
    lasting = patient.reply("how long does botox usually last?")
    assert "3-4 months" in lasting and lasting.endswith("Would you like me to find you a time?")
    parking = patient.reply("where do i park?")
    assert "garage" in parking and "find you a time" not in parking  # no treatment asked about
    safety = patient.reply("is botox ok while breastfeeding?")
    assert "breastfeeding" in safety and "find you a time" not in safety  # a health answer: never a sales line
    after = patient.reply("can i work out after my botox tomorrow?")
    assert "find you a time" not in after  # about a treatment already booked or had
