"""The outcomes page (issue 19 item 5): its figures against a hand-computed fixture, in a clinic whose zone is not
the server's, on the week after a DST change; the page, its CSV and its validation. The browser half is in
tests/test_frontdesk_browser.py."""

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from bookings.models import Booking
from conversation.models import Conversation, Turn
from emr.models import Provider
from medspa.models import AuditEvent, ClinicMembership
from messaging.models import Message
from payments.models import Payment
from reports.services import outcomes_compute

from .conftest import make_clinic, make_service, make_staff

# Los Angeles, the week of Mon 2026-11-02 (PST, UTC-8; DST ended on Sun 2026-11-01). The server's zone is UTC.
FIRST, LAST = date(2026, 11, 2), date(2026, 11, 8)
NOW = datetime(2026, 11, 10, 20, 0, tzinfo=UTC)


def pst(day, hour, minute=0):
    return (
        datetime(2026, 11, day, hour + 8, minute, tzinfo=UTC)
        if hour + 8 < 24
        else datetime(2026, 11, day + 1, hour + 8 - 24, minute, tzinfo=UTC)
    )


def _message(clinic, conversation, direction, kind, at, status, n=[0]):  # noqa: B006 (a counter for unique ids)
    n[0] += 1
    row = Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction=direction,
        kind=kind,
        from_number="+13105550100" if direction == "outbound" else conversation.patient_phone,
        to_number=conversation.patient_phone if direction == "outbound" else "+13105550100",
        body="(text)",
        provider="telnyx",
        provider_message_id=f"pm-{n[0]}",
        status=status,
        sent_at=at if direction == "outbound" and status in ("sent", "delivered") else None,
    )
    Message.objects.filter(pk=row.pk).update(created_at=at)
    return row


def _conversation(clinic, n, origin, at):
    conversation = Conversation.objects.create(clinic=clinic, patient_phone=f"+1310555{n:04d}", origin=origin)
    Conversation.objects.filter(pk=conversation.pk).update(created_at=at)
    if origin == "inbound_text":
        _message(clinic, conversation, "inbound", "patient", at, "received")
    return conversation


def _answer(clinic, conversation, at, seconds, status="delivered", kind="reply"):
    _message(clinic, conversation, "outbound", kind, at + timedelta(seconds=seconds), status)


def _booking(clinic, conversation, service, status, *, paid=None, link=False, refunded=0):
    provider, _ = Provider.objects.get_or_create(clinic=clinic, name="Dr. Kim")
    start = datetime(2026, 11, 20, 18, 0, tzinfo=UTC) + timedelta(hours=conversation.pk)
    booking = Booking.objects.create(
        clinic=clinic,
        conversation=conversation,
        patient_phone=conversation.patient_phone,
        service=service,
        provider=provider,
        start=start,
        end=start + timedelta(minutes=30),
        status=status,
    )
    if paid is not None or link:
        Payment.objects.create(
            clinic=clinic,
            booking=booking,
            provider="square",
            amount_cents=5000,
            idempotency_key=f"deposit-{booking.pk}",
            status="paid" if paid else "created",
            paid_cents=paid or 0,
            paid_at=NOW if paid else None,
            refunded_cents=refunded,
        )
    return booking


def _offered(clinic, conversation, outcome):
    Turn.objects.create(
        clinic=clinic,
        conversation=conversation,
        engine="rules",
        tool_calls=[{"tool": "find_open_times", "arguments": {}, "outcome": outcome}],
    )


@pytest.fixture
def week(db):
    """The hand-computed week (figures in ``test_the_figures_are_the_hand_computed_ones``)."""
    la = make_clinic("la", timezone="America/Los_Angeles", name="Glow LA")
    botox = make_service(
        la, "Botox", price_type="fixed", price_cents=30000, unit_name="", typical_units_min=None, typical_units_max=None
    )
    filler = make_service(
        la,
        "Filler",
        price_type="range",
        price_cents=60000,
        price_max_cents=90000,
        unit_name="syringe",
        typical_units_min=None,
        typical_units_max=None,
    )
    units = make_service(la, "Dysport", price_type="per_unit", price_cents=1400, typical_units_min=20)

    # Outside the range on the clinic's clock, inside it on UTC's: Sun Nov 1 23:30 PST, Mon Nov 9 00:10 PST.
    before = _conversation(la, 0, "inbound_text", pst(1, 23, 30))
    _answer(la, before, pst(1, 23, 30), 5)
    _booking(la, before, botox, "confirmed", paid=5000)
    after = _conversation(la, 4, "missed_call", pst(9, 0, 10))
    _answer(la, after, pst(9, 0, 10), 5, kind="intro")

    c1 = _conversation(la, 1, "missed_call", pst(2, 9))  # intro in 30 s, offered, paid, came
    _answer(la, c1, pst(2, 9), 30, kind="intro")
    _message(la, c1, "inbound", "patient", pst(2, 9, 5), "received")
    _offered(la, c1, "3 offered")
    _booking(la, c1, botox, "completed", paid=5000)
    c2 = _conversation(la, 2, "web_lead", pst(3, 23, 30))  # Tue 23:30 PST is Wed in UTC; 2 min; paid; no-show
    _answer(la, c2, pst(3, 23, 30), 120, kind="intro")
    _booking(la, c2, filler, "no_show", paid=5000)
    c3 = _conversation(la, 3, "inbound_text", pst(8, 23, 50))  # Sun 23:50 PST; 10 min; no open times
    _answer(la, c3, pst(8, 23, 50), 600, status="sent")
    _offered(la, c3, "0 offered")
    c5 = _conversation(la, 5, "missed_call", pst(5, 12))  # the intro failed: not answered
    _answer(la, c5, pst(5, 12), 3, status="failed", kind="intro")
    c6 = _conversation(la, 6, "inbound_text", pst(6, 14))  # 1 min; offered; link sent, not paid; cancelled
    _answer(la, c6, pst(6, 14), 60)
    _offered(la, c6, "2 offered")
    _booking(la, c6, botox, "cancelled", link=True)
    c7 = _conversation(la, 7, "inbound_text", pst(7, 10))  # 45 s by staff; booked (so offered); paid, $10 back
    _message(la, c7, "inbound", "patient", pst(7, 10, 30), "received")
    _answer(la, c7, pst(7, 10), 45, kind="staff")
    _booking(la, c7, units, "confirmed", paid=5000, refunded=1000)

    other = make_clinic("other", name="Other Clinic")  # another clinic's rows in the same days: never counted
    elsewhere = _conversation(other, 8, "missed_call", pst(4, 10))
    _answer(other, elsewhere, pst(4, 10), 10, kind="intro")
    _booking(other, elsewhere, make_service(other), "completed", paid=5000)
    return la, other


def test_the_figures_are_the_hand_computed_ones(week):
    la, _ = week
    o = outcomes_compute(clinic=la, start=FIRST, end=LAST)
    assert o.entered == {"missed_call": 2, "web_lead": 1, "inbound_text": 3}
    assert o.opened == 6
    assert o.stages == {"answered": 5, "offered": 4, "deposit_link": 4, "paid": 3, "booked": 3, "showed": 1}
    assert o.no_shows == 1
    assert o.reply_seconds == [30, 45, 60, 120, 600]
    assert (o.reply_median, o.reply_p90) == (60, 600)
    assert (o.missed_calls, o.missed_calls_booked, o.missed_calls_recovered) == (2, 1, 0.5)
    assert (o.deposits_paid_cents, o.deposits_refunded_cents) == (15000, 1000)
    assert o.booked_estimate_cents == 30000 + 60000 + 20 * 1400  # fixed, low end of the range, fewest units
    hours = {hour: n for hour, n in enumerate(o.inbound_by_hour) if n}
    assert hours == {9: 1, 10: 2, 14: 1, 23: 1}  # the clinic's hours (c3 at 23:50 PST is 07:50 UTC)


def test_one_day_ranges_follow_the_clinic_clock(week):
    la, _ = week
    assert outcomes_compute(clinic=la, start=date(2026, 11, 3), end=date(2026, 11, 3)).entered["web_lead"] == 1
    assert outcomes_compute(clinic=la, start=date(2026, 11, 4), end=date(2026, 11, 4)).opened == 0
    assert outcomes_compute(clinic=la, start=date(2026, 11, 1), end=date(2026, 11, 1)).opened == 1  # 25 hours


@pytest.fixture
def staff(week):
    la, _ = week
    return make_staff("la-desk", la, role=ClinicMembership.Role.FRONT_DESK)


def test_the_page_shows_the_figures_and_draws_them(client, staff, week):
    client.force_login(staff)
    with time_machine.travel(NOW, tick=False):
        page = client.get(reverse("reports:outcomes"), {"start": "2026-11-02", "end": "2026-11-08"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-label="Booked" data-value="3"' in html
    assert 'data-label="Showed (completed)" data-value="1"' in html
    assert 'data-label="No-shows" data-value="1"' in html
    assert "1.0 min" in html and "10.0 min" in html
    assert "1 of 2 (50%) led to a booking" in html
    assert "$150" in html and "$1,180" in html and "estimate" in html
    assert "America/Los_Angeles" in html
    assert 'data-label="10a" data-value="2"' in html
    assert "<script" not in html.split('id="content-main"')[1]  # charts are SVG drawn on the server
    assert "Other Clinic" not in html


def test_the_default_range_is_the_clinics_last_30_days(client, staff):
    client.force_login(staff)
    with time_machine.travel(datetime(2026, 11, 10, 5, 0, tzinfo=UTC), tick=False):  # Nov 9, 9 PM in LA
        page = client.get(reverse("reports:outcomes"))
    assert page.status_code == 200
    assert (page.context["outcomes"].start, page.context["outcomes"].end) == (date(2026, 10, 11), date(2026, 11, 9))


def test_csv_export_has_the_same_figures_and_is_audited(client, staff, week):
    client.force_login(staff)
    response = client.get(reverse("reports:outcomes"), {"start": "2026-11-02", "end": "2026-11-08", "format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="outcomes-la-2026-11-02-2026-11-08.csv"' in response["Content-Disposition"]
    rows = {(r["section"], r["figure"]): r["value"] for r in csv.DictReader(io.StringIO(response.content.decode()))}
    assert rows[("funnel", "Booked")] == "3"
    assert rows[("first reply", "p90 minutes")] == "10.0"
    assert rows[("missed calls", "recovered share")] == "0.500"
    assert rows[("revenue", "booked services at catalog price, estimate (USD)")] == "1180.00"
    assert rows[("inbound texts by hour", "23:00")] == "1"
    assert rows[("range", "time zone")] == "America/Los_Angeles"
    event = AuditEvent.objects.get(action="export")
    assert (event.clinic_id, event.actor) == (week[0].pk, "la-desk")


@pytest.mark.parametrize(
    "query",
    [
        {"start": "2026-11-08", "end": "2026-11-02"},
        {"start": "yesterday"},
        {"start": "2025-01-01", "end": "2026-11-08"},
    ],
)
def test_a_bad_range_is_a_400_with_the_reason(client, staff, query):
    client.force_login(staff)
    page = client.get(reverse("reports:outcomes"), query)
    assert page.status_code == 400
    assert page.context["form"].errors
    assert page.context["outcomes"] is None


def test_another_clinics_figures_are_not_found(client, staff, week):
    _, other = week
    client.force_login(staff)
    page = client.get(reverse("reports:outcomes"), {"clinic": other.pk, "format": "csv"})
    assert page.status_code == 400  # not one of the user's clinics: refused, nothing of B rendered
    assert b"Other Clinic" not in page.content


def test_staff_without_conversation_access_cannot_open_it(client, week):
    user = make_staff("no-perms", week[0], all_permissions=False)
    client.force_login(user)
    assert client.get(reverse("reports:outcomes")).status_code == 403


def test_the_home_page_links_to_it(client, staff):
    client.force_login(staff)
    page = client.get(reverse("admin:index"))
    assert reverse("reports:outcomes") in page.content.decode()
