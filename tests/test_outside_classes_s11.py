"""Session 11's classes, each pinned by texts written here: a question after a statement ("first time. does it
hurt and how long does it last") is split from it and answered with the other questions, each searched with the
treatment the conversation is about; the statement before a question is its context ("got a gift card. does it
expire?"); an amount stated about what the question names answers it ("how long is the peeling"); labelled sections
("Parking: ...") answer what their label names. The clock is pinned (Monday 10:15 in Boston), the demo clinic on its
built-in calendar."""

import re

from conversation.rules import _question_clauses
from tests import test_outside_classes as _outside

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned


def test_a_statement_is_split_from_the_questions_and_is_the_next_ones_context():
    assert _question_clauses("first time ever. does it hurt and how long does it last") == [
        "first time ever does it hurt",
        "how long does it last",
    ]
    assert _question_clauses("I have a gift card from my mom. Does it expire? Thanks!") == [
        "i have a gift card from my mom does it expire"
    ]


def test_two_questions_after_a_statement_get_two_answers_about_the_treatment_on_offer(patient):
    patient.reply("how much is botox")
    reply = patient.reply("ok nervous newbie here. does it hurt much and how long before it wears off")
    assert "pinches" in reply  # the pain answer
    assert "3-4 months" in reply  # how long Botox lasts, though the text does not name it


def test_how_long_the_peeling_lasts_is_the_peeling_not_the_appointment(patient):
    reply = patient.reply("thinking about a chemical peel, how long does the peeling go on for?")
    assert "5-7 days" in reply


def test_parking_close_by_is_the_parking_section(patient):
    reply = patient.reply("is there any parking close by?")
    assert "Clarendon" in reply and "Bluebikes" not in reply


def test_how_much_time_asks_for_a_duration_not_a_price(patient):
    reply = patient.reply("how much time does cheek filler stay in before it fades?")
    assert "9-18 months" in reply


def test_giving_the_deposit_back_is_a_refund(patient):
    reply = patient.reply("would you give my deposit back if i cancel 2 days before?")
    assert "refunded" in reply and "$50" in reply


def test_a_spanish_question_about_the_deposit_is_not_a_price_question(patient):
    patient.reply("cuanto cuesta el botox")
    reply = patient.reply("¿y el depósito se resta del total?")
    assert "$50" in reply and "Botox cuesta" not in reply


def test_later_in_the_day_while_times_are_on_offer_offers_later_times_not_a_pick(patient):
    patient.reply("i want a hydrafacial")
    reply = patient.reply("got anything later in the day? maybe 3 or 4")
    assert "Here are open times" in reply and "Great choice" not in reply
    assert all(int(hour) >= 3 for hour in re.findall(r", (\d+):\d\d PM", reply))
    assert "Great choice" in patient.reply("the earliest one works")
