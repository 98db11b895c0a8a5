"""The back office the front desk lives in (issue 19): the home page, a conversation as a chat thread, lists people
can scan, clinic time everywhere. The browser half is tests/test_frontdesk_browser.py."""

import re
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from bookings.models import Booking
from bookings.services import booking_hold
from conversation.models import Conversation
from conversation.services import ConversationOwned, conversation_take_over
from emr.models import Provider
from medspa.alerts import staff_alert
from medspa.models import ClinicMembership, Service, StaffAlert
from medspa.roles import membership_set
from messaging.models import Message
from messaging.services import optout_record
from payments.models import Payment

from .conftest import make_clinic, make_staff

# Monday 2026-11-23, 10:00 in Boston (15:00 UTC): inside every sending window.
MONDAY_10AM = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
PHONE = "+16175550123"


@pytest.fixture
def clock():
    with time_machine.travel(MONDAY_10AM, tick=False) as traveller:
        yield traveller


def conversation_with(clinic, phone=PHONE, *, texts=(), name="Jane Doe", **fields):
    conversation = Conversation.objects.create(
        clinic=clinic, patient_phone=phone, origin="missed_call", patient_name=name, **fields
    )
    for n, (direction, kind, body, status) in enumerate(texts):
        outbound = direction == "outbound"
        Message.objects.create(
            clinic=clinic,
            conversation=conversation,
            direction=direction,
            kind=kind,
            from_number="+15555550100" if outbound else phone,
            to_number=phone if outbound else "+15555550100",
            body=body,
            provider="telnyx",
            provider_message_id=f"pm-{conversation.pk}-{n}",
            status=status,
        )
    return conversation


def a_booking(clinic, *, start, phone=PHONE, name="Jane Doe", status="confirmed", provider="Dr. Sarah Smith"):
    booking = booking_hold(
        clinic=clinic,
        service=Service.objects.get(clinic=clinic, name="Botox"),
        provider=Provider.objects.get(clinic=clinic, name=provider),
        start=start,
        patient_phone=phone,
        patient_name=name,
    )
    Booking.objects.filter(pk=booking.pk).update(status=status, deposit_cents=5000)
    booking.refresh_from_db()
    return booking


def handed_off(clinic, reason="the patient asked for a person", **kwargs):
    conversation = conversation_with(
        clinic,
        texts=[
            ("outbound", "intro", "Sorry we missed your call!", "delivered"),
            ("inbound", "patient", "can I talk to someone", "received"),
        ],
        owner="staff",
        state="handed_off",
        needs_staff=True,
        **kwargs,
    )
    staff_alert(
        clinic=clinic,
        kind=StaffAlert.Kind.HANDOFF,
        text=f"Conversation #{conversation.pk} needs a person: {reason}.",
        obj=conversation,
    )
    return conversation


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- The front door -------------------------------------------------------------------------------------------


def test_the_root_url_goes_to_the_front_desk(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")


# --- The home page ---------------------------------------------------------------------------------------------


def test_home_shows_what_needs_a_person_with_its_reason_and_age(client, demo, clock):
    conversation = handed_off(demo)
    failed = conversation_with(
        demo, "+16175550124", name="", texts=[("outbound", "reply", "Here are times", "failed")], needs_staff=True
    )
    Message.objects.filter(conversation=failed).update(error_code="30007")
    manual = a_booking(demo, start=datetime(2026, 11, 24, 11, tzinfo=demo.tz), status="awaiting_staff")
    payment = Payment.objects.create(
        clinic=demo,
        booking=a_booking(demo, start=datetime(2026, 11, 25, 11, tzinfo=demo.tz), phone="+16175550125"),
        provider="sandbox",
        amount_cents=5000,
        idempotency_key="k-1",
        needs_review=True,
        review_reason="Paid $20 of the $50 deposit",
    )
    staff_alert(clinic=demo, kind=StaffAlert.Kind.EMR_ERROR, text="Open times could not be read: timeout.", obj=demo)
    clock.shift(timedelta(minutes=25))

    client.force_login(make_staff("desk", demo))
    page = text_of(client.get(reverse("admin:index")))

    assert "Needs a person now 5" in page
    assert "Jane Doe (+1 617-555-0123)" in page and "the patient asked for a person" in page
    assert "25 minutes ago" in page
    assert "+1 617-555-0124" in page and "A text could not be delivered (error 30007)" in page
    assert "Enter it in your EMR: Tue Nov 24, 11:00 AM EST with Dr. Sarah Smith" in page
    assert "Deposit $50" in page and "Paid $20 of the $50 deposit" in page
    assert "Open times could not be read: timeout." in page
    # Each entry once: the alert about the conversation is the conversation's entry, the booking's the booking's.
    assert page.count("the patient asked for a person") == 1
    home = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:conversation_conversation_change", args=[conversation.pk]) in home
    assert reverse("admin:bookings_manualbookingrequest_change", args=[manual.pk]) in home
    assert reverse("admin:payments_payment_change", args=[payment.pk]) in home


def test_home_shows_todays_and_tomorrows_bookings_by_provider_in_clinic_time(client, demo, clock):
    a_booking(demo, start=datetime(2026, 11, 23, 13, 30, tzinfo=demo.tz), name="Ann Early")
    a_booking(demo, start=datetime(2026, 11, 24, 11, 0, tzinfo=demo.tz), phone="+16175550126", name="Bo Next")
    a_booking(demo, start=datetime(2026, 11, 25, 11, 0, tzinfo=demo.tz), phone="+16175550127", name="Cy Later")
    a_booking(
        demo,
        start=datetime(2026, 11, 23, 15, 0, tzinfo=demo.tz),
        phone="+16175550128",
        name="Di Gone",
        status="cancelled",
    )
    client.force_login(make_staff("desk", demo))
    page = text_of(client.get(reverse("admin:index")))

    today, tomorrow = page.index("Today, Monday November 23 (EST)"), page.index("Tomorrow, Tuesday November 24 (EST)")
    assert today < page.index("1:30 PM Ann Early") < tomorrow < page.index("11:00 AM Bo Next")
    assert "Dr. Sarah Smith" in page[today:]
    assert "Cy Later" not in page and "Di Gone" not in page


def test_home_lists_conversations_in_progress(client, demo, clock):
    conversation_with(demo, texts=[("inbound", "patient", "how much is botox?", "received")], state="offering")
    client.force_login(make_staff("desk", demo))
    page = text_of(client.get(reverse("admin:index")))
    section = page[page.index("Conversations in progress") :]
    assert "Jane Doe (+1 617-555-0123) Offering times how much is botox?" in section


def test_developer_sections_are_out_of_a_clinic_users_way(client, admin_user, demo):
    client.force_login(make_staff("desk", demo))
    staff_page = text_of(client.get(reverse("admin:index")))
    assert "Tokens" not in staff_page and "Axes" not in staff_page and "Platform" not in staff_page
    client.force_login(admin_user)
    admin_page = client.get(reverse("admin:index")).content.decode()
    platform = admin_page.index("Platform (operators only)")
    assert admin_page.index("Conversations") < platform < admin_page.index("Tokens")


def test_a_front_desk_member_sees_only_what_their_role_may(client, demo, clock):
    payment_review = Payment.objects.create(
        clinic=demo,
        booking=a_booking(demo, start=datetime(2026, 11, 25, 11, tzinfo=demo.tz)),
        provider="sandbox",
        amount_cents=5000,
        idempotency_key="k-2",
        needs_review=True,
        review_reason="Paid $20 of the $50 deposit",
    )
    handed_off(demo, phone="+16175550129")
    user = User.objects.create_user("frontdesk", password="a-long-test-password-1", is_staff=True)
    membership_set(user=user, clinic=demo, role=ClinicMembership.Role.FRONT_DESK)
    client.force_login(user)
    page = text_of(client.get(reverse("admin:index")))
    assert "the patient asked for a person" in page
    assert payment_review.review_reason not in page  # payments are the owner's


# --- A conversation as a chat thread ----------------------------------------------------------------------------


def thread_url(conversation):
    return reverse("admin:conversation_conversation_change", args=[conversation.pk])


def test_a_conversation_is_a_thread_in_clinic_time_with_delivery_status(client, demo, clock, settings):
    settings.TIME_ZONE = "UTC"
    conversation = conversation_with(
        demo,
        texts=[
            ("outbound", "intro", "Sorry we missed your call!", "delivered"),
            ("inbound", "patient", "how much is botox?", "received"),
            ("outbound", "reply", "Botox is $12 per unit.", "sent"),
            ("outbound", "staff", "Hi, Anna here.", "failed"),
        ],
    )
    Message.objects.filter(conversation=conversation, kind="staff").update(error_code="30007")
    Message.objects.filter(conversation=conversation, kind="patient").update(
        media=[{"url": "https://media.example.com/a.jpg", "content_type": "image/jpeg"}, {"url": "javascript:x"}]
    )
    client.force_login(make_staff("desk", demo))
    response = client.get(thread_url(conversation))
    html = response.content.decode()
    page = text_of(response)

    assert page.count("Mon Nov 23, 10:00 AM EST") == 5 and "15:00" not in page and "UTC" not in page
    assert "Automatic: intro after a missed call Sorry we missed your call!" in page
    assert "Assistant Botox is $12 per unit." in page
    assert "Delivered" in page and "Failed (error 30007)" in page
    assert html.count('class="fd-bubble fd-patient"') == 1 and html.count('class="fd-bubble fd-clinic"') == 3
    assert 'href="https://media.example.com/a.jpg"' in html and "javascript:x" not in html
    assert "Jane Doe" in page and "Missed call" in page
    assert 'hx-get="' + reverse("admin:conversation_conversation_thread", args=[conversation.pk]) in html
    assert "Reply to the patient" in page and 'name="staff_reply"' in html


def test_the_thread_costs_the_same_queries_with_500_texts_as_with_5(client, demo, clock):
    client.force_login(make_staff("desk", demo))

    def queries(count, phone):
        conversation = conversation_with(
            demo, phone, texts=[("inbound", "patient", f"text {n}", "received") for n in range(count)]
        )
        client.get(thread_url(conversation))  # warm: sessions, permissions, content types
        with CaptureQueriesContext(connection) as captured:
            response = client.get(thread_url(conversation))
        assert response.content.decode().count("fd-bubble fd-patient") == count
        return len(captured)

    small, large = queries(5, "+16175550131"), queries(500, "+16175550132")
    assert large == small, (small, large)
    assert large < 60


def test_the_poll_brings_new_texts_and_changed_statuses(client, demo, clock):
    conversation = conversation_with(
        demo, texts=[("outbound", "staff", "Hi, Anna here.", "sent"), ("outbound", "staff", "Still there?", "sent")]
    )
    first, second = Message.objects.filter(conversation=conversation).order_by("pk")
    client.force_login(make_staff("desk", demo))
    clock.shift(timedelta(minutes=1))
    page = client.get(thread_url(conversation)).content.decode()
    poll = re.search(r'hx-get="([^"]+)"', page).group(1).replace("&amp;", "&")

    clock.shift(timedelta(minutes=1))
    first.status = "delivered"
    first.save()  # updated_at: now
    conversation_with(demo, "+16175550199", texts=[("inbound", "patient", "not this one", "received")])
    Message.objects.create(
        clinic=demo, conversation=conversation, direction="inbound", kind="patient", from_number=PHONE,
        to_number="+15555550100", body="thanks!", provider="telnyx", provider_message_id="pm-new", status="received",
    )  # fmt: skip
    response = client.get(poll)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'hx-swap-oob="afterbegin:#fd-thread"' in body and "thanks!" in body and "not this one" not in body
    assert f'id="fd-msg-{first.pk}" class="fd-bubble fd-clinic" hx-swap-oob="true"' in body and "Delivered" in body
    assert f'id="fd-msg-{second.pk}"' not in body  # unchanged: not sent again
    # The next poll starts after the newest text of this conversation.
    newest = Message.objects.filter(conversation=conversation).order_by("-pk").first()
    assert f"after={newest.pk}&amp;" in body


def test_take_over_one_owner_at_a_time_and_hand_back(client, demo, clock):
    conversation = handed_off(demo)
    anna, ben = make_staff("anna", demo), make_staff("ben", demo)
    anna.first_name, anna.last_name = "Anna", "Lee"
    anna.save()

    client.force_login(anna)
    client.post(reverse("admin:conversation_conversation_take_over", args=[conversation.pk]))
    conversation.refresh_from_db()
    assert conversation.owner == "staff" and conversation.owned_by == anna
    assert "You are answering this patient" in text_of(client.get(thread_url(conversation)))

    client.force_login(ben)
    page = text_of(client.get(thread_url(conversation)))
    assert "Anna Lee is answering this patient" in page and "Take over from Anna Lee" in page
    assert "Anna Lee is answering this patient. Take it over to reply." in page  # the reply box says why
    client.post(reverse("admin:conversation_conversation_reply", args=[conversation.pk]), {"staff_reply": "hi"})
    assert not Message.objects.filter(conversation=conversation, kind="staff").exists()
    with pytest.raises(ConversationOwned):
        conversation_take_over(conversation=conversation, user=ben)

    client.post(reverse("admin:conversation_conversation_take_over", args=[conversation.pk]), {"steal": "1"})
    conversation.refresh_from_db()
    assert conversation.owned_by == ben

    client.post(reverse("admin:conversation_conversation_hand_back", args=[conversation.pk]))
    conversation.refresh_from_db()
    assert conversation.owner == "assistant" and conversation.owned_by is None and not conversation.needs_staff
    assert not StaffAlert.objects.filter(resolved_at__isnull=True, object_id=str(conversation.pk)).exists()


def test_reply_box_is_disabled_for_an_opted_out_patient(client, demo, clock):
    conversation = conversation_with(demo, texts=[("inbound", "patient", "STOP", "received")], state="opted_out")
    optout_record(clinic=demo, phone=PHONE, source="keyword")
    client.force_login(make_staff("desk", demo))
    html = client.get(thread_url(conversation)).content.decode()
    assert "The patient opted out (STOP)" in html
    assert re.search(r'<textarea name="staff_reply"[^>]* disabled', html)
    client.post(reverse("admin:conversation_conversation_reply", args=[conversation.pk]), {"staff_reply": "hello?"})
    assert not Message.objects.filter(conversation=conversation, kind="staff").exists()


def test_reply_box_says_when_quiet_hours_end(client, demo):
    conversation = conversation_with(demo, texts=[("inbound", "patient", "are you open?", "received")])
    client.force_login(make_staff("desk", demo))
    with time_machine.travel(datetime(2026, 11, 24, 3, 30, tzinfo=UTC), tick=False):  # Mon 10:30 PM in Boston
        html = client.get(thread_url(conversation)).content.decode()
    assert "Quiet hours for this patient: texts can go again at Tue Nov 24, 8:00 AM EST." in html
    assert re.search(r'<textarea name="staff_reply"[^>]* disabled', html)


# --- Lists people can scan ------------------------------------------------------------------------------------


def test_conversation_list_shows_patient_last_text_owner_and_why(client, demo, clock):
    handed_off(demo)
    conversation_with(
        demo, "+16175550140", name="", texts=[("inbound", "patient", "do you do lips?", "received")], state="engaged"
    )
    clock.shift(timedelta(hours=2))
    client.force_login(make_staff("desk", demo))  # after the shift: a session idle for 2 hours has ended
    response = client.get(reverse("admin:conversation_conversation_changelist"))
    assert response.status_code == 200, response.get("Location")
    page = text_of(response)
    assert "Jane Doe (+1 617-555-0123) Patient: can I talk to someone 2 hours ago Handed off to staff" in page
    assert "the patient asked for a person" in page
    assert "+1 617-555-0140 Patient: do you do lips? 2 hours ago Engaged Assistant" in page
    assert "Conversation #" not in page


def test_booking_and_payment_lists_show_patient_service_provider_clinic_time_status_and_dollars(client, demo, clock):
    confirmed = a_booking(demo, start=datetime(2026, 12, 3, 13, 30, tzinfo=demo.tz))
    cancelled = a_booking(
        demo, start=datetime(2026, 12, 4, 13, 30, tzinfo=demo.tz), phone="+16175550141", name="Al Bee"
    )
    Booking.objects.filter(pk=cancelled.pk).update(status="cancelled")
    Payment.objects.create(
        clinic=demo, booking=confirmed, provider="sandbox", amount_cents=5000, idempotency_key="k-3", status="paid"
    )
    client.force_login(make_staff("desk", demo))

    response = client.get(reverse("admin:bookings_booking_changelist"))
    page, html = text_of(response), response.content.decode()
    assert "Jane Doe (+1 617-555-0123) Thu Dec 3, 1:30 PM EST Botox Dr. Sarah Smith Confirmed $50" in page
    assert 'class="fd-chip fd-booking-confirmed"' in html and 'class="fd-chip fd-booking-cancelled"' in html

    page = text_of(client.get(reverse("admin:payments_payment_changelist")))
    assert "Jane Doe (+1 617-555-0123) Thu Dec 3, 1:30 PM EST Botox Dr. Sarah Smith $50 Paid" in page


# --- Clinic time everywhere -------------------------------------------------------------------------------------


@pytest.mark.parametrize("server_zone", ["UTC", "Asia/Tokyo"])
def test_detail_pages_show_clinic_time_with_the_zone_whatever_the_servers(client, demo, clock, settings, server_zone):
    settings.TIME_ZONE = server_zone
    booking = a_booking(demo, start=datetime(2026, 12, 3, 13, 30, tzinfo=demo.tz))
    client.force_login(make_staff("desk", demo))
    page = text_of(client.get(reverse("admin:bookings_booking_change", args=[booking.pk])))
    assert "Dec. 3, 2026, 1:30 p.m. EST" in page and "6:30 p.m." not in page
    assert "Deposit: $50" in page and "Deposit cents" not in page


def test_a_member_of_clinics_in_two_zones_sees_each_row_in_its_clinics_zone(client, demo, clock):
    west = make_clinic("west-spa", timezone="America/Los_Angeles")
    conversation = conversation_with(west, texts=[("inbound", "patient", "hi", "received")])
    client.force_login(make_staff("both", demo, west))
    page = text_of(client.get(thread_url(conversation)))
    assert "Mon Nov 23, 7:00 AM PST" in page
    detail = text_of(client.get(reverse("admin:conversation_conversation_change", args=[conversation.pk])))
    assert "Nov. 23, 2026, 7 a.m. PST" in detail


# --- The newcomer's first hour ---------------------------------------------------------------------------------


def test_seed_knowledge_says_created_then_up_to_date_and_its_help_says_what_it_loads(db, capsys):
    from django.core.management import get_commands, load_command_class

    call_command("seed_knowledge", verbosity=0)
    assert ": created (" in capsys.readouterr().out
    call_command("seed_knowledge", verbosity=0)
    assert ": already up to date (" in capsys.readouterr().out
    parser = load_command_class(get_commands()["seed_knowledge"], "seed_knowledge").create_parser(
        "manage.py", "seed_knowledge"
    )
    help_text = re.sub(r"\s+", " ", parser.format_help())
    for loaded in ("service catalog", "phone numbers", "knowledge documents", "providers", "working hours"):
        assert loaded in help_text, loaded
    assert "fixtures/demo-clinic.json" in help_text and "progress bar" in help_text and "created" in help_text
