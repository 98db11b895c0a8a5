"""Every text that states a time carries the clinic's zone ("Mon Nov 2, 9:00 AM ET"), on the clinic's wall clock,
on both sides of a DST change (Boston falls back on Sun 2026-11-01 and springs forward on Sun 2027-03-14)."""

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from bookings.models import Booking
from bookings.services import booking_confirmation_text, booking_received_text
from medspa.timetext import time_label, when_label, zone_label
from tests.test_assistant import Patient

BOSTON = ZoneInfo("America/New_York")
# A time with a zone, as every text must write it; a time without one is the bug this file is about.
LABELLED = re.compile(r"\b\d{1,2}:\d{2} [AP]M ET\b")
CLOCK = re.compile(r"\b\d{1,2}:\d{2} [AP]M\b")


def every_time_labelled(text: str) -> bool:
    return len(CLOCK.findall(text)) == len(LABELLED.findall(text)) > 0


@pytest.mark.parametrize(
    "moment, expected",
    [
        (datetime(2026, 10, 30, 13, 0, tzinfo=UTC), "Fri Oct 30, 9:00 AM ET"),  # EDT, UTC-4
        (datetime(2026, 11, 2, 14, 0, tzinfo=UTC), "Mon Nov 2, 9:00 AM ET"),  # EST, UTC-5
        (datetime(2027, 3, 12, 14, 0, tzinfo=UTC), "Fri Mar 12, 9:00 AM ET"),  # EST
        (datetime(2027, 3, 15, 13, 0, tzinfo=UTC), "Mon Mar 15, 9:00 AM ET"),  # EDT
        (datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "Sun Nov 1, 1:30 AM ET"),  # the hour that happens twice: first
        (datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "Sun Nov 1, 1:30 AM ET"),  # ... and second
    ],
)
def test_boston_times_are_local_and_labelled_et_on_both_sides_of_dst(moment, expected):
    assert when_label(moment, BOSTON) == expected


@pytest.mark.parametrize(
    "zone, january, july",
    [
        ("America/Chicago", "CT", "CT"),
        ("America/Denver", "MT", "MT"),
        ("America/Phoenix", "MST", "MST"),  # no DST: "MT" would be wrong in summer, when Denver is an hour ahead
        ("America/Los_Angeles", "PT", "PT"),
        ("America/Anchorage", "AKT", "AKT"),
        ("Pacific/Honolulu", "HST", "HST"),
        ("Europe/London", "GMT", "BST"),  # not of the ?ST/?DT shape: the exact name of the moment
        ("America/Sao_Paulo", "UTC-3", "UTC-3"),  # zoneinfo names it only by its offset
    ],
)
def test_other_zones_use_their_own_name(zone, january, july):
    tz = ZoneInfo(zone)
    assert zone_label(datetime(2027, 1, 15, 18, tzinfo=UTC), tz) == january
    assert zone_label(datetime(2027, 7, 15, 18, tzinfo=UTC), tz) == july


def test_time_label_and_the_hour_follow_the_zone():
    assert time_label(datetime(2027, 7, 15, 18, 5, tzinfo=UTC), ZoneInfo("America/Phoenix")) == "11:05 AM MST"
    assert time_label(datetime(2027, 7, 15, 18, 5, tzinfo=UTC), ZoneInfo("America/Denver")) == "12:05 PM MT"


@pytest.mark.parametrize(
    "now, day, first_utc",
    [
        # Friday before clocks go back (EDT) -> Monday after (EST): 9:00 AM is 14:00 UTC.
        (datetime(2026, 10, 30, 14, 15, tzinfo=UTC), "Mon Nov 2", datetime(2026, 11, 2, 14, 0, tzinfo=UTC)),
        # Friday before clocks go forward (EST) -> Monday after (EDT): 9:00 AM is 13:00 UTC.
        (datetime(2027, 3, 12, 15, 15, tzinfo=UTC), "Mon Mar 15", datetime(2027, 3, 15, 13, 0, tzinfo=UTC)),
    ],
)
def test_every_booking_text_states_its_times_with_the_zone_across_a_dst_change(
    demo, django_capture_on_commit_callbacks, sms_outbox, now, day, first_utc
):
    with time_machine.travel(now, tick=False):
        patient = Patient(django_capture_on_commit_callbacks, sms_outbox)
        offer = patient.reply("botox monday morning")
        assert f"1. {day}, 9:00 AM ET with" in offer and every_time_labelled(offer)
        patient.reply("1")
        hold = patient.reply("jane doe")
        assert f"holding Botox on {day}, 9:00 AM ET" in hold and every_time_labelled(hold)  # and "until ... ET"
        booking = Booking.objects.get(patient_phone=patient.phone)
        assert booking.start == first_utc  # the wall-clock hour, not the offset of the day it was offered
        (confirmation,) = patient.pay()
        assert f"{day}, 9:00 AM ET" in confirmation and every_time_labelled(confirmation)
        ask = patient.reply("can i reschedule?")
        assert f"{day}, 9:00 AM ET" in ask and every_time_labelled(ask)
        offer = patient.reply("tuesday morning")
        assert every_time_labelled(offer)
        moved = patient.reply("1")
        assert "Done! Your Botox is now" in moved and every_time_labelled(moved)
        question = patient.reply("i need to cancel my appointment")
        assert question.startswith("Reply YES to cancel your Botox on") and every_time_labelled(question)
        cancelled = patient.reply("yes")
        assert "is cancelled" in cancelled and every_time_labelled(cancelled)


def test_confirmation_and_received_texts_carry_the_zone(demo):
    booking = Booking(
        clinic=demo,
        service=demo.services.get(name="Botox"),
        provider=demo.providers.first(),
        start=datetime(2026, 11, 2, 14, 0, tzinfo=UTC),
        end=datetime(2026, 11, 2, 14, 30, tzinfo=UTC),
        deposit_cents=5000,
    )
    assert "Mon Nov 2, 9:00 AM ET" in booking_confirmation_text(booking)
    assert "Mon Nov 2, 9:00 AM ET" in booking_received_text(booking)
