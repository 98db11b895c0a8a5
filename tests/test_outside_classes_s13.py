"""Session 13's classes, each pinned by texts written here: what to bring to a visit (a photo ID) is the first-visit
document, whatever else the text says of the day. The clock is pinned (Monday 10:15 in Boston), the demo clinic on
its built-in calendar."""

import pytest

from conversation.models import Conversation
from tests import test_outside_classes as _outside
from tests.test_double_booking import book_botox

patient = _outside.patient  # the same fixture: the demo clinic, the clock pinned


@pytest.mark.parametrize(
    "text",
    [
        "anything i need to bring with me on thursday?",
        "should i have my drivers license on me for the appointment",
        "what do i bring to my first appt",
    ],
)
def test_what_to_bring_is_the_photo_id(patient, text):
    book_botox(patient)
    reply = patient.reply(text)
    assert "photo ID" in reply
    assert patient.conversation.rescheduling_id is None
    assert patient.conversation.state != Conversation.State.OFFERING


def test_a_friend_along_is_not_the_photo_id(patient):
    reply = patient.reply("can i bring a friend with me?")
    assert "photo ID" not in reply


@pytest.mark.parametrize(
    "text",
    ["who's your medical director and who is the nurse injector?", "who are your providers?", "who r ur injectors?"],
)
def test_who_the_providers_are_names_them_all(patient, text):
    reply = patient.reply(text)
    assert "Dr. Sarah Smith" in reply and "Dr. Emily Johnson" in reply


@pytest.mark.parametrize(
    "text",
    [
        "my lips are going kinda purple and numb since the filler this morning",
        "top lip looks a bit blue since my filler yesterday",
    ],
)
def test_a_lip_turning_blue_or_purple_is_urgent(patient, settings, text):
    settings.CONVERSATION_INTENT_MODEL = False  # the rules alone know it
    reply = patient.reply(text)
    assert "call 911" in reply
    assert patient.conversation.owner == Conversation.Owner.STAFF
