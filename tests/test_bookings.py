"""Booking rules beyond holding: manual EMRs (a staff task), cancellation per the clinic's policy, the admin's
"test connection", the day sheet and the manual-confirmation queue."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.urls import reverse

from bookings.models import Booking
from bookings.services import (
    BookingStateError,
    CancellationTooLate,
    SlotUnavailable,
    booking_cancel,
    booking_confirm,
    booking_hold,
    booking_staff_confirm,
)
from emr.base import MANUAL, WRITE, EmrError
from emr.manual import ManualEmrClient
from emr.models import EmrConfig, Provider
from emr.services import emr_client, emr_connection_test
from medspa.models import AuditEvent, Service, StaffAlert

from .conftest import make_clinic, make_staff

pytest_plugins = ["tests.fakes.nextech"]

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday 07:00 in Boston
PHONE, NAME = "+16175550123", "Jane Doe"


def hold(clinic, day=24, hour=11, service="Botox", provider="Dr. Sarah Smith", now=NOW, phone=PHONE):
    return booking_hold(
        clinic=clinic,
        service=Service.objects.get(clinic=clinic, name=service),
        provider=Provider.objects.get(clinic=clinic, name=provider),
        start=datetime(2026, 11, day, hour, tzinfo=clinic.tz),
        patient_phone=phone,
        patient_name=NAME,
        now=now,
    )


def manual(clinic):
    EmrConfig.objects.filter(clinic=clinic).update(kind=EmrConfig.Kind.MANUAL)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Call ``fn`` as if its transaction committed: the after-commit work (emails, texts) runs."""

    def run(fn, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(**kwargs)

    return run


@pytest.fixture
def daytime(time_machine):
    """Staff act at noon in Boston: the patient's confirmation text is inside the sending window."""
    time_machine.move_to(datetime(2026, 11, 23, 17, 0, tzinfo=UTC), tick=False)


@pytest.fixture
def front_desk(demo):
    user = make_staff("frontdesk", demo)
    user.email = "frontdesk@glow.example"
    user.save()
    return user


# --- Manual EMR (Aesthetic Record): a booking becomes a task for staff -------------------------------------------


def test_manual_emr_reads_the_builtin_calendar_and_never_writes(demo):
    manual(demo)
    client = emr_client(clinic=demo)
    assert isinstance(client, ManualEmrClient)
    assert MANUAL in client.capabilities and WRITE not in client.capabilities
    botox = Service.objects.get(clinic=demo, name="Botox")
    client.now = NOW
    start = datetime(2026, 11, 24, tzinfo=demo.tz)
    assert client.availability(service_ref=botox.pk, start=start, end=start + timedelta(days=1))
    with pytest.raises(EmrError):
        client.cancel_appointment("x")


def test_manual_booking_waits_for_staff_who_are_told_without_patient_data(demo, front_desk, sms_outbox, commit):
    manual(demo)
    booking = hold(demo)
    confirmed = commit(booking_confirm, booking_id=booking.pk)
    assert confirmed.status == Booking.Status.AWAITING_STAFF and confirmed.hold_expires_at is None
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.MANUAL_BOOKING)
    assert alert.object_id == str(booking.pk) and alert.resolved_at is None
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["frontdesk@glow.example"]
    email = mail.outbox[0].subject + mail.outbox[0].body
    assert f"#{booking.pk}" in email and "Enter it in your EMR" in email
    assert NAME not in email and PHONE not in email and "Jane" not in email
    assert sms_outbox == []  # the patient hears once staff confirm

    # Run again (a retried task): no second alert, no second email; its time stays taken.
    commit(booking_confirm, booking_id=booking.pk)
    assert StaffAlert.objects.count() == 1 and len(mail.outbox) == 1
    with pytest.raises(SlotUnavailable):
        hold(demo)


def test_staff_mark_a_manual_booking_confirmed_and_the_patient_gets_one_text(
    demo, front_desk, sms_outbox, commit, daytime
):
    manual(demo)
    booking = booking_confirm(booking_id=hold(demo).pk)
    commit(booking_staff_confirm, booking_id=booking.pk, user=front_desk, emr_appointment_id="AR-5521")
    commit(booking_staff_confirm, booking_id=booking.pk, user=front_desk)  # a double click
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED and booking.emr_appointment_id == "AR-5521"
    assert StaffAlert.objects.get(kind=StaffAlert.Kind.MANUAL_BOOKING).resolved_at is not None
    assert len(sms_outbox) == 1 and sms_outbox[0].to_number == PHONE
    assert "You're booked: Botox with Dr. Sarah Smith, Tue Nov 24, 11:00 AM ET" in sms_outbox[0].body
    assert AuditEvent.objects.filter(object_type="bookings.booking", object_id=str(booking.pk)).exists()


def test_a_manual_booking_confirmed_at_night_texts_the_patient_when_the_window_opens(
    demo, front_desk, sms_outbox, commit, time_machine
):
    from messaging.models import Message
    from messaging.services import messages_release_due

    manual(demo)
    booking = booking_confirm(booking_id=hold(demo).pk)
    time_machine.move_to(datetime(2026, 11, 23, 7, 30, tzinfo=UTC), tick=False)  # 02:30 in Boston
    commit(booking_staff_confirm, booking_id=booking.pk, user=front_desk)
    assert sms_outbox == []
    waiting = Message.objects.get(to_number=PHONE, direction=Message.Direction.OUTBOUND)
    assert waiting.status == Message.Status.SCHEDULED
    assert waiting.due_at == datetime(2026, 11, 23, 13, 0, tzinfo=UTC)  # 08:00 in Boston
    time_machine.move_to(datetime(2026, 11, 23, 13, 0, 1, tzinfo=UTC), tick=False)
    assert messages_release_due() == [waiting.pk]


def test_staff_cannot_confirm_a_booking_that_is_not_waiting_for_them(demo, front_desk):
    booking = hold(demo)
    with pytest.raises(BookingStateError):
        booking_staff_confirm(booking_id=booking.pk, user=front_desk)


def test_manual_queue_in_the_admin_says_it_is_manual_and_confirms(client, demo, front_desk, sms_outbox, daytime):
    manual(demo)
    waiting = booking_confirm(booking_id=hold(demo).pk)
    other = hold(demo, hour=14, phone="+16175550124")  # only held: not in the queue
    client.force_login(front_desk)
    url = reverse("admin:bookings_manualbookingrequest_changelist")
    page = client.get(url)
    assert page.status_code == 200
    assert "nothing here is in your EMR until you enter it there" in page.content.decode()
    assert [b.pk for b in page.context["cl"].result_list] == [waiting.pk]
    client.post(url, {"action": "mark_confirmed", "_selected_action": [waiting.pk, other.pk]})
    assert Booking.objects.get(pk=waiting.pk).status == Booking.Status.CONFIRMED
    assert Booking.objects.get(pk=other.pk).status == Booking.Status.HELD
    assert len(sms_outbox) == 1

    config_page = client.get(reverse("admin:emr_emrconfig_change", args=[demo.emr_config.pk]))
    assert "This integration is manual" in config_page.content.decode()


# --- Cancellation per the clinic's policy --------------------------------------------------------------------------


def test_cancelling_a_hold_frees_its_time(demo):
    booking = hold(demo)
    assert booking_cancel(booking_id=booking.pk, by="patient", now=NOW).status == Booking.Status.CANCELLED
    hold(demo)  # the same time again
    assert booking_cancel(booking_id=booking.pk, by="patient", now=NOW).status == Booking.Status.CANCELLED


def test_a_patient_may_cancel_a_confirmed_booking_only_with_the_clinics_notice(demo):
    assert demo.cancellation_notice_hours == 24
    booking = booking_confirm(booking_id=hold(demo).pk)  # Tuesday 11:00 Boston = 16:00 UTC
    late = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # 23 hours before
    with pytest.raises(CancellationTooLate):
        booking_cancel(booking_id=booking.pk, by="patient", now=late)
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED
    in_time = datetime(2026, 11, 23, 15, 59, tzinfo=UTC)  # 24 hours and a minute before
    assert booking_cancel(booking_id=booking.pk, by="patient", now=in_time).status == Booking.Status.CANCELLED
    event = AuditEvent.objects.filter(object_id=str(booking.pk), action=AuditEvent.Action.ASSISTANT).get()
    assert event.detail == {"fields": ["status"], "by": "patient"}


def test_staff_may_cancel_inside_the_notice_window(demo, front_desk):
    booking = booking_confirm(booking_id=hold(demo).pk)
    late = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    cancelled = booking_cancel(booking_id=booking.pk, by="staff", user=front_desk, now=late)
    assert cancelled.status == Booking.Status.CANCELLED


def test_an_expired_or_failed_booking_cannot_be_cancelled(demo):
    booking = hold(demo)
    Booking.objects.filter(pk=booking.pk).update(status=Booking.Status.EXPIRED)
    with pytest.raises(BookingStateError):
        booking_cancel(booking_id=booking.pk, by="staff", now=NOW)


def test_cancelling_a_manual_booking_asks_staff_to_remove_it_from_their_emr(demo, front_desk, commit):
    manual(demo)
    booking = commit(booking_confirm, booking_id=hold(demo).pk)
    commit(booking_cancel, booking_id=booking.pk, by="patient", now=NOW)
    alerts = dict(StaffAlert.objects.values_list("kind", "resolved_at"))
    assert alerts[StaffAlert.Kind.MANUAL_BOOKING] is not None  # nothing left to enter
    assert alerts[StaffAlert.Kind.MANUAL_CANCEL] is None
    assert len(mail.outbox) == 2


def nextech_clinic(demo, fake):
    """The demo clinic on Nextech (the fake): Botox maps to appointment type 12, Dr. Smith to practitioner 9."""
    credentials = {
        "client_id": "nx-client",
        "username": "api-user@spa.example",
        "password": "api-password",
        "practice_id": "PRACTICE-1",
        "base_url": fake.base_url,
        "token_url": fake.token_url,
        "timeout": 2.0,
        "max_attempts": 1,
    }
    EmrConfig.objects.filter(clinic=demo).update(
        kind=EmrConfig.Kind.NEXTECH, credentials=json.dumps(credentials), location_ref="1"
    )
    Service.objects.filter(clinic=demo, name="Botox").update(emr_service_id="12")
    Provider.objects.filter(clinic=demo, name="Dr. Sarah Smith").update(emr_ref="9")
    # Nextech requires an email for a new patient; these bookings have no web lead to give one (docs/DECISIONS.md).
    fake.prospect_email_required = False
    return demo


def test_a_web_leads_email_reaches_nextech_which_needs_one_for_a_new_patient(demo, fake_nextech):
    """Nextech opens a prospect's chart only with an e-mail (its _appointment.md); the web form gave one."""
    from leads.models import Lead

    nextech_clinic(demo, fake_nextech)
    fake_nextech.prospect_email_required = True
    Lead.objects.create(clinic=demo, name=NAME, phone=PHONE, email="jane@example.com", fingerprint="f")
    confirmed = booking_confirm(booking_id=hold(demo, day=24, hour=10).pk)
    assert confirmed.status == "confirmed"
    (posted,) = [r.json for r in fake_nextech.requests if r.method == "POST" and r.path == "/Appointment"]
    assert "jane@example.com" in json.dumps(posted)  # on the contained Patient, from which Nextech makes the prospect


def test_without_an_email_nextechs_refusal_reaches_staff_not_a_silent_failure(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    fake_nextech.prospect_email_required = True
    with pytest.raises(EmrError, match="email"):
        booking_confirm(booking_id=hold(demo, day=24, hour=10).pk)


def test_cancel_on_nextech_cancels_there_first(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    booking = hold(demo, day=24, hour=10)
    confirmed = booking_confirm(booking_id=booking.pk)
    assert confirmed.status == Booking.Status.CONFIRMED and confirmed.emr_appointment_id

    fake_nextech.refuse_cancel = "Appointment is checked in"
    with pytest.raises(EmrError):
        booking_cancel(booking_id=booking.pk, by="staff", now=NOW)
    assert Booking.objects.get(pk=booking.pk).status == Booking.Status.CONFIRMED  # nothing changed here

    fake_nextech.refuse_cancel = ""
    assert booking_cancel(booking_id=booking.pk, by="staff", now=NOW).status == Booking.Status.CANCELLED
    appointment = fake_nextech.appointments[confirmed.emr_appointment_id]
    assert appointment["status"] == "cancelled"


# --- Test connection -----------------------------------------------------------------------------------------------


def test_connection_test_on_the_builtin_calendar(demo):
    ok, text = emr_connection_test(clinic=demo, now=NOW)
    assert ok and text.startswith("Connected:") and "open time(s)" in text


def test_connection_test_against_nextech_and_with_wrong_credentials(demo, fake_nextech):
    nextech_clinic(demo, fake_nextech)
    ok, text = emr_connection_test(clinic=demo, now=datetime(2026, 12, 1, 6, tzinfo=UTC))
    assert ok, text
    assert "for Botox" in text
    config = EmrConfig.objects.get(clinic=demo)
    credentials = json.loads(config.credentials)
    config.credentials = json.dumps({**credentials, "password": "wrong"})
    config.save()
    ok, text = emr_connection_test(clinic=demo)
    assert not ok and "api-password" not in text and "wrong" not in text


def test_connection_test_reports_configuration_mistakes(demo):
    EmrConfig.objects.filter(clinic=demo).update(kind=EmrConfig.Kind.NEXTECH, credentials="{not json")
    assert emr_connection_test(clinic=demo) == (False, "EMR credentials are not valid JSON.")
    EmrConfig.objects.filter(clinic=demo).update(credentials=json.dumps({"client_id": "x"}))
    ok, text = emr_connection_test(clinic=demo)
    assert not ok and "do not fit Nextech" in text


def test_test_connection_admin_action(client, demo, front_desk):
    client.force_login(front_desk)
    url = reverse("admin:emr_emrconfig_changelist")
    response = client.post(url, {"action": "test_connection", "_selected_action": [demo.emr_config.pk]}, follow=True)
    assert "Connected:" in response.content.decode()


# --- The day sheet -------------------------------------------------------------------------------------------------


def test_bookings_by_day_shows_one_clinics_day_in_its_time(client, demo, front_desk):
    mine = hold(demo, hour=9)
    other_clinic = make_clinic("other-spa")
    other_service = Service.objects.create(clinic=other_clinic, name="Botox", price_cents=1000)
    other_provider = Provider.objects.create(clinic=other_clinic, name="Dr. Other")
    start = datetime(2026, 11, 24, 10, tzinfo=other_clinic.tz)
    Booking.objects.create(
        clinic=other_clinic,
        patient_phone="+16175550999",
        patient_name="Someone Else",
        service=other_service,
        provider=other_provider,
        start=start,
        end=start + timedelta(minutes=30),
    )
    client.force_login(front_desk)
    page = client.get(reverse("admin:bookings_booking_day"), {"clinic": demo.pk, "day": "2026-11-24"})
    html = page.content.decode()
    assert page.status_code == 200
    assert "Dr. Sarah Smith" in html and "9:00 AM" in html and NAME in html and "Held" in html
    assert "Someone Else" not in html and "Dr. Other" not in html
    assert client.get(reverse("admin:bookings_booking_day"), {"clinic": other_clinic.pk}).context["clinic"] is None
    assert AuditEvent.objects.filter(action=AuditEvent.Action.LIST, object_type="bookings.booking").exists()
    assert mine.pk


# --- The booking's language (its later texts: confirmation, lifecycle's reminders, the waitlist's offer) ------------


def test_a_booking_is_english_unless_held_in_spanish_and_spanish_only_while_the_clinic_has_it_on(demo):
    from bookings.services import booking_confirmation_text, booking_in_spanish

    english = hold(demo)
    assert english.language == "en" and not booking_in_spanish(english)
    spanish = booking_hold(
        clinic=demo,
        service=Service.objects.get(clinic=demo, name="Botox"),
        provider=Provider.objects.get(clinic=demo, name="Dr. Emily Johnson"),
        start=datetime(2026, 11, 25, 11, tzinfo=demo.tz),
        patient_phone="+16175550124",
        language="es",
        now=NOW,
    )
    assert spanish.language == "es" and booking_in_spanish(spanish)
    assert booking_confirmation_text(spanish).startswith("Su cita esta confirmada: Botox con Dr. Emily Johnson")
    demo.spanish = False
    assert not booking_in_spanish(spanish)
    assert booking_confirmation_text(spanish).startswith("You're booked: Botox")


def test_the_migration_gives_older_bookings_their_conversations_language(demo):
    import importlib

    from django.apps import apps

    from conversation.models import Conversation

    migration = importlib.import_module("bookings.migrations.0008_booking_language")
    conversation = Conversation.objects.create(clinic=demo, patient_phone=PHONE, origin="inbound_text", language="es")
    older = hold(demo)
    Booking.objects.filter(pk=older.pk).update(conversation=conversation, language="en")
    other = hold(demo, day=25, phone="+16175550124")
    migration.from_conversations(apps, None)
    assert Booking.objects.get(pk=older.pk).language == "es" and Booking.objects.get(pk=other.pk).language == "en"
