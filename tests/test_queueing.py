"""With the broker down, work written to the database is never lost and never fails its caller: ``enqueue`` says
so and a sweep queues it again."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone
from kombu.exceptions import OperationalError

from medspa.alerts import staff_alert, staff_alerts_email_unsent
from medspa.models import StaffAlert
from medspa.queueing import ENQUEUE_FAILED, enqueue
from medspa.tasks import email_staff_alert

from .conftest import make_clinic, make_staff


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(email_staff_alert, "apply_async", refuse)
    return monkeypatch


def test_enqueue_with_the_broker_down_returns_false_and_counts(broker_down):
    before = ENQUEUE_FAILED.labels("medspa.email_staff_alert")._value.get()
    assert enqueue(email_staff_alert, 1) is False
    assert ENQUEUE_FAILED.labels("medspa.email_staff_alert")._value.get() == before + 1


def test_an_alert_raised_while_the_broker_is_down_is_emailed_by_the_sweep(
    db, broker_down, django_capture_on_commit_callbacks, time_machine
):
    clinic = make_clinic("glow")
    user = make_staff("owner", clinic)
    user.email = "owner@glow.example"
    user.save()
    with django_capture_on_commit_callbacks(execute=True):
        alert = staff_alert(clinic=clinic, kind=StaffAlert.Kind.HANDOFF, text="Conversation #1 needs a person.")
    assert mail.outbox == [] and StaffAlert.objects.get(pk=alert.pk).emailed_at is None  # the caller did not fail
    broker_down.undo()
    assert staff_alerts_email_unsent() == []  # a minute's grace: its own task may still come
    time_machine.move_to(timezone.now() + timedelta(minutes=2))
    assert staff_alerts_email_unsent() == [alert.pk]
    assert len(mail.outbox) == 1 and StaffAlert.objects.get(pk=alert.pk).emailed_at is not None
    assert staff_alerts_email_unsent() == []  # emailed: once


# --- The priority queue and the sweeps' markers -------------------------------------------------------------------
# With a broker (not eager), ``enqueue`` publishes to the task's route or to ``queue``, and leaves a marker that the
# task removes when it starts. Here the publish is recorded instead of sent.


@pytest.fixture
def published(monkeypatch, settings):
    """Tasks published as a broker would take them: [(task name, args, queue or None for the task's route)]."""
    from conversation.tasks import respond
    from inbox.tasks import process_event
    from medspa.celery import app
    from messaging.tasks import send_message

    previous, app.conf.task_always_eager = app.conf.task_always_eager, False
    calls = []
    for task in (process_event, send_message, respond):
        monkeypatch.setattr(
            task,
            "apply_async",
            lambda args, name=task.name, **options: calls.append((name, args[0], options.get("queue"))),
        )
    yield calls
    app.conf.task_always_eager = previous


@pytest.fixture
def glow(db, settings, time_machine):
    from messaging.models import PhoneNumber

    from .messaging_helpers import TELNYX_PUBLIC

    time_machine.move_to(datetime(2026, 11, 24, 17, 0, tzinfo=UTC), tick=False)  # noon in Boston
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    clinic = make_clinic("glow", name="Glow")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550100", provider="telnyx")
    return clinic


def test_the_default_route_of_each_task_is_its_kind_of_work():
    from medspa.celery import app

    routes = {name: app.amqp.router.route({}, name)["queue"].name for name in ROUTED}
    assert routes == ROUTED


ROUTED = {"inbox.process_event": "inbound", "messaging.send_message": "sms", "conversation.respond": "ai"}


def test_stop_help_and_missed_calls_skip_the_inbound_queue_questions_do_not(client, glow, published):
    from .messaging_helpers import post_telnyx, telnyx_envelope, telnyx_inbound

    path = "/webhooks/telnyx/messages"
    for text in ("STOP", "how much is botox?", "help", "Start", "stop texting me please", "is there parking"):
        assert post_telnyx(client, path, telnyx_inbound(text)).status_code == 200
    hangup = {"direction": "incoming", "from": "+16175550123", "to": "+15555550100", "hangup_cause": "timeout"}
    assert post_telnyx(client, "/webhooks/telnyx/voice", telnyx_envelope("call.hangup", hangup)).status_code == 200
    queues = [queue for name, _, queue in published if name == "inbox.process_event"]
    assert queues == ["priority", None, "priority", "priority", "priority", None, "priority"]


def test_intros_and_compliance_confirmations_are_sent_from_the_priority_queue(
    glow, published, django_capture_on_commit_callbacks
):
    from messaging.services import message_queue

    for kind in ("intro", "compliance", "reply", "notice"):
        with django_capture_on_commit_callbacks(execute=True):
            message_queue(clinic=glow, to="+16175550123", body="Hi", kind=kind, idempotency_key=kind)
    assert [queue for name, _, queue in published if name == "messaging.send_message"] == [
        "priority",
        "priority",
        None,
        None,
    ]


@pytest.mark.parametrize("sms_queue_idle", [True, False])
def test_a_reply_is_sent_here_while_the_sms_queue_is_idle_else_queued(
    glow, published, monkeypatch, sms_outbox, django_capture_on_commit_callbacks, sms_queue_idle
):
    """``send_here``: one task less per reply when nothing waits in the sms queue; behind a backlog the reply
    takes its place in the queue. Intros and compliance texts always go through the priority queue."""
    from messaging import services
    from messaging.models import Message

    asked = []
    monkeypatch.setattr(services, "queue_idle", lambda task: asked.append(task) or sms_queue_idle)
    for kind in ("reply", "intro", "compliance"):
        with django_capture_on_commit_callbacks(execute=True):
            services.message_queue(
                clinic=glow, to="+16175550123", body="Hi", kind=kind, idempotency_key=kind, send_here=True
            )
    sends = [queue for name, _, queue in published if name == "messaging.send_message"]
    if sms_queue_idle:
        assert sends == ["priority", "priority"] and len(sms_outbox) == 1
        assert Message.objects.get(idempotency_key="reply#0").status == Message.Status.SENT
    else:
        assert sends == [None, "priority", "priority"] and sms_outbox == []
        assert Message.objects.get(idempotency_key="reply#0").status == Message.Status.QUEUED
    assert asked == ["messaging.send_message"]  # urgent kinds never ask


def test_a_reply_whose_send_here_fails_is_queued(glow, published, monkeypatch, django_capture_on_commit_callbacks):
    from messaging import services

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(services, "queue_idle", lambda task: True)
    monkeypatch.setattr(services, "message_send", broken)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_queue(
            clinic=glow, to="+16175550123", body="Hi", kind="reply", idempotency_key="r", send_here=True
        )
    assert [queue for name, _, queue in published if name == "messaging.send_message"] == [None]


def test_after_a_slow_send_here_replies_are_queued_for_a_while(
    glow, published, monkeypatch, sms_outbox, django_capture_on_commit_callbacks
):
    """A slow provider holds up the sms workers, not the turns' worker."""
    from messaging import services

    monkeypatch.setattr(services, "queue_idle", lambda task: True)
    monkeypatch.setattr(services, "_send_here_paused_until", 0.0)
    monkeypatch.setattr(services, "_sent_here", True)  # not the process's first send (which builds the client)
    monkeypatch.setattr(services, "SEND_HERE_SLOW_SECONDS", -1.0)  # every send counts as slow
    for key in ("first", "second"):
        with django_capture_on_commit_callbacks(execute=True):
            services.message_queue(
                clinic=glow, to="+16175550123", body="Hi", kind="reply", idempotency_key=key, send_here=True
            )
    assert len(sms_outbox) == 1  # the first, here
    assert [queue for name, _, queue in published if name == "messaging.send_message"] == [None]  # the second
    monkeypatch.setattr(services, "_send_here_paused_until", 0.0)  # the pause over (SEND_HERE_PAUSE_SECONDS)
    monkeypatch.setattr(services, "SEND_HERE_SLOW_SECONDS", 2.0)
    with django_capture_on_commit_callbacks(execute=True):
        services.message_queue(
            clinic=glow, to="+16175550123", body="Hi", kind="reply", idempotency_key="third", send_here=True
        )
    assert len(sms_outbox) == 2


def test_the_first_send_here_of_a_process_never_counts_as_slow(
    glow, published, monkeypatch, sms_outbox, django_capture_on_commit_callbacks
):
    from messaging import services

    monkeypatch.setattr(services, "queue_idle", lambda task: True)
    monkeypatch.setattr(services, "_send_here_paused_until", 0.0)
    monkeypatch.setattr(services, "_sent_here", False)
    monkeypatch.setattr(services, "SEND_HERE_SLOW_SECONDS", -1.0)
    for key in ("first", "second", "third"):
        with django_capture_on_commit_callbacks(execute=True):
            services.message_queue(
                clinic=glow, to="+16175550123", body="Hi", kind="reply", idempotency_key=key, send_here=True
            )
    assert len(sms_outbox) == 2  # the first (building the client) and the second (slow: the third is queued)
    assert [queue for name, _, queue in published if name == "messaging.send_message"] == [None]


def test_queue_idle_cannot_tell_without_a_broker(db):
    from medspa.queueing import queue_idle

    assert queue_idle("messaging.send_message") is False  # eager tasks (no Redis): queue as usual


def test_a_queued_task_is_marked_until_it_starts_or_the_marker_expires(db, published, time_machine):
    from inbox.tasks import process_event
    from medspa.queueing import MARKER_SECONDS, queued_ids, task_started

    time_machine.move_to(datetime(2026, 11, 24, 17, 0, tzinfo=UTC), tick=False)
    assert enqueue(process_event, 7) and enqueue(process_event, 8)
    assert queued_ids("inbox.process_event", [7, 8, 9]) == {7, 8}
    task_started(task=process_event, args=(7,))  # a worker took it
    assert queued_ids("inbox.process_event", [7, 8, 9]) == {8}
    time_machine.shift(timedelta(seconds=MARKER_SECONDS + 1))  # 8 was lost with a worker killed while holding it
    assert queued_ids("inbox.process_event", [7, 8, 9]) == set()


def test_a_failed_publish_leaves_no_marker(db, published, monkeypatch):
    from inbox.tasks import process_event
    from medspa.queueing import queued_ids

    def refuse(*args, **kwargs):
        raise OperationalError("Connection refused.")

    monkeypatch.setattr(process_event, "apply_async", refuse)
    assert enqueue(process_event, 7) is False
    assert queued_ids("inbox.process_event", [7]) == set()  # the sweep queues it again at once


def test_the_sweeps_leave_alone_what_only_waits_in_a_long_queue(
    client, glow, published, time_machine, django_capture_on_commit_callbacks
):
    from conversation.services import conversations_resume_unanswered
    from inbox import services as inbox
    from inbox.models import WebhookEvent
    from messaging.models import Message
    from messaging.services import message_queue, messages_reconcile

    from .messaging_helpers import post_telnyx, telnyx_inbound

    post_telnyx(client, "/webhooks/telnyx/messages", telnyx_inbound("how much is botox?"))
    event = WebhookEvent.objects.get()
    with django_capture_on_commit_callbacks(execute=True):
        (text,) = message_queue(clinic=glow, to="+16175550199", body="Hi", kind="reply", idempotency_key="r")
    time_machine.shift(timedelta(seconds=31))  # past every sweep's grace, but still queued behind a burst
    published.clear()
    assert inbox.events_sweep() == []
    assert messages_reconcile() == {}
    assert published == []
    # the inbound worker took the event, ran it, and queued the answer; the answer waits in the ai queue too
    with django_capture_on_commit_callbacks(execute=True):
        inbox.event_process(event_id=event.pk)
    assert published == [("conversation.respond", Message.objects.get(direction="inbound").conversation_id, None)]
    assert Message.objects.filter(direction="inbound").count() == 1
    time_machine.shift(timedelta(seconds=20))
    assert conversations_resume_unanswered() == []
    # markers expire: what still has not started is taken for lost and queued again, once
    time_machine.shift(timedelta(seconds=60))
    with django_capture_on_commit_callbacks(execute=False):
        assert messages_reconcile() == {"requeued": [text.pk]}
        assert conversations_resume_unanswered() == [Message.objects.get(direction="inbound").conversation_id]


def test_a_worker_that_starts_voids_the_markers_written_before_it(db, published, time_machine):
    """A worker killed while holding a task loses it; its restart (or any worker's start) means the sweeps must
    not wait for the marker to expire."""
    from inbox.tasks import process_event
    from medspa.queueing import queued_ids, worker_started

    time_machine.move_to(datetime(2026, 11, 24, 17, 0, tzinfo=UTC), tick=False)
    enqueue(process_event, 7)
    time_machine.shift(timedelta(seconds=5))
    worker_started()
    time_machine.shift(timedelta(seconds=1))
    enqueue(process_event, 8)  # queued after the start: still waiting
    assert queued_ids("inbox.process_event", [7, 8]) == {8}


COLD_PROCESS = """
import json, threading, time
import django
django.setup()
import celery.loaders.base
from medspa.queueing import registered

find = celery.loaders.base.find_related_module

def slow_find(package, related_name):  # the imports of a cold process take this long
    time.sleep(0.02)
    return find(package, related_name)

celery.loaders.base.find_related_module = slow_find
found, failed = [], []

def look_up():
    try:
        found.append(registered("inbox.process_event").name)
    except Exception as exc:
        failed.append(type(exc).__name__)

threads = [threading.Thread(target=look_up) for _ in range(2)]
threads[0].start()
time.sleep(0.05)  # the first one's discovery is under way
threads[1].start()
for thread in threads:
    thread.join(10)
print(json.dumps({"found": found, "failed": failed}))
"""


def test_two_threads_that_both_find_a_task_missing_both_get_it():
    """A threaded web process (runserver, gunicorn --threads) whose first two webhooks arrive together: both look up
    inbox.process_event before any tasks module is imported. Celery's autodiscovery returns at once, importing
    nothing, to a second caller while the first one's runs; ``registered`` makes the second wait instead. Run in a
    new process: only a cold one has imported no tasks module yet."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "medspa.settings"
    done = subprocess.run(
        [sys.executable, "-c", COLD_PROCESS], capture_output=True, text=True, timeout=120, env=env, check=True
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"found": ["inbox.process_event", "inbox.process_event"], "failed": []}


def test_a_task_keeps_its_database_connection_as_a_request_does(monkeypatch):
    """Celery's Django fixup would close every connection around every task (a new PostgreSQL connection and server
    process per task); it leaves them to Django's close_old_connections, as around a request (CONN_MAX_AGE)."""
    from types import SimpleNamespace

    from celery.fixups.django import DjangoWorkerFixup

    from medspa import celery as module

    fixup = DjangoWorkerFixup(module.app)
    assert fixup.db_reuse_max >= 10_000  # the fixup's own close comes only after that many tasks
    closed = []
    monkeypatch.setattr("django.db.close_old_connections", lambda: closed.append(True))
    module._close_old_connections(task=SimpleNamespace(request=SimpleNamespace(is_eager=True)))
    assert closed == []  # an eager task runs in its caller's request or transaction
    module._close_old_connections(task=SimpleNamespace(request=SimpleNamespace(is_eager=False)))
    assert closed == [True]
