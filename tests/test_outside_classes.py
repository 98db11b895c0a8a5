"""The classes of mistake the outside corpus found (conversation/eval/, dev half), each pinned by texts written here
in other words: a question about the day is answered, not booked; a health question never gets an offer; one text
that asks two things gets both; a provider asked for is the one offered; the pick is said back; what only staff can
do goes to staff. The clock is pinned (Monday 10:15 in Boston), the demo clinic on its built-in calendar."""

import re
from datetime import datetime

import pytest

from conversation.models import Conversation
from medspa.models import StaffAlert
from tests.test_assistant import Patient, booked
from tests.test_double_booking import book_botox


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    import time_machine

    from tests.test_assistant import NOW

    with time_machine.travel(NOW, tick=False):
        yield Patient(django_capture_on_commit_callbacks, sms_outbox)


def offered_days(reply: str) -> set[str]:
    return set(re.findall(r"^\d\. (\w{3} \w{3} \d+),", reply, re.MULTILINE))


# --- Questions about the day are answered, never taken for a booking ------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "should i bring my insurance card friday?",
        "what do i need for my first visit",
        "how does the deposit work if i have to move things around?",
        "is it ok to have coffee before my appointment tomorrow",
    ],
)
def test_a_question_naming_a_day_is_answered_not_booked(patient, text):
    reply = patient.reply(text)
    assert "Here are open times" not in reply and "Which treatment" not in reply
    assert patient.conversation.state != Conversation.State.OFFERING and not booked().exists()


def test_aftercare_for_a_treatment_already_had_is_the_aftercare(patient):
    reply = patient.reply("did my filler this afternoon, ok to hit the gym tonight?")
    assert "24 hours" in reply and "open times" not in reply


def test_a_booked_patients_question_about_the_visit_is_answered_from_the_documents(patient):
    book_botox(patient)
    reply = patient.reply("is it fine to work out after my botox on thursday")
    assert "24 hours" in reply and not reply.startswith("Yes: your Botox is on")
    assert "Here are open times" not in reply


def test_how_long_the_booked_visit_takes_comes_from_the_catalog(patient):
    book_botox(patient)
    reply = patient.reply("how long will the appointment take?")
    assert reply.startswith("A Botox appointment takes about 30 minutes.") and "Yours is on Thu Nov 26" in reply


def test_a_goodbye_that_names_the_day_is_not_a_booking(patient):
    book_botox(patient)
    assert patient.reply("great thx, see u thursday!") == "You're welcome! See you then."
    assert booked().count() == 1


# --- Health questions: answered in any state, never with an offer -------------------------------------------------


def test_a_health_question_while_times_are_offered_gets_no_offer(patient):
    patient.reply("i want lip filler wednesday")
    assert patient.conversation.state == Conversation.State.OFFERING
    reply = patient.reply("wait, im nursing my baby, is lip filler ok for me?")
    assert re.search(r"breastfeeding|nursing", reply) and "Reply 1" not in reply and "open times" not in reply


def test_a_health_question_naming_a_treatment_and_a_day_gets_no_offer(patient):
    reply = patient.reply("on accutane right now, is a chemical peel next week safe")
    assert "Here are open times" not in reply and patient.conversation.state != Conversation.State.OFFERING


# --- One text, two asks ------------------------------------------------------------------------------------------


def test_a_price_and_a_day_in_one_text_get_the_price_and_the_times(patient):
    reply = patient.reply("what does a hydrafacial run and is there anything thursday")
    assert reply.startswith("HydraFacial is $199. Here are open times for HydraFacial:")
    assert offered_days(reply) == {"Thu Nov 26"}


def test_a_price_and_another_question_get_both_answers(patient):
    reply = patient.reply("how much is a chemical peel and where should i park")
    assert reply.startswith("Chemical Peel is $175.") and "garage" in reply


def test_a_concern_finds_its_service_and_price(patient):
    reply = patient.reply("what would it cost to treat my acne scars")
    assert "Microneedling is $350" in reply


def test_a_treatment_the_clinic_does_not_offer_is_said_so(patient):
    reply = patient.reply("do you offer hair transplants?")
    assert reply.startswith("That isn't a treatment we offer") and "Botox" in reply and "$" not in reply


def test_discount_questions_are_answered_from_the_documents_not_with_a_menu(patient):
    reply = patient.reply("any military discount?")
    assert "Which treatment" not in reply


# --- Offers: several days, the provider asked for, the pick said back ----------------------------------------------


def test_the_first_offer_spreads_over_several_days(patient):
    reply = patient.reply("i want botox")
    assert reply.startswith("Botox is $12 per unit") and len(offered_days(reply)) >= 2


def test_the_provider_asked_for_is_the_one_offered(patient):
    reply = patient.reply("can i see emily johnson for dysport")
    lines = [line for line in reply.splitlines() if re.match(r"\d\.", line)]
    assert lines and all(line.endswith("with Dr. Emily Johnson") for line in lines)


def test_whether_a_provider_does_a_treatment(patient):
    assert patient.reply("does dr johnson do microneedling?") == (
        "Dr. Emily Johnson doesn't do Microneedling; Dr. Sarah Smith does. Would you like me to find you a time?"
    )


def test_the_pick_is_said_back_before_the_name(patient):
    patient.reply("i want botox thursday afternoon")
    reply = patient.reply("the second one")
    assert (
        reply
        == "Great choice: Thu Nov 26, 1:30 PM ET with Dr. Sarah Smith. What name should I put the appointment under?"
    )


def test_turning_down_the_times_with_another_window_gets_new_times(patient):
    patient.reply("i want botox wednesday")
    reply = patient.reply("those dont work for me, anything after 3 on friday?")
    assert "Here are open times for Botox" in reply and offered_days(reply) == {"Fri Nov 27"}


# --- Who is this; what only staff can do ---------------------------------------------------------------------------


def test_who_is_this_names_the_clinic(patient):
    reply = patient.reply("who is this??")
    assert "Glow Demo Med Spa" in reply and "STOP" in reply
    assert patient.conversation.owner != "staff" and not patient.conversation.needs_staff


@pytest.mark.parametrize(
    "text",
    [
        "you charged me twice for the facial last week",
        "please email me a copy of my chart",
        "hi are you hiring front desk staff?",
    ],
)
def test_what_only_staff_can_do_goes_to_staff(patient, text):
    reply = patient.reply(text)
    assert "front desk" in reply
    c = patient.conversation
    assert c.owner == "staff" or c.needs_staff
    assert StaffAlert.objects.exists()


def test_a_free_service_is_said_free(patient):
    assert "Consultation is free." in patient.reply("how much is a consult")


# --- Later rounds: the day itself, loose picks, what a person must see -------------------------------------------


def test_running_late_tells_the_front_desk(patient):
    reply = patient.reply("ugh stuck on 93, gonna be 10 min late")
    assert "front desk" in reply
    assert patient.conversation.needs_staff or patient.conversation.owner == "staff"


def test_a_bare_question_mark_while_times_are_offered_gets_the_times_again(patient):
    patient.reply("i want botox wednesday")
    reply = patient.reply("??")
    assert reply.startswith("Sorry, which time works? Here are open times for Botox:") and "1. Wed Nov 25" in reply
    assert not patient.conversation.needs_staff


def test_a_day_without_openings_offers_the_nearest_times_at_once(patient):
    reply = patient.reply("any hydrafacial on sunday?")
    assert "I don't see any HydraFacial openings" in reply and "The nearest open times: 1." in reply


def test_a_pick_by_day_of_the_month(patient):
    patient.reply("botox this week please")
    offered = patient.conversation.offered_slots
    day = offered[1]["start"][8:10].lstrip("0")
    assert patient.reply(f"the {day}th is good").startswith("Great choice:")
    assert patient.conversation.booking.start == datetime.fromisoformat(offered[1]["start"])


def test_moving_a_time_held_but_not_paid_lets_it_go_and_offers_others(patient):
    patient.reply("i want botox thursday afternoon")
    patient.reply("1")
    patient.reply("jane doe")
    held = patient.conversation.booking
    reply = patient.reply("shoot, can we move it to a different day?")
    held.refresh_from_db()
    assert held.status == "cancelled" and "Here are open times for Botox" in reply
    assert "Thu Nov 26" not in reply  # another day


def test_a_booked_patient_asking_about_the_deposit_hears_it_is_paid(patient):
    book_botox(patient, when="thursday afternoon", pick="1")
    reply = patient.reply("lost the link, do i still have to pay the deposit?")
    assert reply.startswith("Your $50 deposit for your Botox on Thu Nov 26") and "nothing more to pay" in reply


def test_a_question_then_a_request_for_times_gets_both(patient):
    reply = patient.reply("does dysport hurt? if not can i come in friday")
    assert "Here are open times for Dysport" in reply and reply.index("Here are") > 20


def test_a_prescribed_medicine_is_flagged_for_the_clinician(patient):
    patient.reply("i take eliquis, is botox ok for me?")
    assert patient.conversation.needs_staff


def test_do_not_call_me_is_not_a_request_for_a_call(patient):
    reply = patient.reply("please don't call me, just text. how much is a hydrafacial")
    assert "HydraFacial is $199" in reply and not patient.conversation.needs_staff


def test_a_vowel_typo_in_a_short_treatment_name(patient):
    assert "Botox is $12 per unit" in patient.reply("price of botix?")


def test_whether_a_child_may_come_along_goes_to_the_front_desk(patient):
    reply = patient.reply("is it ok if i bring my son along? hes 5")
    assert "front desk" in reply
    assert patient.conversation.needs_staff or patient.conversation.owner == "staff"


def test_a_touch_up_question_finds_the_touch_up_policy(patient):
    reply = patient.reply("had botox 10 days ago and one eyebrow is higher than the other, can you fix it")
    assert "14" in reply and "Here are open times" not in reply


def test_a_policy_question_about_moving_finds_the_policy(patient):
    reply = patient.reply("whats the rule if i have to move my appointment?")
    assert "24" in reply
