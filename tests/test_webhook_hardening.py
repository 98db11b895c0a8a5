"""Every shape the providers send, and every hostile body a signed sender can craft: a 2xx or a 4xx with its reason,
recorded, never a 500. The patient always hears back from the clinic number they used."""

import base64
import json
import uuid
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from conversation.services import intro_send
from inbox.models import WebhookEvent, WebhookRejection
from messaging.models import Message, PhoneNumber
from messaging.services import patient_sender
from payments.backends.square import sign

from .conftest import make_clinic
from .messaging_helpers import (
    TELNYX_KEY,
    TELNYX_PUBLIC,
    TWILIO_TOKEN,
    post_telnyx,
    post_twilio,
    telnyx_envelope,
    telnyx_headers,
    telnyx_inbound,
)

TELNYX, TELNYX_VOICE = "/webhooks/telnyx/messages", "/webhooks/telnyx/voice"
TWILIO, TWILIO_STATUS, TWILIO_VOICE = "/webhooks/twilio/messages", "/webhooks/twilio/status", "/webhooks/twilio/voice"
BASE = "http://127.0.0.1:8000"
SHARED_KEY = "twilio-shared-key-secret"
SQUARE_KEY, SQUARE_URL = "sq-key", "https://frontdesk.example.com/webhooks/square"
PATIENT = "+16175550123"


@pytest.fixture
def clinic(db, settings, daytime):
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_WEBHOOK_SHARED_KEY = SHARED_KEY
    settings.SQUARE_WEBHOOK_SIGNATURE_KEY = SQUARE_KEY
    settings.SQUARE_WEBHOOK_URL = SQUARE_URL
    settings.PUBLIC_BASE_URL = BASE
    clinic = make_clinic("glow", name="Glow")
    # Two numbers on each provider; the second Telnyx number is the one web leads hear from.
    for number, provider, default in [
        ("+15555550100", "telnyx", False),
        ("+15555550101", "telnyx", True),
        ("+15555550200", "twilio", False),
        ("+15555550201", "twilio", False),
    ]:
        PhoneNumber.objects.create(clinic=clinic, number=number, provider=provider, is_default=default)
    return clinic


@pytest.fixture
def daytime(time_machine):
    from datetime import UTC, datetime

    time_machine.move_to(datetime(2026, 11, 24, 17, 0, tzinfo=UTC), tick=True)  # noon in Boston


def replies_to(phone=PATIENT):
    return Message.objects.filter(direction=Message.Direction.OUTBOUND, to_number=phone).order_by("pk")


# --- Shapes the providers send ----------------------------------------------------------------------------------


def test_a_telnyx_text_whose_to_is_a_plain_string_is_answered(client, clinic):
    body = telnyx_inbound("How much is Botox?", to="+15555550100")
    body["data"]["payload"]["to"] = "+15555550100"  # older captured webhooks have this shape
    body["data"]["payload"]["from"] = PATIENT
    del body["data"]["payload"]["media"]
    body["meta"]["attempt"] = 3
    assert post_telnyx(client, TELNYX, body).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == "processed" and event.clinic == clinic
    assert Message.objects.get(direction="inbound").from_number == PATIENT
    assert replies_to().exists()


def test_telnyx_message_sent_with_from_as_a_string_updates_the_text(client, clinic):
    body = telnyx_envelope(
        "message.sent", {"id": "out-1", "from": "+15555550100", "to": [{"phone_number": PATIENT, "status": "sent"}]}
    )
    assert post_telnyx(client, TELNYX, body).status_code == 200
    assert WebhookEvent.objects.get().status == "ignored"  # no text of ours has that id: recorded, no traceback


def test_a_telnyx_signature_with_a_trailing_newline_verifies_as_the_official_sdk_does(client, clinic):
    from telnyx.lib.webhook_verification import verify_webhook_signature

    raw = json.dumps(telnyx_inbound("hi")).encode()
    headers = telnyx_headers(raw)
    sdk_headers = {"telnyx-signature-ed25519": headers["HTTP_TELNYX_SIGNATURE_ED25519"] + "\n"}
    sdk_headers["telnyx-timestamp"] = headers["HTTP_TELNYX_TIMESTAMP"]
    verify_webhook_signature(raw, sdk_headers, TELNYX_PUBLIC)  # the SDK's own verifier: a second opinion
    headers["HTTP_TELNYX_SIGNATURE_ED25519"] += "\n"
    assert client.post(TELNYX, data=raw, content_type="application/json", **headers).status_code == 200


def twilio_form(**fields):
    return {
        "MessageSid": "SM" + uuid.uuid4().hex,
        "AccountSid": "AC" + "0" * 32,
        "From": PATIENT,
        "To": "+15555550201",
        "Body": "How much is Botox?",
        "NumMedia": "0",
        **fields,
    }


def test_twilio_shared_key_hmac_sha256_signatures_verify(client, clinic):
    params = twilio_form()
    signature = RequestValidator(SHARED_KEY).compute_signature(BASE + TWILIO, params, "HMAC_SHA256")
    response = client.post(
        TWILIO,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=signature,
        HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS="key=webhooks_sharedkey_1,algorithm=HMAC_SHA256",
    )
    assert response.status_code == 200
    # The same signature without the header (so checked as HMAC-SHA1 with the auth token) is refused.
    response = client.post(
        TWILIO, urlencode(params), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 403 and WebhookRejection.objects.get().reason == "signature does not match"


def test_a_twilio_form_with_a_repeated_field_is_verified_over_every_value(client, clinic):
    pairs = [*twilio_form().items(), ("Body", "second value")]
    from django.http import QueryDict

    signed = QueryDict(urlencode(pairs))
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(BASE + TWILIO, signed)
    response = client.post(
        TWILIO, urlencode(pairs), content_type="application/x-www-form-urlencoded", HTTP_X_TWILIO_SIGNATURE=signature
    )
    assert response.status_code == 200 and WebhookEvent.objects.get().status == "processed"


# --- The number the patient used --------------------------------------------------------------------------------


def test_a_patient_who_texts_the_second_twilio_line_hears_back_from_it(client, clinic, sms_outbox):
    assert post_twilio(client, TWILIO, twilio_form()).status_code == 200
    reply = replies_to().get()
    assert (reply.from_number, reply.provider) == ("+15555550201", "twilio")
    assert sms_outbox[0].from_number == "+15555550201"


def test_a_patient_who_calls_the_second_twilio_line_gets_the_intro_from_it_and_replies_follow(
    client, clinic, sms_outbox
):
    call = {"CallSid": "CA" + uuid.uuid4().hex, "From": PATIENT, "To": "+15555550201", "CallStatus": "no-answer"}
    assert post_twilio(client, TWILIO_VOICE, call).status_code == 200
    assert [(m.kind, m.from_number, m.provider) for m in replies_to()] == [("intro", "+15555550201", "twilio")]
    post_twilio(client, TWILIO, twilio_form(Body="how much is botox?"))
    assert {m.from_number for m in replies_to()} == {"+15555550201"}


def test_a_patient_who_texts_the_first_telnyx_number_hears_back_from_it(client, clinic):
    post_telnyx(client, TELNYX, telnyx_inbound("hi", to="+15555550100", from_=PATIENT))
    assert {(m.from_number, m.provider) for m in replies_to()} == {("+15555550100", "telnyx")}


def test_a_web_lead_hears_from_the_default_sender_and_keeps_it(clinic):
    intro_send(clinic=clinic, phone=PATIENT, origin="web_lead")
    assert [m.from_number for m in replies_to()] == ["+15555550101"]
    assert patient_sender(clinic=clinic, phone=PATIENT).number == "+15555550101"


def test_a_released_number_is_not_used_again_the_default_sender_takes_over(client, clinic):
    post_twilio(client, TWILIO, twilio_form())
    PhoneNumber.objects.filter(number="+15555550201").update(status=PhoneNumber.Status.RELEASED)
    assert patient_sender(clinic=clinic, phone=PATIENT).number == "+15555550101"


# --- Hostile but signed bodies: 4xx with a reason, recorded, never a 500 ----------------------------------------


def post_raw_telnyx(client, raw: bytes, path=TELNYX):
    return client.post(path, data=raw, content_type="application/json", **telnyx_headers(raw))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda b: b["data"].update(id=None), "data.id is missing"),
        (lambda b: b["data"].update(id="x" * 121), "data.id is longer than 120 characters"),
        (lambda b: b["data"].update(id={"a": 1}), "data.id is missing"),
        (lambda b: b["data"].update(id="bad\x00id"), None),  # NUL removed: a usable id
        (lambda b: b["data"].update(event_type=None), "data.event_type is missing"),
        (lambda b: b.update(data="x"), "not a Telnyx event envelope (no data object)"),
        (lambda b: b["data"].update(payload=[]), "data.payload must be an object"),
    ],
)
def test_signed_telnyx_envelopes_with_bad_ids_are_400_with_the_reason(client, clinic, mutate, reason):
    body = telnyx_inbound("hi")
    mutate(body)
    response = post_telnyx(client, TELNYX, body)
    if reason is None:
        assert response.status_code == 200 and WebhookEvent.objects.get().event_id == "badid"
        return
    assert response.status_code == 400 and response.json() == {"error": reason}
    assert WebhookRejection.objects.get().status_code == 400 and not WebhookEvent.objects.exists()


def test_nul_and_lone_surrogates_in_a_text_are_cleaned_and_the_text_is_kept(client, clinic):
    raw = json.dumps(telnyx_inbound("hi\u0000 there \ud83d and \udc00 bye"), ensure_ascii=True).encode()
    assert post_raw_telnyx(client, raw).status_code == 200
    assert Message.objects.get(direction="inbound").body == "hi there \ufffd and \ufffd bye"


def test_deep_json_is_400_not_a_crash(client, clinic):
    raw = b'{"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = post_raw_telnyx(client, raw)
    assert response.status_code in (400, 413) and WebhookRejection.objects.get().status_code == response.status_code
    nested = {"a": 1}
    for _ in range(40):
        nested = {"n": nested}
    body = telnyx_inbound("hi")
    body["data"]["payload"]["extra"] = nested
    response = post_telnyx(client, TELNYX, body)
    assert response.status_code == 400 and "nested deeper" in response.json()["error"]


def test_a_body_larger_than_any_event_is_413(client, clinic):
    raw = json.dumps(telnyx_inbound("x" * 300_000)).encode()
    assert post_raw_telnyx(client, raw).status_code == 413
    assert WebhookRejection.objects.get().reason == "body larger than 262144 bytes"


def test_a_text_longer_than_carriers_deliver_is_cut_before_the_assistant_reads_it(client, clinic):
    assert post_telnyx(client, TELNYX, telnyx_inbound("botox " * 2000)).status_code == 200
    assert len(Message.objects.get(direction="inbound").body) == 1600


def test_a_twilio_form_with_too_many_fields_is_400(client, clinic, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 50
    params = {f"F{i}": "x" for i in range(60)}
    response = post_twilio(client, TWILIO, params)
    assert response.status_code == 400 and WebhookRejection.objects.get().status_code == 400


def test_square_events_without_an_id_are_400(client, clinic):
    raw = json.dumps({"type": "payment.updated", "event_id": None, "data": {"object": {"payment": {}}}}).encode()
    signature = sign(body=raw, signature_key=SQUARE_KEY, notification_url=SQUARE_URL)
    response = client.post(
        "/webhooks/square", data=raw, content_type="application/json", HTTP_X_SQUARE_HMACSHA256_SIGNATURE=signature
    )
    assert response.status_code == 400 and response.json() == {"error": "event_id is missing"}


def test_a_square_event_with_a_hostile_payment_object_is_recorded_and_ignored(client, clinic):
    for index, payment in enumerate([None, "x", [], {"order_id": {"x": 1}}, {"amount_money": "5000"}]):
        body = {"type": "payment.updated", "event_id": f"evt-{index}", "data": {"object": {"payment": payment}}}
        raw = json.dumps(body).encode()
        signature = sign(body=raw, signature_key=SQUARE_KEY, notification_url=SQUARE_URL)
        response = client.post(
            "/webhooks/square", data=raw, content_type="application/json", HTTP_X_SQUARE_HMACSHA256_SIGNATURE=signature
        )
        assert response.status_code == 200
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"ignored"}


# --- Fuzz: any JSON a signed sender can send, to every JSON endpoint ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
envelope_like = st.fixed_dictionaries(
    {
        "data": st.fixed_dictionaries(
            {
                "id": json_values,
                "event_type": st.sampled_from(["message.received", "message.sent", "message.finalized", "call.hangup"])
                | json_values,
                "payload": st.dictionaries(
                    st.sampled_from(["id", "to", "from", "text", "media", "errors", "direction", "hangup_cause"]),
                    json_values,
                ),
            }
        )
    }
)
square_like = st.fixed_dictionaries(
    {
        "event_id": json_values,
        "type": st.sampled_from(["payment.created", "payment.updated", "refund.created", "refund.updated"])
        | json_values,
        "data": st.fixed_dictionaries({"object": st.dictionaries(st.sampled_from(["payment", "refund"]), json_values)})
        | json_values,
    }
)


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=envelope_like | json_values, path=st.sampled_from([TELNYX, TELNYX_VOICE]))
def test_fuzz_signed_telnyx_bodies_get_a_2xx_or_a_recorded_4xx(client, clinic, body, path):
    rejections = WebhookRejection.objects.count()
    raw = json.dumps(body).encode()
    headers = telnyx_headers(raw, key=TELNYX_KEY)
    response = client.post(path, data=raw, content_type="application/json", **headers)
    assert response.status_code in (200, 400, 413)
    if response.status_code != 200:
        assert WebhookRejection.objects.count() == rejections + 1
    assert not WebhookEvent.objects.filter(status__in=["failed", "processing"]).exists()


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(body=square_like | json_values)
def test_fuzz_signed_square_bodies_get_a_2xx_or_a_recorded_4xx(client, clinic, body):
    rejections = WebhookRejection.objects.count()
    raw = json.dumps(body).encode()
    signature = sign(body=raw, signature_key=SQUARE_KEY, notification_url=SQUARE_URL)
    response = client.post(
        "/webhooks/square", data=raw, content_type="application/json", HTTP_X_SQUARE_HMACSHA256_SIGNATURE=signature
    )
    assert response.status_code in (200, 400, 413)
    if response.status_code != 200:
        assert WebhookRejection.objects.count() == rejections + 1
    assert not WebhookEvent.objects.filter(status__in=["failed", "processing"]).exists()


TWILIO_FIELDS = ["MessageSid", "CallSid", "From", "To", "Body", "NumMedia", "MediaUrl0", "MessageStatus", "ErrorCode"]
TWILIO_FIELDS += ["CallStatus", "DialCallStatus"]
form_values = st.text(max_size=30) | st.sampled_from(["", "0", "3", "no-answer", "delivered", "+15555550201"])


@hypothesis_settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    fields=st.dictionaries(
        st.sampled_from(TWILIO_FIELDS),
        form_values,
    ),
    path=st.sampled_from([TWILIO, TWILIO_STATUS, TWILIO_VOICE]),
)
def test_fuzz_signed_twilio_forms_get_a_2xx_or_a_recorded_4xx(client, clinic, fields, path):
    rejections = WebhookRejection.objects.count()
    response = post_twilio(client, path, fields)
    assert response.status_code in (200, 400, 413)
    if response.status_code != 200:
        assert WebhookRejection.objects.count() == rejections + 1
    assert not WebhookEvent.objects.filter(status__in=["failed", "processing"]).exists()


def test_a_base64_signature_of_the_wrong_length_is_403_not_500(client, clinic):
    raw = json.dumps(telnyx_inbound("hi")).encode()
    headers = telnyx_headers(raw)
    headers["HTTP_TELNYX_SIGNATURE_ED25519"] = base64.b64encode(b"short").decode()
    assert client.post(TELNYX, data=raw, content_type="application/json", **headers).status_code == 403
