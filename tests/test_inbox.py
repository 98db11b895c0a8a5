"""The webhook inbox: nothing a provider sends is lost. A crashing handler is retried (by the sweep and by the
provider's redelivery) and processed exactly once when the fault is gone; a lost task is picked up by the sweep;
after the last retry staff are told and can reprocess from the admin."""

import json
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.urls import reverse
from django.utils import timezone

from inbox import services as inbox
from inbox.models import WebhookEvent
from medspa.models import StaffAlert
from messaging.models import Message, PhoneNumber

from .conftest import make_clinic, make_staff
from .messaging_helpers import TELNYX_PUBLIC, post_telnyx, telnyx_inbound

TELNYX = "/webhooks/telnyx/messages"


@pytest.fixture
def clinic(db, settings):
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    clinic = make_clinic("glow", name="Glow")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550100", provider="telnyx")
    return clinic


@pytest.fixture
def broken_handler(monkeypatch):
    """The Telnyx message.received handler raises until ``fixed()`` is called: a bug, a bad deploy, a dependency
    down. The real handler runs afterwards."""
    key = ("telnyx", "message.received")
    real = inbox.HANDLERS[key]
    state = {"broken": True, "calls": 0}

    def run(event):
        state["calls"] += 1
        if state["broken"]:
            raise AttributeError("'str' object has no attribute 'get'")
        return real.run(event)

    monkeypatch.setitem(inbox.HANDLERS, key, inbox.Handler(run, real.route))
    state["fixed"] = lambda: state.update(broken=False)
    return state


def inbound_texts():
    return Message.objects.filter(direction=Message.Direction.INBOUND)


def test_a_crash_in_a_handler_is_recorded_with_its_class_and_a_retry_time(client, clinic, broken_handler):
    before = timezone.now()
    assert post_telnyx(client, TELNYX, telnyx_inbound("hi, how much is botox?")).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED and event.attempts == 1
    assert event.error_class == "AttributeError" and "has no attribute" in event.reason
    assert event.next_attempt_at >= before + timedelta(seconds=10)
    assert not inbound_texts().exists()  # the handler's writes were rolled back with it


def test_a_failed_event_is_processed_once_by_the_sweep_after_the_fault_is_gone(
    client, clinic, broken_handler, django_capture_on_commit_callbacks, sms_outbox, time_machine
):
    post_telnyx(client, TELNYX, telnyx_inbound("hi, how much is botox?"))
    event = WebhookEvent.objects.get()
    assert inbox.events_sweep() == []  # not due yet: the backoff holds
    broken_handler["fixed"]()
    time_machine.move_to(event.next_attempt_at + timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert inbox.events_sweep() == [event.pk]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == 2 and event.error_class == ""
    assert inbound_texts().count() == 1 and event.clinic == clinic
    assert inbox.events_sweep(now=timezone.now() + timedelta(hours=2)) == []  # done: nothing more to do
    assert inbound_texts().count() == 1


def test_a_redelivery_of_a_failed_event_is_queued_again_not_swallowed(client, clinic, broken_handler):
    body = telnyx_inbound("hi, how much is botox?")
    post_telnyx(client, TELNYX, body)
    broken_handler["fixed"]()
    assert post_telnyx(client, TELNYX, body).status_code == 200  # Telnyx retries the same event id
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED and event.deliveries == 2 and event.attempts == 2
    assert inbound_texts().count() == 1
    post_telnyx(client, TELNYX, body)  # a third delivery, after it was processed: a plain duplicate
    event.refresh_from_db()
    assert event.deliveries == 3 and event.attempts == 2 and inbound_texts().count() == 1


def test_after_the_last_retry_staff_are_told_and_reprocess_from_the_admin(client, clinic, broken_handler):
    post_telnyx(client, TELNYX, telnyx_inbound("hi"))
    event = WebhookEvent.objects.get()
    now = timezone.now()
    while event.next_attempt_at is not None:
        now = event.next_attempt_at + timedelta(seconds=1)
        inbox.event_process(event_id=event.pk, now=now)
        event.refresh_from_db()
    assert event.status == WebhookEvent.Status.FAILED and event.attempts == inbox.MAX_ATTEMPTS
    assert list(WebhookEvent.objects.needs_staff()) == [event]
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.WEBHOOK)
    assert alert.clinic == clinic and f"#{event.pk}" in alert.text and "hi" not in alert.text.split(")")[-1]
    assert inbox.events_sweep(now=now + timedelta(days=1)) == []  # the sweep has given up

    broken_handler["fixed"]()
    staff = make_staff("manager", clinic)
    client.force_login(staff)
    url = reverse("admin:inbox_webhookevent_changelist")
    page = client.get(url + "?needs_staff=yes")
    assert page.status_code == 200 and [e.pk for e in page.context["cl"].result_list] == [event.pk]
    response = client.post(url, {"action": "reprocess", "_selected_action": [event.pk]}, follow=True)
    assert "1 event(s) queued to be processed again" in response.content.decode()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and inbound_texts().count() == 1


def test_reprocessing_a_processed_event_changes_nothing(client, clinic):
    post_telnyx(client, TELNYX, telnyx_inbound("hi"))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert inbox.event_reprocess(event=event) is False
    assert inbox.event_process(event_id=event.pk) == "skipped"
    assert inbound_texts().count() == 1


def test_a_dropped_database_connection_mid_event_is_retried_once_the_database_is_back(
    client, clinic, monkeypatch, django_capture_on_commit_callbacks, time_machine
):
    from messaging import services as messaging

    real = messaging.inbound_receive
    calls = []

    def dropped(**kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError("terminating connection due to administrator command")
        return real(**kwargs)

    monkeypatch.setattr(messaging, "inbound_receive", dropped)
    post_telnyx(client, TELNYX, telnyx_inbound("hi"))
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.FAILED and event.error_class == "OperationalError"
    time_machine.move_to(event.next_attempt_at)
    with django_capture_on_commit_callbacks(execute=True):
        inbox.events_sweep()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and inbound_texts().count() == 1


def test_an_event_whose_worker_died_mid_handler_is_taken_again_after_its_lease(
    client, clinic, django_capture_on_commit_callbacks, monkeypatch, time_machine
):
    monkeypatch.setattr(inbox, "enqueue", lambda pk, **options: None)  # the task never runs: its worker died
    post_telnyx(client, TELNYX, telnyx_inbound("hi"))
    event = WebhookEvent.objects.get()
    now = timezone.now()
    WebhookEvent.objects.filter(pk=event.pk).update(status="processing", lease_until=now + inbox.LEASE, attempts=1)
    monkeypatch.undo()
    assert inbox.events_sweep(now=now + timedelta(seconds=30)) == []  # still held by its (dead) worker
    time_machine.move_to(now + inbox.LEASE + timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert inbox.events_sweep() == [event.pk]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == 2 and inbound_texts().count() == 1


def test_with_the_broker_down_the_provider_gets_200_and_the_sweep_processes_the_event(
    client, clinic, monkeypatch, time_machine
):
    from inbox import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.process_event, "apply_async", broker_down)
    assert post_telnyx(client, TELNYX, telnyx_inbound("hi")).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PENDING
    monkeypatch.undo()
    assert inbox.events_sweep() == []  # within its grace period its own task may still come
    time_machine.move_to(timezone.now() + inbox.PENDING_GRACE + timedelta(seconds=1))
    assert inbox.events_sweep() == [event.pk]
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and inbound_texts().count() == 1
    assert event.next_attempt_at is None


def test_the_sweep_hands_a_waiting_pending_event_back_at_most_once_a_minute(clinic, monkeypatch):
    queued = []
    monkeypatch.setattr(inbox, "enqueue", lambda pk, **options: queued.append(pk))
    event = WebhookEvent.objects.create(provider="telnyx", event_id="e-1", event_type="message.received")
    later = timezone.now() + timedelta(seconds=30)
    assert inbox.events_sweep(now=later) == [event.pk]
    assert inbox.events_sweep(now=later + timedelta(seconds=10)) == []
    assert inbox.events_sweep(now=later + timedelta(seconds=61)) == [event.pk]
    assert queued == [event.pk, event.pk]


def test_two_runs_of_the_same_event_never_both_run_its_handler(clinic, monkeypatch):
    calls = []
    monkeypatch.setitem(
        inbox.HANDLERS, ("telnyx", "message.received"), inbox.Handler(lambda e: calls.append(e.pk) or None)
    )
    event = WebhookEvent.objects.create(provider="telnyx", event_id="e-2", event_type="message.received")
    WebhookEvent.objects.filter(pk=event.pk).update(status="processing", lease_until=timezone.now() + inbox.LEASE)
    assert inbox.event_process(event_id=event.pk) == "skipped"  # another worker holds it
    WebhookEvent.objects.filter(pk=event.pk).update(status="pending", lease_until=None)
    assert inbox.event_process(event_id=event.pk) == "processed"
    assert inbox.event_process(event_id=event.pk) == "skipped"
    assert calls == [event.pk]


def test_an_events_payload_stays_in_the_inbox_and_out_of_the_log(client, clinic, caplog, broken_handler):
    post_telnyx(client, TELNYX, telnyx_inbound("my number is 617 555 0199, call me", from_="+16175550142"))
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "617 555 0199" not in logged and "+16175550142" not in logged and "call me" not in logged
    assert json.dumps(WebhookEvent.objects.get().payload).count("call me") == 1
