"""Session 10's classes, each pinned by texts written here: "do you do <a treatment on the menu>?" is a yes with its
catalog price (in Spanish too), never a document about something beside it; a question about the clinic's ways that
no document speaks of ("walk-ins", "botox for migraines") goes to the team instead of a neighbouring answer; credit
cards find the payment methods, not a gift card's store credit; a multi-word treatment named beside a health word
does not outweigh it in search ("pregnant, is laser hair removal ok"), and a few ways of saying what a document is
about ("push my appt", "never had anything done", "nose to mouth"). The clock is pinned (Monday 10:15 in Boston), the
demo clinic on its built-in calendar."""

import pytest

from knowledge.services import knowledge_search
from tests import test_outside_classes as _outside
from tests.test_double_booking import book_botox
from tests.test_outside_classes_s8 import handed_to_staff

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned


@pytest.mark.parametrize(
    "text, price",
    [
        ("do you do microneedling?", "$350"),
        ("do you guys offer hydrafacials", "$199"),
        ("does your spa do dysport?", "$4.50"),
    ],
)
def test_asking_whether_the_clinic_does_a_treatment_on_its_menu_gets_yes_and_the_price(patient, text, price):
    reply = patient.reply(text)
    assert reply.startswith("Yes, we do!") and price in reply
    assert reply.endswith("Would you like me to find you a time?")
    assert not handed_to_staff(patient)


def test_the_yes_and_the_price_in_spanish(patient):
    reply = patient.reply("hola, ustedes hacen microneedling?")
    assert reply.startswith("Sí, lo ofrecemos.") and "$350" in reply


def test_yes_then_yes_please_offers_that_treatments_times(patient):
    patient.reply("do you do microneedling")
    reply = patient.reply("yes please")
    assert "open times for Microneedling" in reply


@pytest.mark.parametrize(
    "text",
    [
        "do you take walk-ins?",
        "do you guys take walkins",
        "do you do botox for migraines?",
        "do you do consultations over zoom?",
    ],
)
def test_a_question_about_the_clinics_ways_no_document_speaks_of_goes_to_the_team(patient, text):
    reply = patient.reply(text)
    assert reply.startswith("Good question! I don't have that information")
    assert handed_to_staff(patient)


@pytest.mark.parametrize("text", ["do you take credit cards?", "do you take cash", "do you accept apple pay?"])
def test_what_the_documents_do_say_is_answered(patient, text):
    reply = patient.reply(text)
    assert "Visa" in reply and not handed_to_staff(patient)


@pytest.mark.parametrize(
    "question, title",
    [
        ("can i put my deposit on a credit card", "Payment Methods, HSA/FSA and Insurance"),
        ("expecting a baby - is laser hair removal ok for me?", "Pregnancy and Breastfeeding"),
        ("can i push my appt back a week?", "Cancellation and Rescheduling Policy"),
        ("i have never had anything done, where should i start", "Free Consultations"),
        ("the creases from my nose to my mouth are getting deep", "Dermal Filler for Cheeks, Chin and Smile Lines"),
    ],
)
def test_search_finds_the_document_the_question_is_about(demo, question, title):
    assert knowledge_search(clinic=demo, query=question)[0]["title"] == title


def test_yes_to_a_time_with_the_provider_asked_about_offers_hers(patient):
    assert patient.reply("does dr johnson do lip filler?").startswith("Yes, Dr. Emily Johnson does Lip Filler.")
    reply = patient.reply("yes")
    assert "open times for Lip Filler" in reply and "Dr. Sarah Smith" not in reply


def test_one_question_among_statements_is_answered_by_what_it_asks(patient):
    reply = patient.reply("I'd like someone to look at my skin first. Is the consult free? My sister swears by you")
    assert "Consultations are free" in reply


@pytest.mark.parametrize(
    "question, words",
    [
        ("is it ok if i ride my bike over? where would i lock it", "bike racks"),
        ("can i go home and crash after filler or do i stay upright", "lie down"),
    ],
)
def test_texting_idioms_are_read_as_what_they_mean(demo, question, words):
    assert words in knowledge_search(clinic=demo, query=question)[0]["answer"]


@pytest.mark.parametrize(
    "text",
    ["who does the injections there?", "is it done by real doctors??", "MD or NP doing it?", "a dude or a lady doc?"],
)
def test_who_treats_is_answered_with_the_providers_names_and_titles(patient, text):
    reply = patient.reply(text)
    assert "Dr. Sarah Smith (MD, Medical Director)" in reply and "Dr. Emily Johnson (NP, Nurse Injector)" in reply


def test_who_does_a_treatment_only_one_provider_does_names_only_her(patient):
    reply = patient.reply("who does the hydrafacials?")
    assert reply.startswith("Dr. Sarah Smith (MD, Medical Director) does HydraFacial here.")
    assert "Johnson" not in reply


def test_who_is_doing_my_booking_is_answered_from_the_booking(patient):
    book_botox(patient)
    reply = patient.reply("who is doing my botox?")
    assert reply.startswith("Your Botox on ") and reply.endswith("is with Dr. Sarah Smith.")


def test_who_treats_in_spanish(patient):
    reply = patient.reply("hola, quien hace el botox?")
    assert "hacen Botox aqui" in reply and " y Dr. Sarah Smith" in reply
