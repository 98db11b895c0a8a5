"""Texting end to end inside the app: compliance first, quiet hours, sending with retries, missed calls."""

from datetime import UTC, datetime, timedelta

import pytest

from conversation.models import Conversation
from conversation.services import intro_send
from leads.services import lead_create
from messaging.backends import SendError, locmem
from messaging.compliance import classify
from messaging.models import Message, OptOut, PhoneNumber
from messaging.services import message_queue, message_send, messages_release_due
from messaging.text import sms_clean, sms_split

from .conftest import make_clinic
from .fakes.telnyx_messaging import fake_telnyx  # noqa: F401  (fixture)
from .messaging_helpers import TELNYX_PUBLIC, TWILIO_TOKEN, post_telnyx, post_twilio, telnyx_envelope, telnyx_inbound
from .test_compliance import OPT_OUTS

PATIENT = "+16175550123"


@pytest.fixture
def clinic(db, settings):
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    clinic = make_clinic("demo", name="Glow", website="https://glow.example.com", front_desk_phone="+16175550100")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550100", provider="telnyx", messaging_profile_id="prof-1")
    return clinic


@pytest.fixture
def queue(django_capture_on_commit_callbacks):
    """message_queue as a caller's committed transaction runs it: the send task is enqueued (eager) on commit."""

    def run(**kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return message_queue(**kwargs)

    return run


def text(client, body, **kwargs):
    return post_telnyx(client, "/webhooks/telnyx/messages", telnyx_inbound(body, **kwargs))


def daytime(time_machine):
    time_machine.move_to(datetime(2026, 11, 24, 17, 0, tzinfo=UTC), tick=False)  # 12:00 in Boston


# --- Opt-out, opt-in, help --------------------------------------------------------------------------------------


@pytest.mark.parametrize("stop", OPT_OUTS)
def test_every_opt_out_gets_one_confirmation_then_silence(client, clinic, sms_outbox, stop, time_machine, queue):
    daytime(time_machine)
    # Queued before the STOP: an intro waiting for the window and a notice queued for later release.
    scheduled = message_queue(
        clinic=clinic,
        to=PATIENT,
        body="Reminder",
        kind="notice",
        idempotency_key="n1",
        now=datetime(2026, 11, 24, 3, 0, tzinfo=UTC),
    )
    assert scheduled[0].status == "scheduled"
    text(client, stop)
    confirmation = {  # a Spanish opt-out is confirmed in Spanish (tests/test_spanish.py)
        "en": "Glow: You're unsubscribed and will get no more texts. Reply START to resubscribe.",
        "es": "Glow: Se ha dado de baja y no recibira mas mensajes. Responda INICIO para volver a suscribirse.",
    }[classify(stop).language]
    assert [m.body for m in sms_outbox] == [confirmation]
    assert OptOut.objects.get(clinic=clinic, phone=PATIENT).active
    # A second STOP, the scheduled reminder coming due, and a new intro: nothing more is sent.
    text(client, "STOP")
    for pk in messages_release_due():
        message_send(message_id=pk)
    intro_send(clinic=clinic, phone=PATIENT, origin="missed_call")
    queue(clinic=clinic, to=PATIENT, body="Any reply", kind="reply", idempotency_key="r1")
    assert len(sms_outbox) == 1
    assert Message.objects.get(pk=scheduled[0].pk).status == "dropped"
    assert Conversation.objects.get().state == "opted_out"


def test_cancel_alone_opts_out_and_flags_staff(client, clinic, sms_outbox):
    text(client, "Cancel")
    assert OptOut.objects.get().needs_review and Conversation.objects.get().needs_staff
    assert len(sms_outbox) == 1


def test_cancel_my_appointment_is_not_an_opt_out(client, clinic, sms_outbox):
    text(client, "cancel my appointment tomorrow please")
    assert not OptOut.objects.exists()
    assert [m.body for m in sms_outbox] == ["I don't see an upcoming appointment for this number."]


def test_start_resubscribes(client, clinic, sms_outbox, queue):
    text(client, "STOP")
    text(client, "hello?")  # texting is not consent: stays opted out, nothing sent
    assert len(sms_outbox) == 1
    text(client, "START")
    assert not OptOut.objects.get().active
    assert sms_outbox[-1].body == "Glow: You're resubscribed to texts. Reply HELP for help, STOP to opt out."
    queue(clinic=clinic, to=PATIENT, body="Welcome back", kind="reply", idempotency_key="r2")
    assert sms_outbox[-1].body == "Welcome back"


def test_yes_right_after_opt_out_resubscribes(client, clinic, sms_outbox):
    text(client, "STOP")
    text(client, "Yes")
    assert not OptOut.objects.get().active and len(sms_outbox) == 2


def test_help_answers_with_the_clinics_help_text(client, clinic, sms_outbox):
    text(client, "HELP")
    (sms,) = sms_outbox
    assert sms.body == clinic.render_help() and sms.from_number == "+15555550100" and sms.to_number == PATIENT
    for needed in ("Glow", "+16175550100", "STOP", "Msg & data rates may apply"):
        assert needed in sms.body


def test_help_is_answered_even_when_opted_out(client, clinic, sms_outbox):
    text(client, "STOP")
    text(client, "HELP")
    assert len(sms_outbox) == 2 and "STOP" in sms_outbox[1].body


# --- Quiet hours ------------------------------------------------------------------------------------------------


def test_lead_at_22_in_patients_zone_gets_intro_at_next_opening(
    clinic, sms_outbox, time_machine, django_capture_on_commit_callbacks
):
    time_machine.move_to(datetime(2026, 11, 25, 6, 0, tzinfo=UTC), tick=False)  # 22:00 in San Francisco
    with django_capture_on_commit_callbacks(execute=True):
        lead_create(clinic=clinic, name="Sam", phone="+14155550123", sms_consent=True, consent_text="I agree")
    intro = Message.objects.get(kind="intro")
    assert intro.status == "scheduled" and intro.due_at == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 08:00 PST
    assert sms_outbox == []
    time_machine.move_to(datetime(2026, 11, 25, 15, 59, tzinfo=UTC), tick=False)
    assert messages_release_due() == []
    time_machine.move_to(datetime(2026, 11, 25, 16, 0, 5, tzinfo=UTC), tick=False)
    for pk in messages_release_due():
        message_send(message_id=pk)
    assert [m.body for m in sms_outbox] == [clinic.render_intro(web_lead=True)]
    assert "website" in sms_outbox[0].body and "missed your call" not in sms_outbox[0].body


def test_lead_without_consent_gets_no_text(clinic, sms_outbox, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        lead_create(clinic=clinic, name="Sam", phone=PATIENT, sms_consent=False)
    assert not Message.objects.exists()


def test_florida_number_at_2030_eastern_is_deferred_but_a_reply_is_not(clinic, sms_outbox, time_machine, queue):
    time_machine.move_to(datetime(2026, 11, 25, 1, 30, tzinfo=UTC), tick=False)  # 20:30 EST
    (intro,) = intro_send(clinic=clinic, phone="+13055550123", origin="web_lead")
    assert intro.status == "scheduled" and intro.due_at == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    queue(clinic=clinic, to="+13055550123", body="Sure, we open at 9.", kind="reply", idempotency_key="x")
    assert [m.body for m in sms_outbox] == ["Sure, we open at 9."]


# --- Sending ----------------------------------------------------------------------------------------------------


def test_telnyx_backend_posts_to_telnyx_base_url(clinic, fake_telnyx, time_machine, queue):  # noqa: F811
    daytime(time_machine)
    (message,) = queue(
        clinic=clinic, to=PATIENT, body="Hi \u201cthere\u201d\u00a0\u2014 see you", kind="reply", idempotency_key="k1"
    )
    message_send(message_id=message.pk)
    (request,) = fake_telnyx.requests
    assert request["path"] == "/v2/messages"
    assert request["headers"]["Authorization"] == "Bearer KEY_test"
    assert request["json"]["from"] == "+15555550100" and request["json"]["to"] == PATIENT
    assert request["json"]["text"] == 'Hi "there" - see you'  # nothing that forces UCS-2
    assert request["json"]["messaging_profile_id"] == "prof-1"
    assert request["json"]["webhook_url"] == "http://127.0.0.1:8000/webhooks/telnyx/messages"
    message.refresh_from_db()
    assert message.status == "sent" and message.provider_message_id and message.attempts == 1


def test_503_is_retried_with_growing_delays_then_sent(clinic, fake_telnyx, time_machine, queue):  # noqa: F811
    daytime(time_machine)
    for _ in range(3):
        fake_telnyx.respond(503, {"errors": [{"code": "50000", "title": "Service unavailable"}]})
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hello", kind="reply", idempotency_key="k2")
    delays, now = [], datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
    message_send(message_id=message.pk)
    for _ in range(3):
        message.refresh_from_db()
        if message.status == "sent":
            break
        assert message.status == "scheduled" and message.error_code == "50000"
        delays.append((message.due_at - now).total_seconds())
        now = message.due_at + timedelta(seconds=1)
        time_machine.move_to(now, tick=False)
        assert messages_release_due() == [message.pk]
        message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 4 and len(fake_telnyx.requests) == 4
    assert delays[0] < delays[1] < delays[2]
    assert 2 <= delays[0] <= 2.5 and 8 <= delays[1] <= 10 and 30 <= delays[2] <= 37.5


def test_opted_out_error_40300_stops_and_records_the_opt_out(clinic, fake_telnyx, time_machine, queue):  # noqa: F811
    daytime(time_machine)
    fake_telnyx.respond(400, {"errors": [{"code": "40300", "title": "Blocked due to STOP message"}]})
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hello", kind="reply", idempotency_key="k3")
    message_send(message_id=message.pk)
    message.refresh_from_db()
    assert message.status == "failed" and message.error_code == "40300"
    row = OptOut.objects.get(clinic=clinic, phone=PATIENT)
    assert row.active and row.source == "provider"
    assert messages_release_due() == [] and len(fake_telnyx.requests) == 1


def test_permanent_error_fails_and_flags_staff(clinic, sms_outbox, queue):
    locmem.failures.append(SendError("invalid destination", code="40310"))
    conversation = Conversation.objects.create(clinic=clinic, patient_phone=PATIENT, origin="web_lead")
    (message,) = queue(
        clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k4", conversation=conversation
    )
    message.refresh_from_db()
    assert message.status == "failed" and message.error_code == "40310"
    assert Conversation.objects.get().needs_staff


def test_timeout_after_the_request_left_is_reconciled_not_resent(client, clinic, sms_outbox, queue):
    locmem.failures.append(SendError("read timeout", transient=True, may_have_sent=True))
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k5")
    message.refresh_from_db()
    assert message.status == "unknown" and messages_release_due() == [] and sms_outbox == []
    # Telnyx's status webhook for it settles the question.
    Message.objects.filter(pk=message.pk).update(provider_message_id="tx-1")
    payload = {
        "id": "tx-1",
        "direction": "outbound",
        "to": [{"phone_number": PATIENT, "status": "delivered"}],
        "from": {"phone_number": "+15555550100"},
        "errors": [],
    }
    post_telnyx(client, "/webhooks/telnyx/messages", telnyx_envelope("message.finalized", payload))
    message.refresh_from_db()
    assert message.status == "delivered"


def test_sending_twice_sends_once(clinic, sms_outbox, queue):
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k6")
    assert message_send(message_id=message.pk) == "skipped"  # the eager task already sent it
    again = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k6")
    assert [m.pk for m in again] == [message.pk] and len(sms_outbox) == 1


def test_a_reply_sent_here_is_sent_as_written_from_its_senders_profile(clinic, sms_outbox, queue):
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k7", send_here=True)
    message.refresh_from_db()
    assert message.status == "sent" and message.attempts == 1
    assert [(m.from_number, m.messaging_profile_id) for m in sms_outbox] == [("+15555550100", "prof-1")]


def test_a_row_sent_as_written_after_its_claim_moved_on_is_not_sent(
    clinic, sms_outbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        (row,) = message_queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k8", send_here=True)
    # Meanwhile another run claimed it, failed and queued it again: the copy in hand is no longer the row.
    Message.objects.filter(pk=row.pk).update(attempts=1)
    assert message_send(message_id=row.pk, written=row) == "skipped" and sms_outbox == []


def test_long_texts_are_split_at_sentences():
    long = " ".join(f"Sentence number {i} is here." for i in range(60))
    parts = sms_split(long)
    assert len(parts) > 1 and all(len(p) <= 612 for p in parts) and all(p.endswith(".") for p in parts)
    assert " ".join(parts) == long
    assert sms_clean("It\u2019s \u2026 fine\u00a0now") == "It's ... fine now"


def test_retry_action_in_the_admin(admin_client, clinic, sms_outbox, queue, time_machine):
    daytime(time_machine)
    locmem.failures.append(SendError("boom", code="x"))
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k7")
    response = admin_client.post(
        "/admin/messaging/message/", {"action": "retry_failed", "_selected_action": [message.pk]}
    )
    assert response.status_code == 302
    message.refresh_from_db()
    assert message.status == "sent" and len(sms_outbox) == 1


def test_a_retry_at_night_waits_for_the_sending_window(clinic, sms_outbox, queue, time_machine):
    """The first try was an immediate reply; a retry hours later is not, so it respects quiet hours."""
    from messaging.services import message_retry

    time_machine.move_to(datetime(2026, 11, 25, 3, 0, tzinfo=UTC), tick=False)  # 22:00 in Boston
    locmem.failures.append(SendError("boom", code="x"))
    (message,) = queue(clinic=clinic, to=PATIENT, body="Hi", kind="reply", idempotency_key="k8")
    message.refresh_from_db()
    assert message.status == "failed"
    assert message_retry(message=message)
    message.refresh_from_db()
    assert message.status == "scheduled" and message.due_at == datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    assert sms_outbox == []


# --- Missed calls -----------------------------------------------------------------------------------------------


def hangup(cause, session="s1", from_=PATIENT):
    return telnyx_envelope(
        "call.hangup",
        {
            "call_control_id": f"cc-{session}",
            "call_session_id": session,
            "call_leg_id": f"leg-{session}",
            "direction": "incoming",
            "from": from_,
            "to": "+15555550100",
            "state": "hangup",
            "hangup_cause": cause,
            "hangup_source": "callee",
            "start_time": "2026-11-24T17:00:00Z",
        },
    )


@pytest.mark.parametrize("cause", ["timeout", "no_answer", "user_busy", "call_rejected", "originator_cancel"])
def test_missed_call_sends_the_intro_once_a_day(client, clinic, sms_outbox, time_machine, cause):
    daytime(time_machine)
    post_telnyx(client, "/webhooks/telnyx/voice", hangup(cause, session="s1"))
    assert [m.body for m in sms_outbox] == [clinic.render_intro()]
    post_telnyx(client, "/webhooks/telnyx/voice", hangup(cause, session="s2"))  # called again the same day
    assert len(sms_outbox) == 1
    conversation = Conversation.objects.get()
    assert conversation.origin == "missed_call" and conversation.messages.get().kind == "intro"
    time_machine.move_to(datetime(2026, 11, 25, 17, 0, tzinfo=UTC), tick=False)
    post_telnyx(client, "/webhooks/telnyx/voice", hangup(cause, session="s3"))  # the next day
    assert len(sms_outbox) == 2


def test_answered_call_is_not_missed(client, clinic, sms_outbox, time_machine):
    daytime(time_machine)
    answered = telnyx_envelope("call.answered", {"call_session_id": "s9", "to": "+15555550100", "from": PATIENT})
    post_telnyx(client, "/webhooks/telnyx/voice", answered)
    post_telnyx(client, "/webhooks/telnyx/voice", hangup("normal_clearing", session="s9"))
    post_telnyx(client, "/webhooks/telnyx/voice", hangup("originator_cancel", session="s9"))
    assert sms_outbox == []


def test_twilio_dial_no_answer_is_a_missed_call(client, clinic, sms_outbox, time_machine):
    daytime(time_machine)
    PhoneNumber.objects.create(clinic=clinic, number="+15555550101", provider="twilio")
    params = {"CallSid": "CA1", "From": PATIENT, "To": "+15555550101", "DialCallStatus": "no-answer"}
    response = post_twilio(client, "/webhooks/twilio/voice", params)
    assert response.status_code == 200 and b"<Response/>" in response.content
    post_twilio(client, "/webhooks/twilio/voice", params)  # duplicate delivery
    assert [m.body for m in sms_outbox] == [clinic.render_intro()]
    completed = {**params, "CallSid": "CA2", "DialCallStatus": "completed"}
    post_twilio(client, "/webhooks/twilio/voice", completed)
    assert len(sms_outbox) == 1


def test_intro_is_part_of_the_conversation_history(client, clinic, sms_outbox, time_machine):
    daytime(time_machine)
    post_telnyx(client, "/webhooks/telnyx/voice", hangup("no_answer"))
    text(client, "I want Botox")
    conversation = Conversation.objects.get()
    assert [(m.direction, m.kind) for m in conversation.messages.order_by("pk")] == [
        ("outbound", "intro"),
        ("inbound", "patient"),
        ("outbound", "reply"),
    ]


def test_a_provider_client_is_built_once_per_process_and_settings(settings):
    """Building the Telnyx SDK client loads the CA bundle (about 16 ms, more than the send); a rotated key or
    another base URL gets a client of its own."""
    from messaging.backends import telnyx as telnyx_backend
    from messaging.backends import twilio as twilio_backend

    settings.TELNYX_API_KEY, settings.TELNYX_BASE_URL = "KEY-1", "http://127.0.0.1:9/v2"
    first = telnyx_backend.client()
    assert telnyx_backend.client() is first
    settings.TELNYX_API_KEY = "KEY-2"
    assert telnyx_backend.client() is not first and telnyx_backend.client().api_key == "KEY-2"
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC1", "new-token,old-token"
    assert twilio_backend.client() is twilio_backend.client()
    assert twilio_backend.client().password == "new-token"
