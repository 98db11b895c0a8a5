"""The front desk in headless Chromium (tests/browser.py), as a clinic staff member would use it: the home page, a
handed-off conversation taken over, answered and handed back, the reply's delivery status arriving without a
reload; bookings in clinic time; no horizontal overflow at 1366 px, readable at 768 px; no CSP violation.

With FRONTDESK_SCREENSHOTS=docs/screenshots the pages are also saved there (the README links them)."""

import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
import time_machine
from playwright.sync_api import expect

from conversation.models import Conversation
from medspa.alerts import staff_alert
from medspa.models import StaffAlert
from messaging.models import Message
from messaging.services import message_status_update

from .conftest import make_staff
from .test_frontdesk import a_booking, conversation_with, handed_off

pytest_plugins = ["tests.browser"]

PASSWORD = "a-long-test-password-1"
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in Boston: texts may go
SIZES = [(1366, 768), (768, 1024)]  # a desk, a tablet


def sign_in(page, base, username):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/admin/")


def no_horizontal_overflow(page, *, boxes=True):
    """The page is no wider than the window, and (``boxes``) no list table hides columns behind its own scroll."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{page.url} is {width} px wide"
    if boxes:
        clipped = page.evaluate(
            "[...document.querySelectorAll('#changelist .results, .fd-table, .fd-thread-col')]"
            ".filter((box) => box.scrollWidth > box.clientWidth + 1)"
            ".map((box) => `${box.className} ${box.scrollWidth}>${box.clientWidth}`)"
        )
        assert clipped == [], f"{page.url} at {page.viewport_size['width']} px: {clipped} scroll sideways"


def shoot(page, name, tmp_path):
    folder = Path(os.environ.get("FRONTDESK_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    width, height = page.viewport_size["width"], page.viewport_size["height"]
    page.screenshot(path=str(folder / f"{name}-{width}x{height}.png"))


def a_day_at_the_desk(demo):
    urgent = conversation_with(
        demo,
        "+16175550160",
        name="Maria Lopez",
        texts=[("inbound", "patient", "my lip is swelling more and more since yesterday", "received")],
        owner="staff",
        state="handed_off",
        needs_staff=True,
    )
    staff_alert(
        clinic=demo,
        kind=StaffAlert.Kind.URGENT,
        text=f"Conversation #{urgent.pk} needs a person: urgent symptoms after a treatment.",
        obj=urgent,
    )
    failed = conversation_with(
        demo, "+16175550161", name="", texts=[("outbound", "reply", "Here are open times", "failed")], needs_staff=True
    )
    Message.objects.filter(conversation=failed).update(error_code="30007")
    conversation_with(
        demo,
        "+16175550162",
        name="Sam Park",
        texts=[("inbound", "patient", "do you have anything thursday afternoon?", "received")],
        state="offering",
    )
    a_booking(
        demo,
        start=datetime(2026, 11, 23, 16, 30, tzinfo=demo.tz),
        phone="+16175550163",
        name="Eve Stone",
        status="awaiting_staff",
    )
    conversation = handed_off(demo, reason="the patient asked for a person")
    a_booking(demo, start=datetime(2026, 11, 23, 13, 30, tzinfo=demo.tz), phone="+16175550150", name="Ann Early")
    a_booking(demo, start=datetime(2026, 11, 23, 15, 0, tzinfo=demo.tz), phone="+16175550151", name="Bo Kim")
    a_booking(
        demo,
        start=datetime(2026, 11, 24, 10, 0, tzinfo=demo.tz),
        phone="+16175550152",
        name="Cy Diaz",
        provider="Dr. Emily Johnson",
        status="awaiting_deposit",
    )
    a_booking(
        demo,
        start=datetime(2026, 11, 25, 11, 0, tzinfo=demo.tz),
        phone="+16175550153",
        name="Di Fox",
        status="cancelled",
    )
    return conversation


@pytest.mark.django_db(transaction=True)
def test_the_front_desk_takes_over_answers_and_hands_back(live_server, page, csp_violations, demo, settings, tmp_path):
    settings.PUBLIC_BASE_URL = live_server.url
    base = live_server.url
    with time_machine.travel(MONDAY_10AM, tick=True):
        conversation = a_day_at_the_desk(demo)
        make_staff("desk", demo)
        page.set_viewport_size({"width": 1366, "height": 768})
        sign_in(page, base, "desk")

        # Home: the handed-off conversation, with its reason.
        needs = page.locator(".fd-needs")
        expect(needs).to_contain_text("Jane Doe (+1 617-555-0123)")
        expect(needs).to_contain_text("the patient asked for a person")
        expect(page.locator(".fd-days")).to_contain_text("Today, Monday November 23 (EST)")
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            no_horizontal_overflow(page)
            shoot(page, "home", tmp_path)
        page.set_viewport_size({"width": 1366, "height": 768})

        # Open it, take over.
        needs.get_by_role("link", name="Jane Doe (+1 617-555-0123)").click()
        expect(page.locator("#fd-thread")).to_contain_text("can I talk to someone")
        expect(page.locator("#fd-owner")).to_contain_text("Handed to staff; nobody has taken it yet")
        page.get_by_role("button", name="Take over", exact=True).click()
        expect(page.locator("#fd-owner")).to_contain_text("You are answering this patient")
        no_horizontal_overflow(page)

        # Reply: the text is sent (locmem) and its status shows; the receipt arrives and the page follows.
        reply = page.get_by_role("textbox", name="Reply")
        expect(reply).to_be_in_viewport()
        reply.fill("Hi Jane, this is the front desk. How can we help?")
        page.get_by_role("button", name="Send text").click()
        bubble = page.locator(".fd-clinic", has_text="How can we help?")
        expect(bubble.locator(".fd-status")).to_have_text("Sent")
        sent = Message.objects.get(conversation=conversation, kind="staff")
        assert message_status_update(
            provider=sent.provider, provider_message_id=sent.provider_message_id, status="delivered"
        )
        expect(bubble.locator(".fd-status")).to_have_text("Delivered", timeout=10_000)  # the poll, no reload
        # A patient's new text appears without reloading too.
        Message.objects.create(
            clinic=demo, conversation=conversation, direction="inbound", kind="patient", body="Can I move it?",
            from_number=conversation.patient_phone, to_number="+15555550100", provider="telnyx",
            provider_message_id="pm-browser-new", status="received",
        )  # fmt: skip
        expect(page.locator("#fd-thread")).to_contain_text("Can I move it?", timeout=10_000)
        assert "UTC" not in page.locator("#fd-thread").inner_text()
        expect(page.locator("#fd-thread")).to_contain_text("EST")
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            expect(reply).to_be_in_viewport()
            no_horizontal_overflow(page)
            shoot(page, "conversation", tmp_path)
        page.set_viewport_size({"width": 1366, "height": 768})

        page.get_by_role("button", name="Hand back to the assistant").click()
        expect(page.locator("#fd-owner")).to_contain_text("The assistant is answering this patient")
        conversation.refresh_from_db()
        assert conversation.owner == Conversation.Owner.ASSISTANT and conversation.owned_by is None

        # Bookings in clinic time, coloured by status.
        page.goto(f"{base}/admin/bookings/booking/")
        rows = page.locator("#result_list tbody tr")
        expect(rows.filter(has_text="Ann Early")).to_contain_text("Mon Nov 23, 1:30 PM EST")
        expect(rows.filter(has_text="Di Fox").locator(".fd-booking-cancelled")).to_have_text("Cancelled")
        assert not re.search(r"\bUTC\b", page.locator("#result_list").inner_text())
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            no_horizontal_overflow(page)
            shoot(page, "bookings", tmp_path)

        page.goto(f"{base}/admin/")
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            no_horizontal_overflow(page)

        lists = (
            "/admin/conversation/conversation/",
            "/admin/payments/payment/",
            "/admin/messaging/message/",
            "/admin/leads/lead/",
            "/admin/medspa/staffalert/",
            "/admin/bookings/manualbookingrequest/",
        )
        for url in lists:
            page.goto(f"{base}{url}")
            for width, height in SIZES:
                page.set_viewport_size({"width": width, "height": height})
                no_horizontal_overflow(page)
        page.goto(f"{base}/admin/medspa/clinic/{demo.pk}/change/")  # its services inline scrolls inside its box
        no_horizontal_overflow(page, boxes=False)

    assert csp_violations == []
