"""Staff are told (issue 19 item 6): when a patient needs a person, the clinic's chosen staff get an email and the
clinic's staff mobile a text, at most once per conversation per hour, with a link and no patient data."""

import smtplib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.test import TestCase
from django.urls import reverse

from conversation.models import Conversation
from medspa import alerts
from medspa.alerts import staff_alert, staff_alert_email
from medspa.events import publish
from medspa.models import ClinicMembership, StaffAlert
from messaging.models import Message, PhoneNumber

from .conftest import make_clinic, make_staff

# Tuesday 2026-11-24, 11:00 in Boston: inside the sending window.
TUESDAY_11AM = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)
PATIENT, NAME, BODY = "+16175550199", "Jane Doe", "I think my lip is swelling badly"
STAFF_MOBILE = "+16175550142"


@pytest.fixture
def clock():
    with time_machine.travel(TUESDAY_11AM, tick=False) as traveller:
        yield traveller


@pytest.fixture(autouse=True)
def _public_url(settings):
    settings.PUBLIC_BASE_URL = "https://desk.example.com"


def committed(func, *args, **kwargs):
    """``func`` and then its on-commit callbacks (the alert's task, eager here), as a request would run them."""
    with TestCase.captureOnCommitCallbacks(execute=True):
        return func(*args, **kwargs)


@pytest.fixture
def clinic(db):
    clinic = make_clinic("glow", staff_mobile=STAFF_MOBILE)
    PhoneNumber.objects.create(clinic=clinic, number="+16175550100", provider="telnyx", is_default=True)
    for name, notify in (("desk", True), ("owner", True), ("quiet", False)):
        user = make_staff(name, clinic)
        user.email = f"{name}@glow.example.com"
        user.save()
        ClinicMembership.objects.filter(user=user).update(notify=notify)
    return clinic


def _conversation(clinic, phone=PATIENT):
    conversation = Conversation.objects.create(clinic=clinic, patient_phone=phone, origin="inbound_text")
    Conversation.objects.filter(pk=conversation.pk).update(patient_name=NAME)
    Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction="inbound",
        kind="patient",
        from_number=phone,
        to_number="+16175550100",
        body=BODY,
        provider="telnyx",
        status="received",
    )
    return conversation


def _handoff(clinic, conversation, n=1, kind=StaffAlert.Kind.URGENT):
    return committed(
        staff_alert,
        clinic=clinic,
        kind=kind,
        text=f"Conversation #{conversation.pk}: the patient describes a possible complication. Call them.",
        obj=conversation,
        dedupe_key=f"urgent:{conversation.pk}:{n}",
    )


def _staff_texts(sms_outbox):
    return [sms for sms in sms_outbox if sms.to_number == STAFF_MOBILE]


def test_the_chosen_staff_are_emailed_and_the_staff_mobile_texted_a_link_without_patient_data(
    clinic, clock, sms_outbox
):
    conversation = _conversation(clinic)
    alert = _handoff(clinic, conversation)

    thread = "https://desk.example.com" + reverse("admin:conversation_conversation_change", args=[conversation.pk])
    [email] = mail.outbox
    assert sorted(email.to) == ["desk@glow.example.com", "owner@glow.example.com"]  # not "quiet"
    assert email.subject == "[Glow] Urgent patient message"
    [text] = _staff_texts(sms_outbox)
    assert text.from_number == "+16175550100"
    assert text.body == f"[Glow] Urgent patient message: {thread}"
    for sent in (email.subject, email.body, text.body):
        assert NAME not in sent and PATIENT not in sent and "6175550199" not in sent and BODY not in sent
    assert thread in email.body
    alert.refresh_from_db()
    assert alert.emailed_at and alert.notified_at and not alert.throttled
    assert alert.conversation_ref == conversation.pk


def test_a_conversation_is_notified_at_most_once_an_hour(clinic, clock, sms_outbox):
    conversation, other = _conversation(clinic), _conversation(clinic, "+16175550177")
    _handoff(clinic, conversation, 1)
    clock.shift(timedelta(minutes=20))
    second = _handoff(clinic, conversation, 2, kind=StaffAlert.Kind.HANDOFF)
    _handoff(clinic, other, 1)  # another patient: told at once
    assert len(mail.outbox) == 2 and len(_staff_texts(sms_outbox)) == 2
    second.refresh_from_db()
    assert second.throttled and second.emailed_at is None  # listed in the admin, not sent
    assert alerts.staff_alerts_email_unsent(now=TUESDAY_11AM + timedelta(hours=2)) == []  # nor re-sent later

    clock.shift(timedelta(minutes=41))  # an hour after the first notice
    _handoff(clinic, conversation, 3)
    assert len(mail.outbox) == 3 and len(_staff_texts(sms_outbox)) == 3
    assert f"https://desk.example.com/admin/conversation/conversation/{conversation.pk}/change/" in mail.outbox[2].body


def test_alerts_not_about_a_patient_are_emailed_but_not_texted(clinic, clock, sms_outbox):
    committed(staff_alert, clinic=clinic, kind=StaffAlert.Kind.EMR_ERROR, text="The EMR refused a write.", obj=clinic)
    assert len(mail.outbox) == 1 and _staff_texts(sms_outbox) == []
    assert "/admin/medspa/staffalert/" in mail.outbox[0].body


def test_a_failed_text_tells_staff_with_a_link_to_the_thread(clinic, clock, sms_outbox):
    conversation = _conversation(clinic)
    failed = Message.objects.create(
        clinic=clinic,
        conversation=conversation,
        direction="outbound",
        kind="reply",
        from_number="+16175550100",
        to_number=PATIENT,
        body="Your appointment is at 3",
        provider="telnyx",
        status="failed",
        error_code="40300",
    )
    committed(publish, "messaging.message_failed", message=failed)
    conversation.refresh_from_db()
    assert conversation.needs_staff
    alert = StaffAlert.objects.get()
    assert alert.kind == "handoff" and alert.conversation_ref == conversation.pk
    assert f"Text #{failed.pk}" in alert.text and "40300" in alert.text
    [email] = mail.outbox
    assert f"/admin/conversation/conversation/{conversation.pk}/change/" in email.body
    assert "Your appointment" not in email.body and PATIENT not in email.body
    assert len(_staff_texts(sms_outbox)) == 1


def test_a_mail_outage_retries_and_sends_once(clinic, clock, sms_outbox, monkeypatch):
    conversation = _conversation(clinic)
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise smtplib.SMTPServerDisconnected("down")

    monkeypatch.setattr(alerts, "send_mail", down)
    alert = staff_alert(clinic=clinic, kind="urgent", text="Conversation needs a call.", obj=conversation)
    with pytest.raises(smtplib.SMTPException):
        staff_alert_email(alert_id=alert.pk)  # the task retries this with backoff
    monkeypatch.undo()
    alert.refresh_from_db()
    assert calls and alert.emailed_at is None and alert.notified_at is not None
    assert staff_alert_email(alert_id=alert.pk) == 2  # the sweep's retry: still sent, not throttled by itself
    assert Message.objects.filter(to_number=STAFF_MOBILE).count() == 1  # queued once, under the alert's key
    assert staff_alert_email(alert_id=alert.pk) == 0


def test_without_a_staff_mobile_only_email(clinic, clock, sms_outbox):
    clinic.__class__.objects.filter(pk=clinic.pk).update(staff_mobile="")
    clinic.refresh_from_db()
    _handoff(clinic, _conversation(clinic))
    assert len(mail.outbox) == 1 and _staff_texts(sms_outbox) == []


def test_the_owner_chooses_who_is_emailed_on_the_clinic_page(client, clinic):
    owner = make_staff("boss", clinic, role=ClinicMembership.Role.OWNER)
    client.force_login(owner)
    url = reverse("admin:medspa_clinic_change", args=[clinic.pk])
    page = client.get(url)
    assert page.status_code == 200 and "Staff notifications" in page.content.decode()
    form = page.context["adminform"].form
    desk = ClinicMembership.objects.get(user__username="desk")
    quiet = ClinicMembership.objects.get(user__username="quiet")
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None:
            continue
        data[name] = value
    data.update({"notified_staff": [quiet.pk], "staff_mobile": "not a number"})
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({management.add_prefix(k): v for k, v in management.initial.items()})
        for inline_form in formset.formset.forms:
            data.update({inline_form.add_prefix(k): v for k, v in inline_form.initial.items() if v is not None})
            data[inline_form.add_prefix("id")] = inline_form.instance.pk
    data["allowed_origins"] = ""
    refused = client.post(url, data)
    assert refused.status_code == 200 and "staff_mobile" in refused.context["adminform"].form.errors
    data["staff_mobile"] = "+16175550143"
    saved = client.post(url, data)
    assert saved.status_code == 302
    desk.refresh_from_db()
    quiet.refresh_from_db()
    assert (desk.notify, quiet.notify) == (False, True)
    clinic.refresh_from_db()
    assert clinic.staff_mobile == "+16175550143"
