"""conversation.parsing: how the offline engine reads patients' texts. Pure functions: no database, no network."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from conversation.parsing import (
    INTENTS,
    ServiceName,
    TimeWindow,
    find_services,
    intents,
    normalise,
    parse_choice,
    parse_name,
    parse_when,
)

TZ = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 23, 10, 15, tzinfo=TZ)  # Monday, 10:15 EST


def local(text: str) -> datetime:
    """'2026-11-26 12:00' as an aware datetime in the clinic's zone."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=TZ)


# ---------------------------------------------------------------------------------------------------------- normalise
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tmrw @ 3pm pls", "tomorrow 3pm please"),
        ("Thurs?", "thursday?"),
        ("Can u do it w/ Botox", "can you do it with botox"),
        ("Café   CRÈME", "cafe creme"),
        ("I can't make my appt", "i cant make my appointment"),
        ("$300 for 12/3 at 3:30?", "$300 for 12/3 at 3:30?"),
        ("3 P.M. works", "3pm works"),
        ("We'd like Wed", "wed like wednesday"),
        ("1-3pm", "1 to 3pm"),
        ("Hey!!! how r u", "hey how are you"),
        ("thx, ty", "thanks thank you"),
        ("  a.s.a.p.  ", "asap"),
        ("name: jane", "name jane"),
    ],
)
def test_normalise(text, expected):
    assert normalise(text) == expected


# ------------------------------------------------------------------------------------------------------------ services
CATALOG = [
    ServiceName(1, "Botox", ("tox", "botulinum", "wrinkle relaxer")),
    ServiceName(2, "Dermal Filler", ("filler",)),
    ServiceName(3, "Lip Filler", ("lip flip",)),
    ServiceName(4, "HydraFacial", ("facial",)),
    ServiceName(5, "Chemical Peel", ("peel",)),
    ServiceName(6, "Microneedling", ("micro needling",)),
    ServiceName(7, "Laser Hair Removal", ("laser",)),
    ServiceName(8, "IPL", ("photofacial",)),
    ServiceName(9, "Consultation", ("consult",)),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how much is botox", [1]),
        ("BOTOX?", [1]),
        ("botx", [1]),
        ("how much for tox", [1]),
        ("i got botoxed last year", [1]),
        ("wrinkle relaxer", [1]),
        ("fillr for my cheeks", [2]),
        ("fillers", [2]),
        ("lip filler", [3]),
        ("botox and filler", [1, 2]),
        ("filler and botox, and more botox", [2, 1]),
        ("hydrafacial", [4]),
        ("hydra facial", [4]),
        ("Hydrafacials", [4]),
        ("do you do facials", [4]),
        ("photo facial", [8]),
        ("ipl", [8]),
        ("a chemical peel", [5]),
        ("peels?", [5]),
        ("micro-needling", [6]),
        ("microneedling", [6]),
        ("lazer hair removal", [7]),
        ("a consult first", [9]),
        ("consultation", [9]),
        ("see you later", []),
        ("i feel great", []),
        ("how much", []),
        ("tx", []),
        ("b", []),
        ("lips", []),
        ("", []),
    ],
)
def test_find_services(text, expected):
    assert find_services(text, CATALOG) == expected


def test_find_services_short_alias_only_exactly():
    catalog = [ServiceName(1, "Hyaluronic Acid", ("ha",)), ServiceName(2, "PRP")]
    assert find_services("is ha the same as prp", catalog) == [1, 2]
    assert find_services("hah ok", catalog) == []
    assert find_services("prn", catalog) == []


# ------------------------------------------------------------------------------------------------------------- intents
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("how much is botox", {"price"}),
        ("how much is botox and can i book thursday", {"price", "book"}),
        ("can i come thursday afternoon", {"book"}),
        ("any openings friday?", {"book"}),
        ("i want botox", {"book"}),
        ("what do you charge for filler", {"price"}),
        ("$$?", {"price"}),
        ("i need to cancel my appointment", {"cancel"}),
        ("cant make it tmrw", {"cancel"}),
        ("can't make it thursday, can we do friday instead", {"reschedule"}),
        ("need to reschedule", {"reschedule"}),
        ("can i move my appt to friday", {"reschedule"}),
        ("is there a different time", {"reschedule"}),
        ("talk to a person", {"human"}),
        ("can i speak to someone", {"human"}),
        ("call me please", {"human"}),
        ("are you a bot?", {"human"}),
        ("i want to talk to a real person", {"human"}),
        ("yes", {"yes"}),
        ("Yeah that works", {"yes"}),
        ("y", {"yes"}),
        ("ok", {"yes"}),
        ("sounds good", {"yes"}),
        ("perfect!", {"yes"}),
        ("confirm", {"yes"}),
        ("no", {"no"}),
        ("nope", {"no"}),
        ("none of those work", {"no"}),
        ("not those", {"no"}),
        ("neither", {"no"}),
        ("not sure", set()),
        ("no problem", set()),
        ("hi", {"greeting"}),
        ("hello, how much is filler?", {"greeting", "price"}),
        ("thanks!", {"thanks"}),
        ("thank you so much", {"thanks"}),
        ("ty", {"thanks"}),
        ("thx", {"thanks"}),
        ("do you do lip filler", {"question"}),
        ("is botox safe?", {"question"}),
        ("what are your hours", {"question"}),
        ("can i get botox thursday", {"book"}),
        ("what's your availability", {"book"}),
        ("rates?", {"price"}),
        ("please cancel and book me for friday", {"cancel", "book"}),
        ("can i change my appointment", {"reschedule"}),
        ("another time maybe", {"reschedule"}),
        ("can i get the front desk", {"human"}),
        ("representative", {"human"}),
        ("let me talk to your staff", {"human"}),
        ("can someone call me", {"human"}),
        ("is someone available thursday?", {"book"}),
        ("do your staff do filler", {"question"}),
        ("no thanks", {"no", "thanks"}),
        ("perfect thank you", {"yes", "thanks"}),
        ("i am not sure", set()),
        ("how much time does it take", {"question"}),
    ],
)
def test_intents(text, expected):
    found = intents(text)
    assert found == expected
    assert found <= set(INTENTS)


# ---------------------------------------------------------------------------------------------------------------- when
@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        # weekdays: the next occurrence, today included while still ahead
        ("thursday", "2026-11-26 00:00", "2026-11-27 00:00", "Thursday"),
        ("thu?", "2026-11-26 00:00", "2026-11-27 00:00", "Thursday"),
        ("thurs afternoon", "2026-11-26 12:00", "2026-11-26 17:00", "Thursday afternoon"),
        ("can i come thursday afternoon", "2026-11-26 12:00", "2026-11-26 17:00", "Thursday afternoon"),
        ("thrusday morning", "2026-11-26 08:00", "2026-11-26 12:00", "Thursday morning"),
        ("wendsday", "2026-11-25 00:00", "2026-11-26 00:00", "Wednesday"),
        ("tuesday", "2026-11-24 00:00", "2026-11-25 00:00", "Tuesday"),
        ("this friday", "2026-11-27 00:00", "2026-11-28 00:00", "Friday"),
        ("next tuesday", "2026-12-01 00:00", "2026-12-02 00:00", "Tuesday, December 1"),
        ("thursday next week", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("next thursday afternoon", "2026-12-03 12:00", "2026-12-03 17:00", "Thursday, December 3 afternoon"),
        ("monday", "2026-11-23 10:15", "2026-11-24 00:00", "Monday"),
        ("monday morning", "2026-11-23 10:15", "2026-11-23 12:00", "Monday morning"),
        ("monday at 9", "2026-11-30 09:00", "2026-11-30 10:00", "Monday, November 30 at 9 AM"),
        ("sat morning", "2026-11-28 08:00", "2026-11-28 12:00", "Saturday morning"),
        ("sunday at 11", "2026-11-29 11:00", "2026-11-29 12:00", "Sunday at 11 AM"),
        ("late afternoon friday", "2026-11-27 15:00", "2026-11-27 17:00", "Friday late afternoon"),
        ("fri 4ish", "2026-11-27 15:00", "2026-11-27 17:00", "Friday around 4 PM"),
        ("1-3pm friday", "2026-11-27 13:00", "2026-11-27 15:00", "Friday between 1 and 3 PM"),
        ("thursday after 5", "2026-11-26 17:00", "2026-11-27 00:00", "Thursday after 5 PM"),
        # several days: first..end of last
        ("monday or tuesday", "2026-11-23 10:15", "2026-11-25 00:00", "Monday or Tuesday"),
        ("wed or thurs afternoon", "2026-11-25 12:00", "2026-11-26 17:00", "Wednesday or Thursday afternoons"),
        ("mon-wed", "2026-11-23 10:15", "2026-11-26 00:00", "Monday to Wednesday"),
        ("tomorrow or thursday", "2026-11-24 00:00", "2026-11-27 00:00", "tomorrow or Thursday"),
        # relative days
        ("today", "2026-11-23 10:15", "2026-11-24 00:00", "today"),
        ("tonight", "2026-11-23 17:00", "2026-11-23 21:00", "tonight"),
        ("tonight at 7", "2026-11-23 19:00", "2026-11-23 20:00", "tonight at 7 PM"),
        ("this afternoon", "2026-11-23 12:00", "2026-11-23 17:00", "this afternoon"),
        ("tomorrow", "2026-11-24 00:00", "2026-11-25 00:00", "tomorrow"),
        ("tmrw after 3", "2026-11-24 15:00", "2026-11-25 00:00", "tomorrow after 3 PM"),
        ("tmr morning", "2026-11-24 08:00", "2026-11-24 12:00", "tomorrow morning"),
        ("tommorow at 11", "2026-11-24 11:00", "2026-11-24 12:00", "tomorrow at 11 AM"),
        ("first thing tomorrow", "2026-11-24 08:00", "2026-11-24 10:00", "tomorrow first thing"),
        ("lunchtime tomorrow", "2026-11-24 11:30", "2026-11-24 13:30", "tomorrow at lunchtime"),
        ("the day after tomorrow", "2026-11-25 00:00", "2026-11-26 00:00", "Wednesday"),
        # spans
        ("next week", "2026-11-30 00:00", "2026-12-07 00:00", "next week"),
        ("sometime next week?", "2026-11-30 00:00", "2026-12-07 00:00", "next week"),
        ("next week mornings", "2026-11-30 08:00", "2026-12-06 12:00", "next week mornings"),
        ("early next week", "2026-11-30 00:00", "2026-12-03 00:00", "early next week"),
        ("this week", "2026-11-23 10:15", "2026-11-30 00:00", "this week"),
        ("later this week", "2026-11-24 00:00", "2026-11-30 00:00", "later this week"),
        ("end of the week", "2026-11-26 00:00", "2026-11-30 00:00", "the end of the week"),
        ("weekend", "2026-11-28 00:00", "2026-11-30 00:00", "this weekend"),
        ("this wknd", "2026-11-28 00:00", "2026-11-30 00:00", "this weekend"),
        ("next weekend", "2026-12-05 00:00", "2026-12-07 00:00", "next weekend"),
        ("saturday", "2026-11-28 00:00", "2026-11-29 00:00", "Saturday"),
        # dates
        ("dec 3", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("12/3", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("december 3rd", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("3rd of december", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("the 3rd", "2026-12-03 00:00", "2026-12-04 00:00", "Thursday, December 3"),
        ("on the 25th?", "2026-11-25 00:00", "2026-11-26 00:00", "Wednesday, November 25"),
        ("dec 3 at 2", "2026-12-03 14:00", "2026-12-03 15:00", "Thursday, December 3 at 2 PM"),
        ("jan 5", "2027-01-05 00:00", "2027-01-06 00:00", "Tuesday, January 5"),
        ("11/20", "2027-11-20 00:00", "2027-11-21 00:00", "Saturday, November 20, 2027"),
        # daily times alone: today if still ahead, else tomorrow
        ("morning", "2026-11-23 10:15", "2026-11-23 12:00", "this morning"),
        ("in the am", "2026-11-23 10:15", "2026-11-23 12:00", "this morning"),
        ("afternoon", "2026-11-23 12:00", "2026-11-23 17:00", "this afternoon"),
        ("evening", "2026-11-23 17:00", "2026-11-23 21:00", "tonight"),
        ("after work", "2026-11-23 17:00", "2026-11-23 21:00", "today after work"),
        ("lunch", "2026-11-23 11:30", "2026-11-23 13:30", "today at lunchtime"),
        ("after 3", "2026-11-23 15:00", "2026-11-24 00:00", "today after 3 PM"),
        ("after 3:30pm", "2026-11-23 15:30", "2026-11-24 00:00", "today after 3:30 PM"),
        ("before noon", "2026-11-23 10:15", "2026-11-23 12:00", "today before noon"),
        ("before 11", "2026-11-23 10:15", "2026-11-23 11:00", "today before 11 AM"),
        ("before 9", "2026-11-24 00:00", "2026-11-24 09:00", "tomorrow before 9 AM"),
        ("around 2", "2026-11-23 13:00", "2026-11-23 15:00", "today around 2 PM"),
        ("at 2", "2026-11-23 14:00", "2026-11-23 15:00", "today at 2 PM"),
        ("2pm", "2026-11-23 14:00", "2026-11-23 15:00", "today at 2 PM"),
        ("2 p.m.", "2026-11-23 14:00", "2026-11-23 15:00", "today at 2 PM"),
        ("3:30", "2026-11-23 15:30", "2026-11-23 16:30", "today at 3:30 PM"),
        ("between 1 and 3", "2026-11-23 13:00", "2026-11-23 15:00", "today between 1 and 3 PM"),
        ("between 11 and 1", "2026-11-23 11:00", "2026-11-23 13:00", "today between 11 AM and 1 PM"),
        ("morning at 7", "2026-11-24 07:00", "2026-11-24 08:00", "tomorrow at 7 AM"),
        ("good morning! can i come friday", "2026-11-27 00:00", "2026-11-28 00:00", "Friday"),
        ("Friday Dec 4th at 10am", "2026-12-04 10:00", "2026-12-04 11:00", "Friday, December 4 at 10 AM"),
        ("Monday 11/30", "2026-11-30 00:00", "2026-12-01 00:00", "Monday, November 30"),
        ("before 5 on friday", "2026-11-27 00:00", "2026-11-27 17:00", "Friday before 5 PM"),
        ("3 o'clock tmrw", "2026-11-24 15:00", "2026-11-24 16:00", "tomorrow at 3 PM"),
        ("i work 9-5 so after 5", "2026-11-23 17:00", "2026-11-24 00:00", "today after 5 PM"),
        ("can i come in at 3 tomorrow", "2026-11-24 15:00", "2026-11-24 16:00", "tomorrow at 3 PM"),
        ("tomorrow around noon", "2026-11-24 11:00", "2026-11-24 13:00", "tomorrow around noon"),
        ("any evening next week", "2026-11-30 17:00", "2026-12-06 21:00", "next week evenings"),
    ],
)
def test_parse_when(text, start, end, label):
    window = parse_when(text, now=NOW, tz=TZ)
    assert window is not None
    assert (window.start, window.end, window.label) == (local(start), local(end), label)
    assert not window.asap
    assert window.start >= NOW and window.end > window.start


@pytest.mark.parametrize(
    ("text", "label", "day_start", "day_end"),
    [
        ("asap", "the soonest time", None, None),
        ("as soon as possible please", "the soonest time", None, None),
        ("first available", "the soonest time", None, None),
        ("whats the earliest you have", "the soonest time", None, None),
        ("soonest", "the soonest time", None, None),
        ("whenever works", "the soonest time", None, None),
        ("asap, mornings", "the soonest morning", time(8), time(12)),
        ("mornings are best", "the soonest morning", time(8), time(12)),
        ("any afternoon", "the soonest afternoon", time(12), time(17)),
        ("any time after 3", "the soonest time after 3 PM", time(15), None),
    ],
)
def test_parse_when_asap(text, label, day_start, day_end):
    assert parse_when(text, now=NOW, tz=TZ) == TimeWindow(
        NOW, local("2026-12-07 10:15"), label, asap=True, day_start=day_start, day_end=day_end
    )


def test_parse_when_daily_hours_over_several_days():
    window = parse_when("next week mornings", now=NOW, tz=TZ)
    assert (window.day_start, window.day_end) == (time(8), time(12))
    window = parse_when("monday or tuesday after 3", now=NOW, tz=TZ)
    assert (window.start, window.end, window.day_start, window.day_end) == (
        local("2026-11-23 15:00"),
        local("2026-11-25 00:00"),
        time(15),
        None,
    )
    assert parse_when("thursday", now=NOW, tz=TZ).day_start is None


@pytest.mark.parametrize(
    "text",
    [
        "how much is botox",
        "2",
        "yes",
        "option 2",
        "the 2nd one",
        "talk to a person",
        "i want botox",
        "2 syringes please",
        "$300?",
        "i'm 35",
        "about 2 areas",
        "sun damage treatment",
        "we'd like to come in",
        "ok thanks",
        "",
    ],
)
def test_parse_when_none(text):
    assert parse_when(text, now=NOW, tz=TZ) is None


def test_parse_when_past_dates():
    assert parse_when("12/3/2025", now=NOW, tz=TZ) is None
    late = local("2026-11-23 15:00")
    assert parse_when("this morning", now=late, tz=TZ).label == "tomorrow morning"
    assert parse_when("monday morning", now=late, tz=TZ).start == local("2026-11-30 08:00")
    assert parse_when("morning", now=late, tz=TZ).start == local("2026-11-24 08:00")


def test_parse_when_now_in_another_zone_is_read_in_the_clinics():
    utc_now = NOW.astimezone(UTC)
    assert parse_when("tomorrow after 3", now=utc_now, tz=TZ) == parse_when("tomorrow after 3", now=NOW, tz=TZ)
    assert parse_when("tomorrow after 3", now=utc_now, tz=TZ).start.utcoffset() == timedelta(hours=-5)


SUNDAY_EVENING = datetime(2026, 11, 22, 20, 30, tzinfo=TZ)


@pytest.mark.parametrize(
    ("text", "start", "end", "label"),
    [
        ("tomorrow", "2026-11-23 00:00", "2026-11-24 00:00", "tomorrow"),
        ("tomorrow morning", "2026-11-23 08:00", "2026-11-23 12:00", "tomorrow morning"),
        ("monday", "2026-11-23 00:00", "2026-11-24 00:00", "Monday"),
        ("next week", "2026-11-23 00:00", "2026-11-30 00:00", "next week"),
        ("tonight", "2026-11-22 20:30", "2026-11-22 21:00", "tonight"),
        ("this week", "2026-11-22 20:30", "2026-11-23 00:00", "this week"),
        ("weekend", "2026-11-22 20:30", "2026-11-23 00:00", "this weekend"),
        ("sunday morning", "2026-11-29 08:00", "2026-11-29 12:00", "Sunday, November 29 morning"),
        ("after 9pm", "2026-11-22 21:00", "2026-11-23 00:00", "today after 9 PM"),
        ("evening", "2026-11-22 20:30", "2026-11-22 21:00", "tonight"),
    ],
)
def test_parse_when_sunday_evening(text, start, end, label):
    window = parse_when(text, now=SUNDAY_EVENING, tz=TZ)
    assert (window.start, window.end, window.label) == (local(start), local(end), label)


def test_parse_when_sunday_late_night_rolls_over():
    late = datetime(2026, 11, 22, 22, 0, tzinfo=TZ)
    assert parse_when("tonight", now=late, tz=TZ).start == local("2026-11-23 17:00")
    assert parse_when("weekend", now=late, tz=TZ).start == late  # two hours of it are still ahead
    assert parse_when("weekend mornings", now=late, tz=TZ).start == local("2026-11-28 08:00")
    assert parse_when("sunday", now=late, tz=TZ).start == late


def test_parse_when_across_the_fall_dst_change():
    saturday = datetime(2026, 10, 31, 10, 0, tzinfo=TZ)  # EDT; clocks go back Sunday 2026-11-01 at 2:00
    window = parse_when("tomorrow morning", now=saturday, tz=TZ)
    assert window.start == datetime(2026, 11, 1, 13, 0, tzinfo=UTC)  # 8:00 EST
    assert window.start.utcoffset() == timedelta(hours=-5)
    sunday = parse_when("sunday", now=saturday, tz=TZ)
    assert (sunday.start.utcoffset(), sunday.end.utcoffset()) == (timedelta(hours=-4), timedelta(hours=-5))
    assert sunday.end.astimezone(UTC) - sunday.start.astimezone(UTC) == timedelta(hours=25)
    monday = parse_when("monday at 9", now=saturday, tz=TZ)
    assert monday.start == datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    asap = parse_when("asap", now=saturday, tz=TZ)
    assert asap.end.astimezone(UTC) == datetime(2026, 11, 14, 15, 0, tzinfo=UTC)  # 10:00 EST
    assert parse_when("next week", now=saturday, tz=TZ).start == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_parse_when_across_the_spring_dst_change():
    saturday = datetime(2026, 3, 7, 12, 0, tzinfo=TZ)  # EST; clocks go forward Sunday 2026-03-08 at 2:00
    window = parse_when("tomorrow at 2", now=saturday, tz=TZ)
    assert window.start == datetime(2026, 3, 8, 18, 0, tzinfo=UTC)  # 2 PM EDT
    assert window.end - window.start == timedelta(hours=1)


def test_parse_when_is_deterministic():
    texts = ["thursday afternoon", "asap", "next week mornings", "dec 3", "after 3"]
    assert [parse_when(t, now=NOW, tz=TZ) for t in texts] == [parse_when(t, now=NOW, tz=TZ) for t in texts]


# -------------------------------------------------------------------------------------------------------------- choice
OFFERED = [local("2026-11-24 10:00"), local("2026-11-26 15:00"), local("2026-11-26 15:30")]  # Tue 10, Thu 3, Thu 3:30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2", 1),
        ("#2", 1),
        ("option 2", 1),
        ("number 2", 1),
        ("2 please", 1),
        ("2 works for me", 1),
        ("yes 2", 1),
        ("lets do 1", 0),
        ("one", 0),
        ("the second", 1),
        ("2nd one", 1),
        ("the first one", 0),
        ("the third", 2),
        ("the last one", 2),
        ("the earlier one", 0),
        ("the later one", 2),
        ("the 3pm", 1),
        ("3pm works", 1),
        ("3 pm please", 1),
        ("3:30", 2),
        ("3:30 pls", 2),
        ("10am", 0),
        ("10", 0),
        ("i'll take the 10", 0),
        ("tuesday works", 0),
        ("the tuesday one", 0),
        ("tues", 0),
        ("thursday at 3:30", 2),
        ("nov 24", 0),
        ("thursday works", None),
        ("thursday", None),
        ("4", None),
        ("option 4", None),
        ("5pm", None),
        ("not 2", None),
        ("none of those", None),
        ("neither", None),
        ("anything earlier?", None),
        ("either", None),
        ("wait a second", None),
        ("yes", None),
        ("how much is botox", None),
        ("", None),
    ],
)
def test_parse_choice(text, expected):
    assert parse_choice(text, OFFERED, tz=TZ) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("3", 1), ("3 works", 1), ("2", 1), ("1", 0), ("thursday works", 1), ("the 3", 1), ("11", None)],
)
def test_parse_choice_bare_number_beyond_the_list_is_an_hour(text, expected):
    offered = [local("2026-11-24 10:00"), local("2026-11-26 15:00")]
    assert parse_choice(text, offered, tz=TZ) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("yes", 0), ("ok", 0), ("sounds good", 0), ("perfect", 0), ("no", None)]
)
def test_parse_choice_one_offered(text, expected):
    assert parse_choice(text, [local("2026-11-24 10:00")], tz=TZ) == expected


def test_parse_choice_reads_times_in_the_clinics_zone():
    offered = [t.astimezone(UTC) for t in OFFERED]
    assert parse_choice("the 3pm", offered, tz=TZ) == 1
    assert parse_choice("the 3pm", [], tz=TZ) is None


# ---------------------------------------------------------------------------------------------------------------- name
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm Jane Doe", ("Jane", "Doe")),
        ("my name is jane doe", ("Jane", "Doe")),
        ("My name\u2019s Jane Doe.", ("Jane", "Doe")),
        ("this is Jane", ("Jane", "")),
        ("jane doe", ("Jane", "Doe")),
        ("Jane", ("Jane", "")),
        ("JANE DOE", ("Jane", "Doe")),
        ("it's maria garcia-lopez", ("Maria", "Garcia-Lopez")),
        ("sean o'brien", ("Sean", "O'Brien")),
        ("mcdonald", ("McDonald", "")),
        ("DeShawn Jones", ("DeShawn", "Jones")),
        ("José Núñez", ("José", "Núñez")),
        ("hi, I'm Jane!", ("Jane", "")),
        ("Jane here", ("Jane", "")),
        ("jane doe, thanks", ("Jane", "Doe")),
        ("maria de la cruz", ("Maria", "de la Cruz")),
        ("Mary Ann Smith", ("Mary Ann", "Smith")),
        ("Will Smith", ("Will", "Smith")),
        ("jane d", ("Jane", "D")),
        ("yes", None),
        ("ok", None),
        ("botox", None),
        ("thursday", None),
        ("sounds good", None),
        ("123", None),
        ("jane@example.com", None),
        ("my name is jane and i want botox tomorrow", None),
        ("what is your name?", None),
        ("jane?", None),
        ("hi", None),
        ("not sure", None),
        ("", None),
    ],
)
def test_parse_name(text, expected):
    assert parse_name(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "can i switch my appointment time",
        "is it possible to move my appointment to friday at 5?",
        "could you shift my appt to the afternoon",
    ],
)
def test_asking_to_move_ones_own_appointment_is_a_reschedule(text):
    assert "reschedule" in intents(text)


@pytest.mark.parametrize("text", ["how does rescheduling work?", "is there a fee to reschedule?"])
def test_asking_how_rescheduling_works_moves_nothing(text):
    assert "reschedule" not in intents(text)
