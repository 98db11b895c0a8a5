"""The classes of mistake session 9's outside authors found (conversation/eval/ round 4, dev half), each pinned by
texts written here in other words: a filler area going pale or a blister after a peel is urgent (in Spanish too);
a double deposit charge and an interpreter go to staff; IV drips, nails and tattoo removal are not offered and the
whole menu is named; autocorrect's "cancer my appointment" cancels; Caribbean Spanish spelling is read; moving the
booked day "to a later one" offers days after it, "the following week" is next week; who is doing my booking is
answered from the booking; what-if, loyalty-program and "make sure" texts are not bookings; several questions in one
text get several answers; a question about the deposit while it is due is answered, not the link again; Spanish
searches find the English documents. The clock is pinned (Monday 10:15 in Boston), the demo clinic on its built-in
calendar."""

from datetime import datetime, timedelta

import pytest

from conversation.models import Conversation
from knowledge.services import knowledge_search
from medspa.models import StaffAlert
from tests import test_outside_classes as _outside
from tests.test_assistant import NOW
from tests.test_double_booking import book_botox, confirmed
from tests.test_outside_classes import offered_days
from tests.test_outside_classes_s8 import URGENT_ES, handed_to_staff

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned


# --- Urgent ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "two days after my lip filler the top lip looks white and mottled",
        "my chin went kind of grey and blotchy since the filler this morning",
        "had a peel on saturday and now i have blisters all over my forehead",
        "the area they injected yesterday it really hurts and its swollen",
        "since my botox on friday it's been difficult to swallow",
        "had tox two days ago and my breathing seems off, kind of labored",
    ],
)
def test_pale_or_blotchy_skin_blisters_real_pain_and_swallowing_trouble_are_urgent(patient, text):
    reply = patient.reply(text)
    assert "911" in reply
    assert StaffAlert.objects.filter(kind="urgent").exists()


@pytest.mark.parametrize(
    "text",
    [
        "me hice un peeling y me salieron ampollas en la frente",
        "tengo la mejilla roja y se me esta extendiendo hacia el ojo",
    ],
)
def test_spanish_blisters_and_spreading_redness_are_urgent(patient, text):
    assert patient.reply(text).startswith(URGENT_ES)
    assert StaffAlert.objects.filter(kind="urgent").exists()


# --- Staff, not the assistant --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "my bank shows i got charged for the deposit two times",
        "i was charged twice, can you refund one",
        "do you provide a sign language interpreter for appointments",
    ],
)
def test_a_double_charge_and_an_interpreter_go_to_staff(patient, text):
    reply = patient.reply(text)
    assert "front desk" in reply
    assert handed_to_staff(patient)


# --- Not offered ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["do you guys do vitamin iv drips", "can you remove an old tattoo on my shoulder", "do you do manicures"],
)
def test_treatments_the_clinic_does_not_list_are_not_offered_and_the_whole_menu_is_named(patient, text):
    reply = patient.reply(text)
    assert reply.startswith("That isn't a treatment we offer")
    assert "$" not in reply
    for name in ("Lip Filler", "Microneedling", "Botox", "Kybella"):
        assert name in reply


def test_iv_drips_asked_in_spanish_are_not_offered(patient):
    reply = patient.reply("ustedes ponen sueros de vitaminas?")
    assert reply.startswith("Lo siento, no ofrecemos ese tratamiento")


# --- Cancelling and moving -----------------------------------------------------------------------------------------


def test_autocorrects_cancer_my_appointment_asks_to_confirm_the_cancellation(patient):
    book_botox(patient)
    reply = patient.reply("so sorry i need to cancer my appointment")
    assert reply.startswith("Reply YES to cancel your Botox")
    assert confirmed().count() == 1


def test_moving_the_booked_day_to_a_later_one_offers_only_days_after_it(patient):
    booking = book_botox(patient)
    booked_day = booking.start.astimezone(booking.clinic.tz).date()
    weekday = booked_day.strftime("%a").lower()
    reply = patient.reply(f"i have to move {weekday}, whats the soonest you have after that")
    assert "Here are open times for Botox" in reply
    days = [datetime.strptime(f"{day} {booked_day.year}", "%a %b %d %Y").date() for day in offered_days(reply)]
    assert days and all(day > booked_day for day in days)
    patient.reply("1")
    assert confirmed().count() == 1 and confirmed().get().rescheduled_from_id == booking.pk


def test_the_following_week_is_next_week(patient):
    booking = book_botox(patient)
    reply = patient.reply("could we push it to the following week")
    assert "Here are open times for Botox" in reply
    year = booking.start.year
    days = [datetime.strptime(f"{day} {year}", "%a %b %d %Y").date() for day in offered_days(reply)]
    next_monday = NOW.date() + timedelta(days=7 - NOW.weekday())
    assert days and all(next_monday <= day < next_monday + timedelta(days=7) for day in days)


def test_who_is_doing_my_booking_is_answered_from_the_booking(patient):
    booking = book_botox(patient)
    reply = patient.reply("quick question, is dr smith the one seeing me for my botox?")
    assert reply.startswith("Yes: your Botox is on") and booking.provider.name in reply
    assert patient.conversation.state != Conversation.State.OFFERING


# --- Questions are not bookings ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "if i come in for a consultation could i get the filler done that same day?",
        "is there some sort of rewards program for regulars",
        "my sister gave me a gift card, how much is a hydrafacial, want to make sure it's enough",
    ],
)
def test_what_if_loyalty_and_make_sure_questions_are_answered_not_offered(patient, text):
    reply = patient.reply(text)
    assert "Here are open times" not in reply
    assert patient.conversation.state != Conversation.State.OFFERING


def test_a_question_after_a_comma_is_a_question(patient):
    reply = patient.reply("noticed a small bruise from my botox on friday, should i ice it")
    assert "Here are open times" not in reply
    assert "ice" in reply.lower()


def test_the_suite_number_while_booked_is_the_address(patient):
    book_botox(patient)
    reply = patient.reply("what floor? thurs")
    assert "third floor" in reply and "Here are open times" not in reply


# --- Several questions in one text ---------------------------------------------------------------------------------


def test_three_questions_in_one_text_get_the_duration_and_the_other_answers(patient):
    reply = patient.reply("is google pay ok? where do people usually park? and how long is a chemical peel")
    assert "45 minutes" in reply
    assert "Google Pay" in reply
    assert "Clarendon" in reply


def test_a_price_and_a_count_question_get_that_services_count(patient):
    reply = patient.reply("how much is microneedling and how many sessions does it usually take")
    assert "$350" in reply
    assert "3 sessions" in reply and "6-8" not in reply


def test_a_question_about_the_deposit_while_it_is_due_is_answered_not_the_link_again(patient):
    patient.reply("i want botox")
    patient.reply("thursday afternoon")
    patient.reply("1")
    patient.reply("jane doe")
    assert patient.conversation.state == Conversation.State.AWAITING_DEPOSIT
    reply = patient.reply("do i get the deposit back if i need to reschedule?")
    assert "24 hours" in reply and "/pay/" not in reply


# --- Spanish -------------------------------------------------------------------------------------------------------


def test_caribbean_spelling_picks_the_day(patient):
    offer = patient.reply("quiero botox")
    day = offer.split("\n")[2].split()[1]  # the second time's day: "mar", "mié", ...
    said = {"lun": "lune'", "mar": "marte'", "mié": "miercole'", "jue": "jueve'", "vie": "vierne'"}[day]
    reply = patient.reply(f"el {said} ta bien")
    assert reply.startswith("Excelente:") and patient.conversation.state == Conversation.State.HOLDING


def test_caribbean_who_is_this_names_the_clinic(patient):
    assert patient.reply("quien e' ustede?").startswith("Le escribe Glow Demo Med Spa")


def test_texting_shorthand_in_spanish_gets_the_price_and_the_address(patient):
    reply = patient.reply("cuanto m sale el hydrafacial? y tmb dnd quedan")
    assert "$199" in reply or "cuesta" in reply
    assert "Newbury" in reply


def test_a_bare_name_in_spanish_is_thanked_in_spanish(patient):
    patient.reply("hola, cuanto cuesta el botox?")
    assert patient.reply("Rosa Almonte").startswith("Gracias, Rosa.")


@pytest.mark.parametrize(
    "question, title",
    [
        ("cuantas sesiones de depilacion necesito?", "Laser Hair Removal Pricing and Sessions"),
        ("a que hora abren los sabados?", "Hours and Location"),
        ("estoy embarazada, puedo hacerme algo para las arrugas?", "Pregnancy and Breastfeeding"),
    ],
)
def test_spanish_questions_find_the_english_documents(demo, question, title):
    assert knowledge_search(clinic=demo, query=question)[0]["title"] == title


def test_a_result_that_did_not_show_finds_the_touch_up_policy(demo):
    results = knowledge_search(clinic=demo, query="its been ten days and i still see lines between my brows")
    assert results[0]["title"] == "Botox Touch-Up Policy"


# --- Round 5's classes (session 9, later) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "whats the price on laser tattoo removal for a small one",
        "how much do you charge for teeth whitening",
    ],
)
def test_a_price_asked_for_a_treatment_not_offered_is_not_a_neighbours_price(patient, text):
    reply = patient.reply(text)
    assert reply.startswith("That isn't a treatment we offer") and "$" not in reply


@pytest.mark.parametrize(
    "text",
    [
        "what if i hate how it looks, does botox wear off eventually?",
        "a tiktok influencer said you can get filler while nursing, true?",
    ],
)
def test_a_hypothetical_dislike_and_a_quoted_influencer_are_answered_not_handed_off(patient, text):
    reply = patient.reply(text)
    assert "front desk" not in reply
    assert patient.conversation.owner == "assistant"


def test_typos_of_cancel_appointment_and_thursday_still_cancel(patient):
    book_botox(patient)
    assert patient.reply("pls cancle my appointmnt thrusday").startswith("Reply YES to cancel your Botox")


def test_a_phonetic_botox_gets_botox_times(patient):
    reply = patient.reply("do u have botocks openings tomorrow")
    assert "open times for Botox" in reply or "Botox openings" in reply


def test_the_day_one_picks_it_after_reasons_against_the_others(patient):
    offer = patient.reply("i want botox")
    days = [line.split()[1] for line in offer.split("\n")[1:4]]
    names = {"Mon": "monday", "Tue": "tuesday", "Wed": "wednesday", "Thu": "thursday", "Fri": "friday"}
    first, last = names[days[0]], names[days[2]]
    reply = patient.reply(f"{first} i'm not free at all, so the {last} one at 9 or whenever it is would be best")
    assert reply.startswith("Great choice:") and days[2] in reply


def test_a_numeric_date_picks_the_time_on_that_date(patient):
    offer = patient.reply("i want botox")
    line = offer.split("\n")[2]  # "2. Tue Nov 24, 9:00 AM ET with ..."
    when = datetime.strptime(f"{' '.join(line.split()[2:4]).rstrip(',')} {NOW.year}", "%b %d %Y")
    reply = patient.reply(f"{when.month}/{when.day} works")
    assert reply.startswith("Great choice:") and line.split()[2] in reply


def test_before_a_date_is_the_days_up_to_it_not_that_day(patient):
    target = NOW.date() + timedelta(days=10)
    reply = patient.reply(f"can i get a hydrafacial sometime before the {target.day}th")
    assert "Here are open times for HydraFacial" in reply
    days = [datetime.strptime(f"{day} {NOW.year}", "%a %b %d %Y").date() for day in offered_days(reply)]
    assert days and all(day < target for day in days)


def test_an_event_date_beside_a_question_is_not_a_wish_for_that_day(patient):
    reply = patient.reply("how much is a hydrafacial and will my skin be red after? my wedding is on 12/19")
    assert "$199" in reply and "Here are open times" not in reply


def test_the_treatment_wanted_after_a_change_of_mind_is_the_one_booked(patient):
    reply = patient.reply("i was thinking about a peel but i really want a hydrafacial, anything friday?")
    assert "open times for HydraFacial" in reply or "HydraFacial openings" in reply


def test_the_treatment_in_the_sentence_that_asks_for_times_is_the_one_offered(patient):
    reply = patient.reply(
        "my lips have always been thin and it bugs me. anyway, could i possibly come in for a hydrafacial next week?"
    )
    assert "open times for HydraFacial" in reply and "$199" in reply


def test_remind_me_when_is_the_booking(patient):
    booking = book_botox(patient)
    day = booking.start.astimezone(booking.clinic.tz).strftime("%A").lower()
    reply = patient.reply(f"sorry can you remind me what time {day} is")
    assert reply.startswith("Your Botox is on") and "Here are open times" not in reply


def test_sweating_treatment_goes_to_staff(patient):
    reply = patient.reply("is botox an option for my sweaty palms")
    assert "front desk" in reply and handed_to_staff(patient)


def test_a_gift_card_for_someone_is_not_a_booking(patient):
    reply = patient.reply("i want to buy my mom a gift card, can it be printed for pickup?")
    assert "Which treatment" not in reply and "Here are open times" not in reply


def test_a_health_question_that_also_asks_for_a_day_gets_no_offer(patient):
    reply = patient.reply("I'm on accutane still. Could I do a chemical peel this friday?")
    assert "Here are open times" not in reply
    assert "isotretinoin" in reply.lower() or "accutane" in reply.lower()


@pytest.mark.parametrize(
    "text",
    [
        "el gerente por favor, la ultima vez me atendieron pesimo",
        "me cobraron dos veces el deposito, quiero que me devuelvan el dinero",
    ],
)
def test_spanish_complaints_and_double_charges_go_to_staff(patient, text):
    patient.reply(text)
    assert handed_to_staff(patient)


def test_spanish_who_does_the_botulinum_toxin_is_the_providers(patient):
    reply = patient.reply("¿Cuál profesional aplica la toxina botulínica?")
    assert "Smith" in reply or "Johnson" in reply


def test_spanish_thread_lifts_are_not_offered(patient):
    assert patient.reply("hacen hilos tensores?").startswith("Lo siento, no ofrecemos ese tratamiento")


def test_a_spanish_thank_you_after_a_booking_is_not_taken_for_a_name(patient):
    patient.reply("hola, cuanto cuesta el botox?")
    assert not patient.reply("Entendido, gracias").startswith("Gracias, Entendido")
