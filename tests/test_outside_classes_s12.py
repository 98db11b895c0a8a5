"""Session 12's classes, each pinned by texts written here: after a cancellation, "do I get my money back?" is
where that deposit's refund stands; a question run on with no punctuation at all is still a question; "before I
book" is a condition, not a request; a question about timing a treatment before an event is answered, not booked;
thanks signed with a name is thanked; a treatment the clinic does not offer never gets another one's price, however
it is spelled; Spanish spelled as it sounds is read. The clock is pinned (Monday 10:15 in Boston), the demo clinic on
its built-in calendar."""

import re

import pytest

from conversation import parsing
from conversation.models import Conversation
from medspa.models import StaffAlert
from payments.models import Payment
from tests import test_outside_classes as _outside
from tests.test_assistant import booked
from tests.test_double_booking import book_botox
from tests.test_outside_classes_s8 import with_photo

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned


def test_after_a_cancellation_the_refund_is_where_it_stands(patient):
    appointment = book_botox(patient)
    assert patient.reply("please cancel my botox").startswith("Reply YES to cancel")
    patient.reply("YES")
    payment = Payment.objects.get(booking=appointment)
    assert payment.status in ("refund_pending", "refunded")
    reply = patient.reply("so will the 50 dollars be returned to me?")
    assert reply.startswith("Yes: the $50 deposit for your cancelled Botox")
    assert "to the card you paid with" in reply
    assert not StaffAlert.objects.exists()  # nothing for staff to do: the refund is already under way


def test_a_refund_question_with_nothing_cancelled_is_the_policy(patient):
    reply = patient.reply("if i cancel do i get my deposit back?")
    assert "24 hours" in reply and "cancelled Botox" not in reply


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("my forearm hair is pretty light blond does laser even work on that", "dark"),
        ("if my frown lines are still there at like day 12 is the touch up free", "14 days"),
    ],
)
def test_a_question_run_on_without_punctuation_is_answered(patient, text, fact):
    assert parsing.intents(text) & {"question"}
    reply = patient.reply(text)
    assert fact in reply and "Here are open times" not in reply


def test_before_i_book_is_a_condition_not_a_request(patient):
    assert "book" not in parsing.intents("what is the cancellation policy? want to know before i book anything")
    reply = patient.reply("who does the filler injections, a doctor or a nurse? need to know before i book")
    assert "Johnson" in reply and "Here are open times" not in reply
    assert patient.conversation.state != Conversation.State.OFFERING


def test_timing_a_treatment_before_an_event_is_answered_not_booked(patient):
    reply = patient.reply("could i do a chemical peel 3 days before my sister's wedding??")
    assert "5-7 days" in reply and "Here are open times" not in reply
    assert not booked().exists()


def test_thanks_signed_with_a_name_is_thanked_not_handed_off(patient):
    reply = patient.reply("Many thanks again. Robert Ellison")
    assert reply.startswith("You're welcome")
    assert not StaffAlert.objects.exists()


@pytest.mark.parametrize("text", ["how much is cool sculpting for my stomach", "price for coolsculpting on my belly?"])
def test_a_treatment_not_offered_never_gets_another_ones_price(patient, text):
    reply = patient.reply(text)
    assert "isn't a treatment we offer" in reply and "$" not in reply


def test_voice_to_text_botox_is_botox(patient):
    reply = patient.reply("can i book bo tox for my frown lines on wednesday")
    assert "Here are open times for Botox" in reply


def test_a_price_and_how_many_visits_get_both(patient):
    reply = patient.reply("whats laser hair removal cost for legs n how many visits will it take")
    assert "$150-$450" in reply and "6-8 sessions" in reply


def test_spanish_spelled_as_it_sounds_is_read(patient):
    book_botox(patient)
    reply = patient.reply("nesesito cansalar la sita porfa")
    assert reply.startswith("Responda SI para cancelar")
    patient.reply("no")
    reply = patient.reply("quien me esta enviando mensajes?")
    assert "Glow Demo Med Spa" in reply


def test_another_services_price_while_times_are_on_offer_keeps_the_offer(patient):
    patient.reply("i want botox on thursday")
    reply = patient.reply("wait how much is dysport?")
    assert "$4.50" in reply and reply.endswith("for one of the Botox times above.")
    assert patient.conversation.state == Conversation.State.OFFERING
    assert patient.reply("nah im good with botox, the first one").startswith("Great choice: Thu")


def test_switching_to_another_service_for_its_price_offers_its_times(patient):
    patient.reply("i want botox on thursday")
    reply = patient.reply("actually make it dysport, it's cheaper right?")
    assert "Here are open times for Dysport" in reply


def test_cannot_get_there_before_an_hour_is_after_that_hour_on_the_next_days(patient):
    reply = patient.reply("i want botox but i can't get there before 5:15")
    hours = re.findall(r"^\d\. \w{3} \w{3} \d+, (\d+):(\d\d) ([AP]M)", reply, re.MULTILINE)
    assert hours and all(ap == "PM" and (int(h) % 12, int(m)) >= (5, 15) for h, m, ap in hours)
    assert "later in the day" not in reply


def test_a_deposit_question_while_a_cancellation_awaits_its_yes_keeps_the_question(patient):
    book_botox(patient)
    assert patient.reply("have to cancel my appointment, sorry").startswith("Reply YES to cancel")
    reply = patient.reply("hold on, will i lose the $50?")
    assert "will be refunded" in reply and "24 hours" in reply and "Reply YES to cancel" in reply
    assert patient.reply("yes").startswith("Done: your Botox")
    assert not booked(patient.phone).filter(status="confirmed").exists()


def test_at_an_hour_works_is_that_hour_not_that_option(patient):
    book_botox(patient)
    offer = patient.reply("can we move it to next week same time?")
    assert "Here are open times for Botox" in offer
    moved_to = re.findall(r"^\d\. (\w{3} \w{3} \d+, \d+:\d\d [AP]M)", offer, re.MULTILINE)
    first_hour = moved_to[0].split(", ")[1]
    reply = patient.reply(f"{first_hour.split(':')[0]} works")  # "2 works": 2 PM, the first time offered
    assert reply.startswith("Done! Your Botox is now") and first_hour in reply


def test_a_spouses_appointment_is_not_told(patient):
    reply = patient.reply("my husband has an appointment there this week, what time is it?")
    assert "only help with your own" in reply


def test_who_will_perform_it_names_the_providers(patient):
    reply = patient.reply("who would administer the filler, and are they licensed?")
    assert "Johnson" in reply and "Smith" in reply


def test_do_you_do_financing_or_is_it_upfront_is_the_financing_answer(patient):
    reply = patient.reply("do you do payment plans or is it all upfront")
    assert "Cherry" in reply and "isn't a treatment we offer" not in reply


def test_spanish_questions_about_parking_and_the_refund_are_answered_not_acted_on(patient):
    book_botox(patient)
    reply = patient.reply("¿si tengo que cancelar la cita me devuelven el depósito?")
    assert "24 hours" in reply and "Responda SI" not in reply
    assert booked(patient.phone).filter(status="confirmed").exists()
    assert "Clarendon" in patient.reply("hay estacionamiento cerca?")


def test_a_photo_with_a_word_about_it_is_acknowledged(patient):
    reply = with_photo(patient, "here's the pic of my forehead")
    assert reply.startswith("Thanks for the photo")


def test_two_questions_after_a_greeting_get_two_answers(patient):
    reply = patient.reply("hi there do you validate parking? and how early do i need to get there")
    assert "validate" in reply and "10-15 minutes" in reply
    assert not reply.startswith("Botox:")


def test_three_questions_on_one_document_are_each_answered(patient):
    reply = patient.reply("is there financing? any 0% plans? does it do a hard pull on my credit")
    assert "Cherry" in reply and "0%" in reply and "soft credit check" in reply


def test_spanish_where_and_parking_get_both(patient):
    reply = patient.reply("donde esta la clinica y hay donde estacionar?")
    assert "120 Newbury Street" in reply and "Clarendon" in reply


def test_another_treatment_named_with_a_day_offers_its_times_not_a_pick(patient):
    patient.reply("i want botox")
    reply = patient.reply("hmm let's do the chemical peel instead, wednesday works")
    assert "Here are open times for Chemical Peel" in reply
    assert not booked().exists()


def test_a_part_of_day_the_offered_time_is_not_in_is_not_a_pick(patient):
    patient.reply("i want botox on wednesday morning")
    reply = patient.reply("actually could i do wednesday after work?")
    assert "Great choice" not in reply
    hours = re.findall(r"^\d\. \w{3} \w{3} \d+, (\d+):\d\d ([AP]M)", reply, re.MULTILINE)
    assert hours and all(ap == "PM" and int(h) % 12 >= 5 for h, ap in hours)


def test_a_discount_question_while_a_treatment_is_talked_about_is_the_documents(patient):
    patient.reply("how much is lip filler")
    reply = patient.reply("do you do student discounts?")
    assert "$650-$750" not in reply


def test_is_this_another_place_is_answered_with_who_and_where(patient):
    reply = patient.reply("Hello, is this Radiance Aesthetics?")
    assert reply.startswith("This is Glow Demo Med Spa, at 120 Newbury Street")
    assert "This is Glow Demo Med Spa, at" in patient.reply("is this the clinic on boylston?")


def test_a_refund_of_an_overcharge_asked_for_goes_to_staff(patient):
    reply = patient.reply("you billed me for two syringes but only used one, I'd like the extra refunded")
    assert "front desk" in reply and StaffAlert.objects.exists()


def test_an_age_and_a_touch_up_are_policy_questions_not_bookings(patient):
    assert "16 or 17" in patient.reply("could i get a hydrafacial if im 16?")
    reply = patient.reply("had botox 3 weeks ago and one brow is higher, can i get a touch up?")
    assert "14" in reply and "Here are open times" not in reply


def test_any_weekday_morning_is_the_soonest_mornings(patient):
    reply = patient.reply("id like botox, i can do any weekday morning")
    assert "this morning" not in reply and "Here are open times for Botox" in reply
    assert all(ap == "AM" for ap in re.findall(r"^\d\. .*?, \d+:\d\d ([AP]M)", reply, re.MULTILINE))


def test_typos_in_a_price_question(patient):
    assert "$12 per unit" in patient.reply("how mch is botx for forehead")


def test_spanish_age_parking_and_a_what_if_while_a_time_is_held(patient):
    assert "16 or 17" in patient.reply("mi hija tiene 14, puede hacerse un hydrafacial?")
    assert "Clarendon" in patient.reply("y donde se estaciona?")
    patient.reply("quiero botox el jueves")
    patient.reply("la primera")
    reply = patient.reply("y si me surge algo y tengo que cancelar, me lo devuelven?")
    assert "24 hours" in reply
    assert patient.conversation.state == Conversation.State.HOLDING


def test_what_can_i_get_done_for_a_concern_is_a_question(patient):
    reply = patient.reply("what could i get done for acne scars?")
    assert "Microneedling" in reply and "Which treatment" not in reply
    reply = patient.reply("i'm nursing right now, what can i still get done?")
    assert "HydraFacial" in reply


@pytest.mark.parametrize("text", ["umm 3 i guess", "soonest"])
def test_a_pick_with_hesitation_or_one_word(patient, text):
    patient.reply("i want botox")
    offered = patient.conversation.offered_slots
    assert len(offered) == 3
    reply = patient.reply(text)
    assert reply.startswith("Great choice:")


def test_an_indirect_request_gets_the_price_and_times(patient):
    reply = patient.reply("I was hoping to maybe get something for my smile lines soon, if that's possible?")
    assert "Dermal Filler is $650-$850" in reply and "Here are open times for Dermal Filler" in reply


def test_spreading_the_cost_is_financing(patient):
    reply = patient.reply("any chance of spreading the cost of lip filler over a few months?")
    assert "Cherry" in reply


def test_spanish_spelled_as_it_sounds_asks_for_a_person(patient):
    assert "recepci" in patient.reply("kiero ablar con alguien de verda")


def test_spanish_nails_are_not_a_treatment_offered(patient):
    assert "no ofrecemos" in patient.reply("ustede asen uñas?")
    assert "manicure" not in patient.reply("tengo unas preguntas sobre el botox")


def test_a_letters_sign_off_and_greeting_are_not_searched_for(patient):
    reply = patient.reply("Good afternoon. What should I bring to my first appointment? Kind regards, Eleanor Price")
    assert "photo ID" in reply


def test_being_charged_to_fix_it_elsewhere_is_the_touch_up_policy(patient):
    reply = patient.reply("what if my brows end up uneven? another place tried to charge me to fix it")
    assert "14" in reply and "$12 per unit (most" not in reply


def test_moving_off_the_booked_day_to_another_offers_only_the_other(patient):
    book_botox(patient)  # Thursday afternoon
    reply = patient.reply("something came up thursday, can i move it to friday")
    days = set(re.findall(r"^\d\. (\w{3}) ", reply, re.MULTILINE))
    assert days == {"Fri"}


def test_is_there_any_way_to_get_a_day_is_a_request(patient):
    reply = patient.reply("is there any way to get a chemical peel this friday?")
    assert "Here are open times for Chemical Peel" in reply or "The nearest open times" in reply


def test_an_allergy_to_a_named_substance_also_goes_to_the_clinician(patient):
    reply = patient.reply("I'm allergic to lidocaine, is there numbing in the filler?")
    assert "numbing" in reply and "baby arrives" not in reply
    assert StaffAlert.objects.exists()


def test_the_times_sent_again(patient):
    offer = patient.reply("i want botox")
    again = patient.reply("sorry can you send me those times again? i deleted the text")
    listed = offer.split("Here are open times", 1)[1].split("Reply", 1)[0]
    assert again.startswith("Here are open times") and listed in again


def test_two_treatments_prices_and_durations(patient):
    reply = patient.reply("microneedling or a hydrafacial, price of each and how long does each take?")
    assert "$350" in reply and "$199" in reply and "60 minutes" in reply


def test_spanish_a_concern_then_how_much_and_accounting_records_are_not_medical(patient):
    patient.reply("tienen algo para las manchas del sol?")
    assert "$175" in patient.reply("y cuanto cuesta")
    reply = patient.reply("aceptan HSA? necesito el recibo para mis registros contables")
    assert "HSA" in reply and not StaffAlert.objects.exists()


def test_a_numbered_list_of_questions_gets_each_answer(patient):
    reply = patient.reply(
        "Hi, some questions:\n1. How much is microneedling?\n2. Is there a deposit?\n3. Where can I park?"
    )
    assert "$350" in reply and "$50 deposit" in reply and "Clarendon" in reply


def test_what_times_do_you_have_for_that_after_a_question_about_a_treatment(patient):
    patient.reply("can i use a gift card on a chemical peel?")
    assert "Here are open times for Chemical Peel" in patient.reply("great, what times do you have for that?")


def test_bringing_twins_goes_to_the_front_desk(patient):
    assert "front desk" in patient.reply("can i bring my twins to my appointment? they're babies")


def test_a_minors_age_beside_a_price_gets_the_age_rules(patient):
    reply = patient.reply("how much is lip filler? my daughter wants it but she's 16")
    assert "$650-$750" in reply and "18 or older" in reply


def test_the_loyalty_visit_count_is_the_loyalty_program(patient):
    reply = patient.reply("this is my 9th botox visit, so is the next one the free hydrafacial?")
    assert "10th" in reply


def test_a_laser_device_question_after_a_burn_also_goes_to_the_clinician(patient):
    patient.reply("what laser do you use for hair removal? another spa burned me last year")
    assert StaffAlert.objects.exists()


def test_is_the_deposit_on_top_asked_while_a_time_is_held_is_the_deposit_policy(patient):
    patient.reply("i want lip filler")
    patient.reply("the first one")
    reply = patient.reply("wait is the $50 on top of the filler price? and do i get it back if i cancel?")
    assert "24 hours" in reply and "per syringe" not in reply  # the deposit's rules, not the price card
    assert patient.conversation.state == Conversation.State.HOLDING


def test_redness_spreading_down_the_neck_with_chills_is_urgent(patient):
    reply = patient.reply("day 2 after my peel, still red and it's spreading down to my neck, and I have chills")
    assert reply.startswith("If this is an emergency") and StaffAlert.objects.filter(kind="urgent").exists()


def test_ok_after_the_deposit_link_is_acknowledged(patient):
    patient.reply("i want botox")
    patient.reply("1")
    patient.reply("Sam Ortiz")
    reply = patient.reply("ok")
    assert reply.startswith("Great! Your Botox on") and not StaffAlert.objects.exists()


def test_spanish_price_then_no_openings_is_all_spanish(patient):
    reply = patient.reply("quiero botox el domingo")
    assert reply.startswith("Botox cuesta $12") and "I don't see" not in reply and "Los mas cercanos" in reply


def test_spanish_medical_records_and_a_double_charge_go_to_staff(patient):
    assert "recepci" in patient.reply("me pueden mandar el récord médico a mi doctor?")


def test_spanish_aftercare_for_a_treatment_had_days_ago(patient):
    reply = patient.reply("me puse botox hace 2 dias, puedo hacer ejercicio?")
    assert "Here are open times" not in reply and "Horarios" not in reply
