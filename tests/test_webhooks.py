"""Webhooks signed with the providers' real algorithms: verified, recorded once, processed; forgeries refused."""

import json

import pytest

from inbox.models import WebhookEvent, WebhookRejection
from messaging.models import Message, PhoneNumber

from .conftest import make_clinic
from .messaging_helpers import (
    TELNYX_PUBLIC,
    TWILIO_TOKEN,
    post_telnyx,
    post_twilio,
    telnyx_envelope,
    telnyx_headers,
    telnyx_inbound,
)

TELNYX = "/webhooks/telnyx/messages"


@pytest.fixture
def clinic(db, settings):
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = "http://127.0.0.1:8000"
    clinic = make_clinic("demo", name="Glow")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550100", provider="telnyx")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550101", provider="twilio")
    return clinic


def test_telnyx_inbound_is_stored_once_when_delivered_three_times(client, clinic):
    body = telnyx_inbound("What are your hours?")
    for path in (TELNYX, TELNYX + "/", TELNYX):
        assert post_telnyx(client, path, body).status_code == 200
    assert WebhookEvent.objects.count() == 1
    message = Message.objects.get(direction="inbound")
    assert (message.clinic, message.from_number, message.body) == (clinic, "+16175550123", "What are your hours?")
    assert message.turns.count() == 1  # the assistant answered it, once


def test_same_message_in_two_envelopes_is_still_one_message(client, clinic):
    first = telnyx_inbound("hi", message_id="msg-1")
    second = telnyx_inbound("hi", message_id="msg-1")  # Telnyx retried with a new event id
    post_telnyx(client, TELNYX, first)
    post_telnyx(client, TELNYX, second)
    assert WebhookEvent.objects.count() == 2 and Message.objects.filter(direction="inbound").count() == 1


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("no_timestamp", "missing signature headers"),
        ("not_base64", "not base64"),
    ],
)
def test_forged_telnyx_webhooks_are_refused_and_recorded(client, clinic, tamper, reason):
    # Tampered, unsigned, wrong-key, stale, future, rotated, unconfigured, malformed: tests/test_webhook_contract.py.
    raw = json.dumps(telnyx_inbound("STOP")).encode()
    headers = telnyx_headers(raw)
    if tamper == "no_timestamp":
        del headers["HTTP_TELNYX_TIMESTAMP"]
    elif tamper == "not_base64":
        headers["HTTP_TELNYX_SIGNATURE_ED25519"] = "***"
    response = client.post(TELNYX, data=raw, content_type="application/json", **headers)
    assert response.status_code == 403
    assert reason in response.json()["error"]
    assert not WebhookEvent.objects.exists() and not Message.objects.exists()
    rejection = WebhookRejection.objects.get()
    assert rejection.provider == "telnyx" and reason in rejection.reason and rejection.path == TELNYX


def test_unknown_event_type_is_200_and_ignored(client, clinic):
    response = post_telnyx(client, TELNYX, telnyx_envelope("message.unicorn", {"id": "x"}))
    assert response.status_code == 200 and not WebhookEvent.objects.exists()


def test_message_to_an_unknown_number_is_200_and_ignored(client, clinic, sms_outbox):
    assert post_telnyx(client, TELNYX, telnyx_inbound("STOP", to="+15555559999")).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"  # recorded, with the reason, for an operator to see
    assert not Message.objects.exists() and sms_outbox == []


def test_get_is_not_allowed_and_post_is_never_redirected(client, clinic):
    assert client.get(TELNYX).status_code == 405
    response = post_telnyx(client, TELNYX + "/", telnyx_inbound("hi"))
    assert response.status_code == 200


def test_mms_media_urls_are_kept(client, clinic):
    media = [
        {"url": "https://media.telnyx.com/abc.jpg", "content_type": "image/jpeg", "size": 1000, "hash_sha256": "x"}
    ]
    post_telnyx(client, TELNYX, telnyx_inbound("is this normal?", media=media))
    inbound = Message.objects.get(direction="inbound")
    assert inbound.media == [{"url": "https://media.telnyx.com/abc.jpg", "content_type": "image/jpeg"}]


# --- Twilio -----------------------------------------------------------------------------------------------------


def twilio_inbound(body, sid="SM0001"):
    return {
        "MessageSid": sid,
        "AccountSid": "AC1",
        "From": "+16175550123",
        "To": "+15555550101",
        "Body": body,
        "NumMedia": "1",
        "MediaUrl0": "https://api.twilio.com/m/1.jpg",
        "MediaContentType0": "image/jpeg",
    }


def test_twilio_inbound_answers_empty_twiml_and_stores_once(client, clinic):
    for _ in range(3):
        response = post_twilio(client, "/webhooks/twilio/messages", twilio_inbound("Hello"))
        assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
        assert b"<Response/>" in response.content
    message = Message.objects.get(direction="inbound")
    assert (message.provider, message.body, message.to_number) == ("twilio", "Hello", "+15555550101")
    assert message.media == [{"url": "https://api.twilio.com/m/1.jpg", "content_type": "image/jpeg"}]


def test_a_twilio_webhook_signed_for_another_url_is_refused(client, clinic):
    # Forged, unsigned and wrong-token requests: tests/test_webhook_contract.py.
    params = twilio_inbound("Hello")
    response = post_twilio(client, "/webhooks/twilio/messages", params, base="https://evil.example.com")
    assert response.status_code == 403
    assert not Message.objects.exists() and WebhookRejection.objects.count() == 1


def test_twilio_status_callbacks_move_outbound_forward_only(client, clinic):
    message = Message.objects.create(
        clinic=clinic,
        direction="outbound",
        kind="reply",
        from_number="+15555550101",
        to_number="+16175550123",
        body="x",
        provider="twilio",
        provider_message_id="SM9",
        status="sent",
    )
    for status in ("delivered", "sent"):  # out of order: a late "sent" does not undo "delivered"
        params = {"MessageSid": "SM9", "MessageStatus": status, "From": "+15555550101", "To": "+16175550123"}
        assert post_twilio(client, "/webhooks/twilio/status", params).status_code == 200
    message.refresh_from_db()
    assert message.status == "delivered" and message.delivered_at is not None
