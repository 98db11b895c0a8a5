"""After the booking, end to end (issue 17): the confirmation request, the patient's "C", the same-day reminder, the
visit marked completed by the front desk, the review request. Real workers and beat; time moves forward with the
app's controllable clock (``medspa.clock``, CONTROLLABLE_CLOCK in the stack), never by sleeping for hours: beat's
sweep (every 30 s) releases each text once the clock has passed its send time."""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from bookings.models import Booking
from lifecycle.models import LifecycleSettings, ScheduledText
from medspa.clock import clock_move_to, clock_reset
from medspa.timetext import zone_label

from .checks import book_until_deposit
from .flow import Expected, FrontDesk, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REVIEW_URL = "https://g.page/r/e2e-clinic/review"


@pytest.fixture
def clock():
    """Moves the app's clock (the cache the stack's processes share); set back to the real time afterwards."""

    def move(moment):
        with override_settings(CONTROLLABLE_CLOCK=True):
            clock_move_to(moment)

    yield move
    clock_reset()


def _when(value, tz):
    local = timezone.localtime(value, tz)
    return local.strftime("%a %b %-d at %-I:%M %p"), zone_label(value, tz)


def test_confirmation_reminder_and_review_after_a_booking(clinic_factory, patient_factory, e2e, clock):
    """A booking's texts after it: confirmation request, "C", same-day reminder, completed visit, review request

    The patient books Botox for tomorrow afternoon on Nextech and pays the deposit. The clock moves to the next
    morning: the confirmation request arrives and the patient answers C (the booking is patient-confirmed). The clock
    moves to two hours before the visit: the reminder with the address arrives (the appointment is read from Nextech
    first). The front desk marks the visit completed in the admin; two hours after it the review request arrives,
    once."""
    setup = clinic_factory("nextech")
    LifecycleSettings.objects.create(clinic=setup.clinic, review_url=REVIEW_URL)
    patient = patient_factory(setup)
    expect = Expected(setup)
    clinic, tz, doctor = setup.clinic, setup.tz, setup.provider.name

    start, payment, _ = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]
    booking = Booking.objects.get(clinic=clinic)
    wait_for(lambda: ScheduledText.objects.filter(booking=booking).count() == 2, "the texts planned")
    planned = {t.kind: t for t in ScheduledText.objects.filter(booking=booking)}
    confirmation, reminder = planned["confirmation"], planned["reminder"]
    when, zone = _when(start, tz)

    # The next morning: the confirmation request (booked inside 48 h).
    assert timezone.localtime(confirmation.send_at, tz).strftime("%H:%M") == "09:00"
    texts = patient.step(
        "event", "The clock moves to 9:00 the next morning", lambda: clock(confirmation.send_at), 1, 60
    )
    assert texts == [
        f"{clinic.name}: your Botox with {doctor} is {when} ({zone}). Reply C to confirm or R to reschedule. To "
        "cancel, reply 'cancel appointment'."
    ]
    assert patient.say("C") == [f"Thanks, you're confirmed: Botox on {when} ({zone}). See you then!"]
    booking.refresh_from_db()
    assert booking.patient_confirmed_at is not None and booking.status == Booking.Status.CONFIRMED

    # Two hours before: the reminder, after the appointment was read from Nextech.
    assert reminder.send_at == start - timedelta(hours=2)
    texts = patient.step(
        "event", "The clock moves to two hours before the visit", lambda: clock(reminder.send_at), 1, 60
    )
    time_text = timezone.localtime(start, tz).strftime("%-I:%M %p")
    assert texts == [
        f"{clinic.name}: see you today at {time_text} ({zone}) for your Botox with {doctor}, 12 Harbor Way, Boise. "
        "Reply R to reschedule."
    ]
    assert any(c["path"].startswith("/Appointment/") for c in e2e.nextech.calls() if c["method"] == "GET")

    # The visit: the front desk marks it completed.
    patient.step("event", "The clock moves to the end of the visit", lambda: clock(booking.end), 0)
    desk = FrontDesk(e2e, setup, patient.transcript)
    try:
        desk.log_in()

        def mark():
            path = "/admin/bookings/booking/"
            page = desk.http.get(path)
            assert page.status_code == 200 and f'value="{booking.pk}"' in page.text, page.status_code
            data = {
                "action": "mark_completed",
                "_selected_action": str(booking.pk),
                "index": "0",
                "csrfmiddlewaretoken": desk._csrf(page),
            }
            response = desk.http.post(path, data=data)
            assert response.status_code == 302, response.text[:500]

        patient.step("event", "Front desk: \u201cMark completed\u201d on the booking in the admin", mark, 0)
    finally:
        desk.close()
    booking.refresh_from_db()
    assert booking.status == Booking.Status.COMPLETED
    review = ScheduledText.objects.get(booking=booking, kind="review")

    # Two hours after the visit: the review request, once.
    texts = patient.step("event", "The clock moves to two hours after the visit", lambda: clock(review.send_at), 1, 60)
    assert texts == [
        f"{clinic.name}: thank you for visiting us for your Botox! If you have a minute, a review helps us a lot: "
        f"{REVIEW_URL}"
    ]
    patient.step("event", "An hour later", lambda: clock(review.send_at + timedelta(hours=1)), 0)
    patient.assert_no_more_texts(seconds=35)  # a sweep or more: nothing sent twice
    assert {t.kind: t.state for t in ScheduledText.objects.filter(booking=booking)} == {
        "confirmation": "sent",
        "reminder": "sent",
        "review": "sent",
    }
    e2e.assert_no_errors()
