"""The one event mechanism (medspa/events.py): declared events, handlers named in settings, run in order."""

import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from medspa import events

ROOT = Path(__file__).resolve().parent.parent
APPS = (
    "medspa",
    "inbox",
    "knowledge",
    "emr",
    "messaging",
    "bookings",
    "payments",
    "lifecycle",
    "waitlist",
    "conversation",
    "leads",
)
CALLS = []


def first(**data):
    CALLS.append(("first", data))
    return 1


def second(**data):
    CALLS.append(("second", data))
    return 2


def test_handlers_run_in_the_order_settings_list_them_with_the_data(settings):
    CALLS.clear()
    settings.EVENT_HANDLERS = {"payments.refund_told": ["tests.test_events.second", "tests.test_events.first"]}
    assert events.publish("payments.refund_told", payment="p") == [2, 1]
    assert CALLS == [("second", {"payment": "p"}), ("first", {"payment": "p"})]


def test_an_event_nobody_handles_does_nothing_and_an_undeclared_one_is_an_error(settings):
    settings.EVENT_HANDLERS = {}
    assert events.publish("payments.refund_told", payment="p") == []
    with pytest.raises(LookupError, match="not an event"):
        events.publish("payments.refund_sent", payment="p")


def test_a_handler_that_raises_fails_the_publisher(settings):
    settings.EVENT_HANDLERS = {"payments.refund_told": ["tests.test_events.first", "tests.test_events.broken"]}
    with pytest.raises(RuntimeError, match="handler bug"):
        events.publish("payments.refund_told", payment="p")


def broken(**data):
    raise RuntimeError("handler bug")


def test_the_system_check_names_unknown_events_and_handlers_that_do_not_import(settings):
    settings.EVENT_HANDLERS = {"bookings.booking_made": ["x.y"], "bookings.booking_moved": ["payments.handlers.nope"]}
    problems = events.check_handlers()
    assert len(problems) == 2
    assert "'bookings.booking_made' is not an event" in problems[0]
    assert "payments.handlers.nope does not import" in problems[1]


def test_every_event_the_code_publishes_is_declared_and_handled():
    published = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            published |= set(re.findall(r'publish\(\s*"([a-z_.]+)"', path.read_text()))
    assert published == set(events.EVENTS)  # nothing declared that is never published, nothing undeclared
    assert events.check_handlers() == []
    assert all(django_settings.EVENT_HANDLERS.get(name) for name in published), "an event with no handler"
