"""The classes of mistake session 8's outside authors found (conversation/eval/, dev half), each pinned by
texts written here in other words: Spanish urgent symptoms are urgent; Spanish records and refunds, billing
discrepancies and complaints go to staff; "what if I cancelled" is answered, "cx" cancels, "don't cancel, move it"
moves; the day an appointment is on is not the day wanted; a changed mind picks the last day said; a photo with a word
or two is acknowledged; a bare name is thanked; the treatment named after "which treatment?" gets times; money and
parking emoji are read; Spanish answers quote the English documents; search is not led astray by a stray word. The
clock is pinned (Monday 10:15 in Boston), the demo clinic on its built-in calendar."""

import uuid
from datetime import datetime

import pytest

from conversation.models import Conversation
from knowledge.services import knowledge_search
from medspa.models import StaffAlert
from tests import test_outside_classes as _outside
from tests.test_assistant import CLINIC_NUMBER, booked
from tests.test_double_booking import book_botox, confirmed
from tests.test_outside_classes import offered_days

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned

URGENT_ES = "Si es una emergencia o le cuesta respirar, llame al 911 ahora."
QUOTED_ES = 'Esto es lo que dice la informacion de la clinica (en inglés): "'


def with_photo(patient, text: str) -> str:
    """A text sent with a photo attached (an MMS), as test_assistant sends one without text."""
    from messaging.services import inbound_receive

    photo = [{"url": "https://media.example.com/cheek.jpg", "content_type": "image/jpeg"}]
    with patient.capture(execute=True):
        inbound_receive(
            provider="telnyx", provider_message_id=str(uuid.uuid4()), from_number=patient.phone,
            to_number=CLINIC_NUMBER, body=text, media=photo,
        )  # fmt: skip
    (reply,) = patient._new()
    return reply


def handed_to_staff(patient) -> bool:
    c = patient.conversation
    return (c.owner == "staff" or c.needs_staff) and StaffAlert.objects.filter(kind="handoff").exists()


# --- Urgent symptoms in Spanish ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "me puse relleno ayer y hoy me esta costando respirar",
        "tengo dificultad para respirar desde el botox de esta mañana",
        "siento falta de aire desde el tratamiento de ayer",
        "despues del relleno en la mejilla la piel se puso blanca",
        "me hicieron los labios ayer y tengo un dolor muy fuerte",
        "tengo mucho dolor donde me pusieron el relleno",
    ],
)
def test_urgent_symptoms_in_spanish_get_the_urgent_script_and_an_urgent_alert(patient, text):
    reply = patient.reply(text)
    assert reply.startswith(URGENT_ES) and "Ya avisé a nuestro equipo" in reply
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.URGENT).exists()
    c = patient.conversation
    assert c.owner == "staff" and c.language == "es" and not booked().exists()


# --- What only staff can do, in Spanish and in English -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "necesito una copia de mi expediente médico por favor",
        "me pueden mandar mi historial clínico?",
        "quiero un reembolso del peeling, no me hizo nada",
        "todavia no me han devuelto el dinero del deposito",
    ],
)
def test_spanish_records_and_refunds_go_to_staff_and_nothing_is_booked(patient, text):
    reply = patient.reply(text)
    assert "recepcion" in reply and "horarios" not in reply
    assert handed_to_staff(patient) and not booked().exists()
    assert patient.conversation.state != Conversation.State.OFFERING


@pytest.mark.parametrize(
    "text",
    [
        "there's a billing discrepancy on my last statement",
        "i see two separate $50 charges on my card from you guys",
        "it's been three weeks and still no refund",
        "honestly not happy with my peel, i want it fixed or a refund",
    ],
)
def test_billing_refunds_and_complaints_go_to_staff(patient, text):
    reply = patient.reply(text)
    assert "front desk" in reply and "open times" not in reply
    assert handed_to_staff(patient) and not booked().exists()


# --- Cancelling: what if, shorthand, a change of mind ------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "if i end up cancelling thursday do i get the deposit back?",
        "if i had to cancel thursday would my deposit be refunded?",
        "how much notice do you need if i cancel, so i don't lose the deposit?",
    ],
)
def test_a_what_if_about_cancelling_is_answered_from_the_policy_and_cancels_nothing(patient, text):
    booking = book_botox(patient)
    reply = patient.reply(text)
    assert "24 hours" in reply and "Reply YES" not in reply
    booking.refresh_from_db()
    assert booking.status == "confirmed" and patient.conversation.confirming_cancel_id is None


@pytest.mark.parametrize("text", ["need to cx thursday", "pls cx my botox"])
def test_cx_is_a_cancellation_that_asks_for_yes_first(patient, text):
    booking = book_botox(patient)
    ask = patient.reply(text)
    assert ask.startswith("Reply YES to cancel your Botox on Thu Nov 26")
    booking.refresh_from_db()
    assert booking.status == "confirmed" and patient.conversation.confirming_cancel_id == booking.pk
    assert patient.reply("yes").startswith("Done: your Botox on Thu Nov 26")
    booking.refresh_from_db()
    assert booking.status == "cancelled" and not booked().exists()


def test_dont_cancel_move_it_instead_keeps_the_booking_and_offers_times(patient):
    first = book_botox(patient)
    assert patient.reply("i need to cancel my appointment").startswith("Reply YES to cancel")
    offer = patient.reply("hold on, i don't want to cancel. could we move it to next week instead?")
    assert offer.startswith("Here are open times for Botox:") and "cancelled" not in offer
    next_week = {"Mon Nov 30", "Tue Dec 1", "Wed Dec 2", "Thu Dec 3", "Fri Dec 4", "Sat Dec 5"}
    assert offered_days(offer) and offered_days(offer) <= next_week
    first.refresh_from_db()
    assert first.status == "confirmed" and booked().count() == 1
    assert patient.conversation.confirming_cancel_id is None
    moved = patient.reply("2")
    assert moved.startswith("Done! Your Botox is now") and "Your deposit carries over" in moved
    assert confirmed().count() == 1 and confirmed().get().rescheduled_from_id == first.pk


# --- Moving: the day it is on is not the day wanted --------------------------------------------------------------


@pytest.mark.parametrize("text", ["need to reschedule my thursday appt", "can i switch my thursday one?"])
def test_moving_the_thursday_appointment_is_not_a_wish_for_thursday(patient, text):
    booking = book_botox(patient)  # Thu Nov 26
    reply = patient.reply(text)
    assert "Here are open times for Botox" in reply or reply.endswith("?")  # times, or a question which day
    assert offered_days(reply) != {"Thu Nov 26"}  # never only the day it is on, as if that were the day wanted
    booking.refresh_from_db()
    assert booking.status == "confirmed" and booked().count() == 1


# --- Picks: a changed mind, a question that says "last" ----------------------------------------------------------


def test_a_changed_mind_picks_the_last_day_said(patient):
    offer = patient.reply("any botox times wednesday or friday?")
    assert offered_days(offer) == {"Wed Nov 25", "Thu Nov 26", "Fri Nov 27"}
    friday = next(s for s in patient.conversation.offered_slots if s["start"].startswith("2026-11-27"))
    reply = patient.reply("thursday... scratch that, friday")
    assert reply.startswith("Great choice: Fri Nov 27")
    held = patient.conversation.booking
    assert held.status == "held" and held.start == datetime.fromisoformat(friday["start"])


@pytest.mark.parametrize("text", ["how long does it usually last?", "and how long do the effects last"])
def test_how_long_it_lasts_while_times_are_offered_picks_no_time(patient, text):
    patient.reply("i want botox")
    assert patient.conversation.state == Conversation.State.OFFERING
    reply = patient.reply(text)
    assert not reply.startswith("Great choice") and "What name" not in reply
    assert patient.conversation.state == Conversation.State.OFFERING and not booked().exists()


def test_how_long_it_lasts_while_botox_is_offered_is_botoxs_answer(patient):
    patient.reply("i want botox")
    assert "3-4 months" in patient.reply("how long does it usually last?")


# --- A photo with a word or two; a bare name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "check this",
        "my lip",
        "look at this",
        "see?",
        "thoughts?",
    ],
)
def test_a_photo_with_a_word_or_two_is_acknowledged(patient, text):
    reply = with_photo(patient, text)
    assert reply.startswith("Thanks for the photo!") and "I don't have that information" not in reply
    c = patient.conversation
    assert c.needs_staff and c.owner == "assistant"
    assert StaffAlert.objects.filter(object_id=str(c.pk), kind="handoff").exists()


def test_a_bare_name_after_a_booking_is_thanked_not_handed_off(patient):
    booking = book_botox(patient)
    name = booking.patient_name
    assert patient.reply("Taylor Brooks") == "Thanks, Taylor! Anything else I can help with?"
    c = patient.conversation
    assert not c.needs_staff and c.owner == "assistant" and not StaffAlert.objects.exists()
    booking.refresh_from_db()
    assert booking.status == "confirmed" and booking.patient_name == name  # the name is not taken as a new one


# --- The treatment named after "which treatment?" ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text, service",
    [("hydrafacial i guess", "HydraFacial"), ("umm microneedling?", "Microneedling")],
)
def test_the_treatment_named_after_which_treatment_gets_times(patient, text, service):
    assert "Which treatment are you interested in?" in patient.reply("id like to make an appointment")
    reply = patient.reply(text)
    assert f"Here are open times for {service}:" in reply and "1. " in reply and "3. " in reply
    c = patient.conversation
    assert c.state == Conversation.State.OFFERING and c.service.name == service and not booked().exists()


# --- Emoji for a word ---------------------------------------------------------------------------------------------


def test_a_money_emoji_asks_the_price(patient):
    assert patient.reply("💲 for botox").startswith("Botox is $12 per unit")
    assert patient.conversation.state != Conversation.State.OFFERING


def test_a_parking_emoji_in_a_price_text_gets_the_parking_answer(patient):
    reply = patient.reply("how much is a hydrafacial and where do i 🅿️")
    assert reply.startswith("HydraFacial is $199.") and "parking garage" in reply
    assert not patient.conversation.needs_staff


def test_a_parking_emoji_question_on_its_own_gets_the_parking_answer(patient):
    reply = patient.reply("🅿️ on site?")
    assert "parking garage" in reply and not patient.conversation.needs_staff


# --- Spanish answers from English documents ----------------------------------------------------------------------


def test_a_spanish_question_answered_by_a_document_quotes_its_english(patient):
    reply = patient.reply("puedo ir al gimnasio despues del botox?")
    assert reply.startswith(QUOTED_ES) and reply.endswith('"')
    assert "24 hours" in reply[len(QUOTED_ES) :]
    assert patient.conversation.language == "es"


def test_a_spanish_price_and_a_document_the_price_said_in_spanish_the_document_quoted(patient):
    reply = patient.reply("cuanto cuesta el dysport y duele?")
    assert reply.startswith("Dysport cuesta $4.50 por unidad")
    price, quoted = reply.split(QUOTED_ES)
    assert " is " not in price and quoted.endswith('"') and "quick pinches" in quoted


def test_a_spanish_price_and_parking_question_gets_both(patient):
    reply = patient.reply("cuanto cuesta el hydrafacial y donde me puedo estacionar?")
    assert reply.startswith("HydraFacial cuesta $199.") and QUOTED_ES + "Parking" in reply


# --- Search: a stray word does not lead it to another service's document -----------------------------------------


def top_document(clinic, question):
    return next(r for r in knowledge_search(clinic=clinic, query=question) if r["kind"] == "document")


@pytest.mark.parametrize(
    "question",
    [
        "how long will botox last? my vacation ends in march",
        "how many months does botox last? want it till the season ends",
        pytest.param(
            "how long does botox last, need it to hold until the semester ends",
            marks=pytest.mark.xfail(strict=True, reason="'hold' puts the Deposit Policy first"),
        ),
    ],
)
def test_how_long_botox_lasts_finds_botox_not_another_services_document(demo, question):
    top = top_document(demo, question)
    assert top["title"] == "Botox Pricing, Units and Results"
    assert "last about 3-4 months" in top["answer"]


def test_how_long_botox_lasts_with_a_stray_word_is_answered_with_botox(patient):
    reply = patient.reply("how long will botox last? my vacation ends in march")
    assert "last about 3-4 months" in reply and "Laser" not in reply and "laser" not in reply


# --- Later rounds (session 8): in our own words ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "got botox 3 days ago and now my left eyelid is drooping and i see double",
        "after my filler last night the spot by my mouth went grey and it hurts",
        "the redness from the peel yesterday keeps spreading onto my chest",
        "did the microneedling at noon and now my throat feels tight",
        "ayer me pusieron relleno y hoy se me puso morada la mejilla",
        "me duele muchisimo el labio desde el relleno de ayer",
    ],
)
def test_more_urgent_symptoms_get_the_urgent_alert(patient, text):
    patient.reply(text)
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.URGENT).exists() and not booked().exists()


def test_a_symptom_only_in_the_history_gets_no_urgent_alert(patient):
    reply = patient.reply("fyi hx of eyelid ptosis after tox at another spa years ago, still want to try you guys")
    assert not StaffAlert.objects.filter(kind=StaffAlert.Kind.URGENT).exists()
    assert "911" not in reply


def test_a_plain_pick_beside_a_question_holds_the_time_and_answers(patient):
    patient.reply("i want botox")
    reply = patient.reply("the first one works. can i go to spin class after?")
    # the aftercare rule that answers it (spin class is a workout), chosen within the room beside the hold
    assert reply.startswith("Great choice:") and "\n\n" in reply and "No workouts" in reply.split("\n\n", 1)[1]
    assert patient.conversation.booking.status == "held"


def test_a_question_with_last_minute_in_it_picks_nothing(patient):
    patient.reply("i want botox")
    reply = patient.reply("is the deposit refundable? my shifts get swapped last minute sometimes")
    assert not reply.startswith("Great choice") and "24 hours" in reply and not booked().exists()


def test_a_topic_alone_while_times_are_offered_is_answered(patient):
    patient.reply("i want botox")
    reply = patient.reply("parking?")
    assert "Clarendon" in reply and patient.conversation.state == Conversation.State.OFFERING


@pytest.mark.parametrize(
    "text",
    ["my son is 17, can he get laser on his back?", "can my daughter get lip filler if i sign for her? she's 16"],
)
def test_a_minors_treatment_asked_about_gets_the_age_policy_not_times(patient, text):
    reply = patient.reply(text)
    assert "18" in reply and "open times" not in reply and not booked().exists()


@pytest.mark.parametrize(
    "text",
    [
        "you charged me $100 for a $50 deposit, i need the difference back",
        "can you dissolve filler from another injector",
        "mind if i film my appointment for my followers?",
    ],
)
def test_money_dissolving_and_filming_go_to_staff(patient, text):
    reply = patient.reply(text)
    assert "front desk" in reply and handed_to_staff(patient) and not booked().exists()


@pytest.mark.parametrize("text", ["do you guys do tattoo removal?", "any sculptra or PRP there?"])
def test_a_treatment_neither_in_the_catalog_nor_the_documents_is_not_offered(patient, text):
    reply = patient.reply(text)
    assert reply.startswith("That isn't a treatment we offer") and "$" not in reply


def test_a_booking_request_for_a_named_day_shows_the_price_first(patient):
    reply = patient.reply("can you fit me in for a chemical peel on friday")
    assert reply.startswith("Chemical Peel is $175. Here are open times for Chemical Peel:")


def test_a_pregnancy_said_as_expecting_is_answered_never_offered(patient):
    book_botox(patient)
    reply = patient.reply("so we're expecting!! can i still do my botox thursday?")
    assert "open times" not in reply and "pregnan" in reply.lower()
