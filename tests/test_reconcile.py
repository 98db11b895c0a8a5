"""Stuck texts: the reconcile sweep asks the provider what became of a text stuck in sending or unknown, sends
again only what the provider certainly never got, tells staff about the rest, and re-enqueues lost queued texts."""

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
from django.db import OperationalError

from conversation.models import Conversation
from medspa.models import StaffAlert
from messaging import services
from messaging.backends import ProviderMessage, SendError, locmem
from messaging.backends.console import ConsoleBackend
from messaging.models import Message, PhoneNumber
from messaging.services import message_queue, message_send, messages_reconcile
from messaging.tasks import reconcile_messages

from .conftest import make_clinic
from .fakes.telnyx_messaging import fake_telnyx  # noqa: F401  (fixture)

PATIENT = "+16175550123"
TELNYX_NUMBER = "+15555550100"
TWILIO_NUMBER = "+15555550101"
ACCOUNT = "AC" + "0" * 32
TWILIO = "http://twilio.fake"  # TWILIO_BASE_URL: the SDK's requests go there, answered by `responses`
MESSAGES = f"{TWILIO}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
NOON = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # 12:00 in Boston


@pytest.fixture
def clinic(db, settings, time_machine):
    time_machine.move_to(NOON, tick=False)
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    clinic = make_clinic("demo", name="Glow")
    PhoneNumber.objects.create(clinic=clinic, number=TELNYX_NUMBER, provider="telnyx", messaging_profile_id="prof-1")
    return clinic


@pytest.fixture
def conversation(clinic):
    return Conversation.objects.create(clinic=clinic, patient_phone=PATIENT, origin="web_lead")


@pytest.fixture
def twilio(settings, clinic):
    """The clinic texts from a Twilio number; Twilio's REST API is answered by `responses` (no network)."""
    settings.SMS_BACKEND = ""
    settings.TWILIO_ACCOUNT_SID = ACCOUNT
    settings.TWILIO_AUTH_TOKEN = "twilio-token"
    settings.TWILIO_BASE_URL = TWILIO
    PhoneNumber.objects.filter(clinic=clinic).delete()
    PhoneNumber.objects.create(clinic=clinic, number=TWILIO_NUMBER, provider="twilio")
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """One beat run of the sweep, its on-commit sends executed (tasks are eager in tests)."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return messages_reconcile()

    return run


def twilio_message(sid, *, body, status, created=NOON, to=PATIENT, from_=TWILIO_NUMBER, direction="outbound-api"):
    stamp = created.strftime("%a, %d %b %Y %H:%M:%S +0000")
    return {
        "sid": sid,
        "account_sid": ACCOUNT,
        "body": body,
        "status": status,
        "to": to,
        "from": from_,
        "direction": direction,
        "date_created": stamp,
        "date_updated": stamp,
        "date_sent": None if status in ("queued", "accepted") else stamp,
        "messaging_service_sid": None,
        "num_segments": "1",
        "error_code": None,
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{sid}.json",
    }


def twilio_page(*messages):
    return {
        "messages": list(messages),
        "first_page_uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?PageSize=200&Page=0",
        "next_page_uri": None,
        "previous_page_uri": None,
        "page": 0,
        "page_size": 200,
        "start": 0,
        "end": max(len(messages) - 1, 0),
        "uri": f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json?PageSize=200&Page=0",
    }


def calls(mock, method, url=MESSAGES):
    return [c for c in mock.calls if c.request.method == method and c.request.url.split("?")[0] == url]


def lose_the_write_after_the_send(monkeypatch):
    """The database connection drops right after the provider accepted the text: its "sent" write is lost."""
    finish = services._finish

    def failing(message, status, **fields):
        if status == Message.Status.SENT:
            raise OperationalError("server closed the connection unexpectedly")
        return finish(message, status, **fields)

    monkeypatch.setattr(services, "_finish", failing)


def killed_after_the_claim(message):
    """A worker claimed the row (queued -> sending) and was killed before its request left."""
    Message.objects.filter(pk=message.pk).update(status="sending", attempts=1, updated_at=NOON)


def queue_without_task(clinic, **kwargs):
    """message_queue whose on-commit enqueue never reaches a worker (the task is lost with a flushed Redis)."""
    defaults = {"to": PATIENT, "body": "Your visit is confirmed.", "kind": "reply", "idempotency_key": "r1"}
    (message,) = message_queue(clinic=clinic, **{**defaults, **kwargs})
    return message


# --- Stuck in sending ---------------------------------------------------------------------------------------------


def test_a_text_stuck_sending_that_twilio_delivered_becomes_delivered(
    clinic, conversation, twilio, sweep, time_machine, monkeypatch
):
    twilio.add(responses.POST, MESSAGES, json=twilio_message("SM1", body="Hi", status="queued"), status=201)
    message = queue_without_task(clinic, body="Hi", conversation=conversation)
    lose_the_write_after_the_send(monkeypatch)
    with pytest.raises(OperationalError):
        message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "sending" and message.provider_message_id is None
    monkeypatch.undo()

    twilio.add(responses.GET, MESSAGES, json=twilio_page(twilio_message("SM1", body="Hi", status="delivered")))
    time_machine.shift(timedelta(seconds=90))
    assert sweep() == {}  # not stuck for SMS_STUCK_SECONDS (120) yet: the worker may still be on it
    time_machine.shift(timedelta(seconds=31))
    assert sweep() == {"delivered": [message.pk]}

    message.refresh_from_db()
    assert message.status == "delivered" and message.provider_message_id == "SM1"
    assert message.sent_at == NOON and message.delivered_at is not None
    (search,) = calls(twilio, "GET")
    query = parse_qs(urlparse(search.request.url).query)
    assert query["To"] == [PATIENT] and query["From"] == [TWILIO_NUMBER]
    assert "DateSent>" not in query  # a message Twilio still queues has no date_sent yet
    assert len(calls(twilio, "POST")) == 1  # never sent again
    assert not StaffAlert.objects.exists() and not Conversation.objects.get().needs_staff


def test_a_stuck_text_the_provider_never_got_is_sent_exactly_once(clinic, twilio, sweep, time_machine):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)
    twilio.add(responses.GET, MESSAGES, json=twilio_page())  # Twilio has nothing from us to the patient
    twilio.add(responses.POST, MESSAGES, json=twilio_message("SM9", body=message.body, status="queued"), status=201)
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"resent": [message.pk]}

    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id == "SM9" and message.attempts == 2
    assert message.idempotency_key == "r1#0"  # the same row, the same key: sent through the normal path
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {}  # a second sweep finds nothing stuck
    assert len(calls(twilio, "POST")) == 1 and len(calls(twilio, "GET")) == 1
    body = calls(twilio, "POST")[0].request.body
    sent = parse_qs(body.decode() if isinstance(body, bytes) else body)
    assert sent["To"] == [PATIENT] and sent["Body"] == [message.body]


def test_a_stuck_text_that_cannot_be_settled_alerts_staff_once_and_flags_the_conversation(
    clinic,
    conversation,
    fake_telnyx,  # noqa: F811
    sweep,
    time_machine,
    monkeypatch,
):
    message = queue_without_task(clinic, conversation=conversation)
    lose_the_write_after_the_send(monkeypatch)
    with pytest.raises(OperationalError):
        message_send(message_id=message.pk)  # Telnyx accepted it; we never learnt its id
    monkeypatch.undo()
    assert len(fake_telnyx.requests) == 1

    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"unsettled": [message.pk]}  # Telnyx has no search by sender and recipient
    message.refresh_from_db()
    assert message.status == "unknown" and message.provider_message_id is None
    assert Conversation.objects.get().needs_staff
    alert = StaffAlert.objects.get()
    assert alert.kind == "handoff" and alert.clinic == clinic
    assert alert.object_type == "messaging.message" and alert.object_id == str(message.pk)
    assert f"#{message.pk}" in alert.text and f"conversation #{conversation.pk}" in alert.text
    assert PATIENT not in alert.text and TELNYX_NUMBER not in alert.text and message.body not in alert.text

    Conversation.objects.update(needs_staff=False)  # staff looked
    for _ in range(3):
        time_machine.shift(timedelta(seconds=121))
        assert sweep() == {"still_unsettled": [message.pk]}
    assert StaffAlert.objects.count() == 1 and not Conversation.objects.get().needs_staff
    assert len(fake_telnyx.requests) == 1  # never resent
    assert fake_telnyx.lookups == []  # nothing to ask Telnyx without an id

    time_machine.shift(timedelta(hours=25))  # a day after staff were told, the sweep leaves it to them
    assert sweep() == {}


def test_an_unknown_text_after_a_timeout_is_settled_by_the_search(clinic, twilio, sweep, time_machine):
    twilio.add(responses.POST, MESSAGES, body=requests.exceptions.ReadTimeout("read timed out"))
    message = queue_without_task(clinic)
    assert message_send(message_id=message.pk) == "unknown"
    message.refresh_from_db()
    assert message.status == "unknown"

    created = NOON + timedelta(seconds=1)
    twilio.add(
        responses.GET,
        MESSAGES,
        json=twilio_page(twilio_message("SM5", body=message.body, status="sent", created=created)),
    )
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"sent": [message.pk]}
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id == "SM5" and message.sent_at == created
    assert len(calls(twilio, "POST")) == 1


def test_an_unknown_text_with_a_telnyx_id_is_settled_by_asking_telnyx(
    clinic,
    fake_telnyx,  # noqa: F811
    sweep,
    time_machine,
):
    message = queue_without_task(clinic)
    assert message_send(message_id=message.pk) == "sent"
    message.refresh_from_db()
    provider_id = message.provider_message_id
    Message.objects.filter(pk=message.pk).update(status="unknown")  # its status was never settled
    fake_telnyx.set_status(provider_id, "delivered")

    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"delivered": [message.pk]}
    message.refresh_from_db()
    assert message.status == "delivered"
    (lookup,) = fake_telnyx.lookups
    assert lookup["path"] == f"/v2/messages/{provider_id}" and lookup["headers"]["Authorization"] == "Bearer KEY_test"
    assert len(fake_telnyx.requests) == 1


def test_an_unknown_text_with_a_twilio_sid_is_settled_by_fetching_it(clinic, conversation, twilio, sweep, time_machine):
    message = queue_without_task(clinic, conversation=conversation)
    Message.objects.filter(pk=message.pk).update(status="unknown", provider_message_id="SM3", updated_at=NOON)
    fetch = f"{TWILIO}/2010-04-01/Accounts/{ACCOUNT}/Messages/SM3.json"
    twilio.add(responses.GET, fetch, json=twilio_message("SM3", body=message.body, status="undelivered"))
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"failed": [message.pk]}
    assert Message.objects.get().status == "failed" and Conversation.objects.get().needs_staff
    assert len(calls(twilio, "GET", fetch)) == 1 and calls(twilio, "POST") == []


def test_an_id_telnyx_no_longer_knows_is_never_resent(clinic, fake_telnyx, sweep, time_machine):  # noqa: F811
    message = queue_without_task(clinic)
    Message.objects.filter(pk=message.pk).update(status="unknown", provider_message_id="gone-1", updated_at=NOON)
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"unsettled": [message.pk]}  # 404: we hold its id, so Telnyx did accept it once
    assert fake_telnyx.requests == [] and Message.objects.get().status == "unknown"


def test_a_message_twilio_holds_that_is_not_ours_is_never_taken_for_absence(clinic, twilio, sweep, time_machine):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)
    # Something else went to the patient since: perhaps our text, altered on the way; we cannot tell them apart.
    other = twilio_message("SM7", body="A text no row of ours has", status="delivered")
    twilio.add(responses.GET, MESSAGES, json=twilio_page(other))
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"unsettled": [message.pk]}
    assert calls(twilio, "POST") == [] and StaffAlert.objects.count() == 1


def test_a_message_another_row_owns_does_not_count_as_ours(clinic, twilio, sweep, time_machine):
    first = queue_without_task(clinic, body="Part one.", idempotency_key="a")
    Message.objects.filter(pk=first.pk).update(status="sent", provider_message_id="SM1")
    message = queue_without_task(clinic, body="Part one.", idempotency_key="b")
    killed_after_the_claim(message)
    twilio.add(responses.GET, MESSAGES, json=twilio_page(twilio_message("SM1", body="Part one.", status="sent")))
    twilio.add(responses.POST, MESSAGES, json=twilio_message("SM2", body="Part one.", status="queued"), status=201)
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"resent": [message.pk]}
    assert Message.objects.get(pk=message.pk).provider_message_id == "SM2"


# --- Concurrency: a worker and the sweep never both act -------------------------------------------------------------


def test_a_worker_that_finishes_while_the_sweep_asks_wins(clinic, sweep, time_machine, monkeypatch):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)

    def worker_finishes_meanwhile(self, sms, *, since):
        Message.objects.filter(pk=message.pk).update(status="sent", provider_message_id="locmem-late")
        return []

    monkeypatch.setattr(locmem.LocmemBackend, "find_sent", worker_finishes_meanwhile)
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"raced": [message.pk]}
    assert Message.objects.get().status == "sent" and locmem.outbox == []


def test_a_worker_stalled_past_the_bound_does_not_send_after_the_sweep_took_its_row(
    clinic, sweep, time_machine, monkeypatch
):
    message = queue_without_task(clinic)
    build = services._outbound_sms
    outcomes = []

    def stall_then_build(row):  # worker A claimed the row, then stalled past SMS_STUCK_SECONDS
        if not outcomes:
            outcomes.append("stalled")
            time_machine.shift(timedelta(seconds=121))
            outcomes.append(sweep())  # the provider never got it: queued again, worker B sends it
        return build(row)

    monkeypatch.setattr(services, "_outbound_sms", stall_then_build)
    assert message_send(message_id=message.pk) == "skipped"  # worker A wakes up: its claim is gone
    assert outcomes[1] == {"resent": [message.pk]}
    assert len(locmem.outbox) == 1 and Message.objects.get().status == "sent"


def test_a_text_stuck_again_and_again_fails_for_staff_instead_of_looping(clinic, conversation, sweep, time_machine):
    message = queue_without_task(clinic, conversation=conversation)
    Message.objects.filter(pk=message.pk).update(status="sending", attempts=6, updated_at=NOON)
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"gave_up": [message.pk]}
    message.refresh_from_db()
    assert message.status == "failed" and "6 times" in message.error_detail
    assert Conversation.objects.get().needs_staff and locmem.outbox == []


# --- Provider errors, the alert closing, settings --------------------------------------------------------------------


def test_provider_errors_are_retried_quietly_before_staff_are_told(clinic, sweep, time_machine):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)
    time_machine.shift(timedelta(seconds=121))
    locmem.lookups.append(SendError("HTTP 503", code="503", transient=True))
    assert sweep() == {"provider_error": [message.pk]}
    assert Message.objects.get().status == "sending" and not StaffAlert.objects.exists()
    time_machine.shift(timedelta(minutes=10))  # still failing 5 x SMS_STUCK_SECONDS after the claim
    locmem.lookups.append(SendError("HTTP 503", code="503", transient=True))
    assert sweep() == {"unsettled": [message.pk]}
    assert StaffAlert.objects.count() == 1 and locmem.outbox == []


def test_the_alert_closes_when_a_later_sweep_settles_the_text(clinic, sweep, time_machine):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)
    locmem.lookups.append(None)  # cannot tell
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"unsettled": [message.pk]}
    found = ProviderMessage("locmem-x", "delivered", message.body, NOON)
    locmem.lookups.append([found])
    time_machine.shift(timedelta(seconds=121))
    assert sweep() == {"delivered": [message.pk]}
    assert Message.objects.get().provider_message_id == "locmem-x"
    assert StaffAlert.objects.get().resolved_at is not None


def test_the_bound_is_a_setting_with_a_floor(clinic, sweep, time_machine, settings):
    message = queue_without_task(clinic)
    killed_after_the_claim(message)
    settings.SMS_STUCK_SECONDS = 5  # below the floor: a send attempt can last longer than that
    time_machine.shift(timedelta(seconds=59))
    assert sweep() == {}
    settings.SMS_STUCK_SECONDS = 600
    time_machine.shift(timedelta(seconds=300))
    assert sweep() == {}
    time_machine.shift(timedelta(seconds=301))
    assert sweep() == {"resent": [message.pk]}


# --- Lost queued texts ----------------------------------------------------------------------------------------------


def test_a_stale_queued_text_is_enqueued_again_and_sent_once(clinic, fake_telnyx, sweep, time_machine):  # noqa: F811
    message = queue_without_task(clinic)  # its send task vanished with the broker
    assert Message.objects.get().status == "queued" and fake_telnyx.requests == []
    time_machine.shift(timedelta(seconds=20))
    assert sweep() == {}  # queued for less than 30 s: its task may just be waiting
    time_machine.shift(timedelta(seconds=11))
    assert sweep() == {"requeued": [message.pk]}
    message.refresh_from_db()
    assert message.status == "sent" and len(fake_telnyx.requests) == 1
    assert fake_telnyx.requests[0]["headers"]["Idempotency-Key"] == "r1#0"
    time_machine.shift(timedelta(seconds=31))
    assert sweep() == {} and message_send(message_id=message.pk) == "skipped"
    assert len(fake_telnyx.requests) == 1


def test_a_lost_intro_found_after_the_window_closed_waits_for_it_to_open(clinic, sweep, time_machine):
    (intro,) = message_queue(clinic=clinic, to=PATIENT, body="Hi from Glow", kind="intro", idempotency_key="i1")
    assert intro.status == "queued"  # noon: inside the window, but its task is lost
    time_machine.move_to(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), tick=False)  # 22:00 in Boston: beat was down
    assert sweep() == {"deferred": [intro.pk]}
    intro.refresh_from_db()
    assert intro.status == "scheduled" and intro.due_at == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert locmem.outbox == []


def test_a_queued_text_whose_worker_is_only_slow_is_enqueued_once_per_bound(clinic, sweep, time_machine, monkeypatch):
    from messaging import tasks

    message = queue_without_task(clinic)
    enqueued = []
    # the sms queue is backed up
    monkeypatch.setattr(tasks.send_message, "apply_async", lambda args, **options: enqueued.append(args[0]))
    time_machine.shift(timedelta(seconds=31))
    sweep()
    time_machine.shift(timedelta(seconds=29))
    sweep()  # the next beat: queued since the last enqueue for less than 30 s, so no second task yet
    assert enqueued == [message.pk]
    time_machine.shift(timedelta(seconds=2))
    sweep()
    assert enqueued == [message.pk, message.pk]  # harmless: only one run can claim it


def test_the_beat_task_reports_counts_by_outcome(clinic, time_machine, settings):
    assert settings.CELERY_BEAT_SCHEDULE["reconcile-messages"] == {
        "task": "messaging.reconcile_messages",
        "schedule": 30.0,
    }
    queue_without_task(clinic)
    time_machine.shift(timedelta(seconds=31))
    assert reconcile_messages.delay().get() == {"requeued": 1}
    assert json.dumps(reconcile_messages.delay().get()) == "{}"


def test_the_console_backend_answers_sent_for_what_it_printed():
    assert ConsoleBackend().fetch_status("console-123") == "sent"
    assert ConsoleBackend().fetch_status("SM1") is None
    assert ConsoleBackend().find_sent(None, since=NOON) is None
