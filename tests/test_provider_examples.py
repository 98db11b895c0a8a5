"""Every example the providers themselves published (tests/data/providers/, sources in its SOURCES.md, and Nextech's
samples in /work/shared/reference/vendor-samples/nextech/) replayed against the real code: webhooks re-signed with the
test keys and posted to our endpoints, signature vectors checked by our views and by the official SDKs' own
verifiers, API answers fed to our backends and to the Nextech adapter.

The files are globbed, so an example added later is replayed too. Each file is classified by its shape; a file no
replay knows fails ``test_every_collected_example_has_a_replay`` instead of being skipped silently.

A strict xfail marks an example that exposes a bug: its reason names the file, what happens and where in the code.
"""

import base64
import copy
import hashlib
import hmac
import json
import logging
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
import responses
import time_machine
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.http import QueryDict
from django.urls import include
from django.urls import path as url_path
from prometheus_client import REGISTRY

from bookings.models import Booking
from bookings.services import booking_hold
from emr.base import AppointmentRequest, EmrError, PatientInfo, Slot
from emr.models import Provider as EmrProvider
from emr.nextech import NextechClient, get_fhir_model_class  # (after emr.nextech set the id pattern)
from inbox.models import WebhookEvent, WebhookRejection
from medspa.models import Service, StaffAlert
from medspa.phones import normalize_phone
from messaging import webhooks as messaging_webhooks
from messaging.backends import OutboundSms
from messaging.backends.telnyx import TelnyxBackend
from messaging.backends.twilio import TwilioBackend
from messaging.models import Message, PhoneNumber
from payments import services as payment_services
from payments.backends.square import sign as square_sign
from payments.backends.square import verify_signature as our_square_verify
from payments.models import Payment

from .conftest import make_clinic
from .fakes.telnyx_messaging import fake_telnyx  # noqa: F401  (fixture)
from .messaging_helpers import TELNYX_PUBLIC, TWILIO_TOKEN, post_twilio, telnyx_headers

pytest_plugins = ["tests.fakes.square"]  # the fake_square fixture

DATA = Path(__file__).parent / "data" / "providers"
NEXTECH_VENDOR = Path(__file__).parent / "data" / "providers" / "nextech" / "vendor-samples"

TELNYX_MESSAGES, TELNYX_VOICE = "/webhooks/telnyx/messages", "/webhooks/telnyx/voice"
TWILIO_MESSAGES, TWILIO_STATUS, TWILIO_VOICE = (
    "/webhooks/twilio/messages",
    "/webhooks/twilio/status",
    "/webhooks/twilio/voice",
)
BASE = "http://127.0.0.1:8000"
NOON_IN_BOSTON = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)  # a Tuesday: no quiet hours in the way
SQUARE_NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in Boston, as in tests/test_payments.py
SQUARE_KEY = "sq-signature-key-test"
SQUARE_URL = "https://frontdesk.example.com/webhooks/square"

# What Telnyx's to[].status and Twilio's MessageStatus mean for one of our texts (the providers' docs, not our table).
PROVIDER_STATUS = {
    "queued": Message.Status.SENT,
    "sending": Message.Status.SENT,
    "sent": Message.Status.SENT,
    "delivered": Message.Status.DELIVERED,
    "delivery_failed": Message.Status.FAILED,
    "sending_failed": Message.Status.FAILED,
    "undelivered": Message.Status.FAILED,
    "failed": Message.Status.FAILED,
}
# Telnyx hangup causes of an incoming call nobody picked up (docs/ARCHITECTURE.md "Missed calls and leads").
MISSED_CAUSES = {"timeout", "no_answer", "user_busy", "call_rejected", "originator_cancel"}


# --- The examples ---------------------------------------------------------------------------------------------------


def files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != "SOURCES.md")


def load(path: Path):
    return json.loads(path.read_text(encoding="utf-8"))


def shape(path: Path) -> dict | None:
    """The example as a JSON object, or None (not JSON, or not an object): then no replay knows it."""
    try:
        body = load(path)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def telnyx_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if "signature_header" in body or ("signature" in body and "body" in body):
        return "signature_vector"
    if path.name.endswith("_fragment.json"):
        return "fragment"
    data = body.get("data")
    if isinstance(data, dict) and "event_type" in data and "payload" in data:
        return "event"
    if isinstance(data, dict) and data.get("record_type") == "message":
        return "api_message"
    if isinstance(body.get("metadata"), dict) and isinstance(body["metadata"].get("event"), dict):
        return "delivery_record"
    if "event_type" in body and "payload" in body:
        return "unenveloped"
    return "unknown"


def twilio_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if "auth_token" in body and "signature" in body:
        return "signature_vector"
    if "params" in body and path.name.endswith("_fragment.json"):
        return "fragment"
    if "params" in body:
        return "webhook_params"
    if "sid" in body and "account_sid" in body:
        return "api_resource"
    return "unknown"


def square_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if "cases" in body and "base" in body:
        return "signature_cases"
    if "signature" in body and "notification_url" in body:
        return "signature_vector"
    if "event_id" in body and "type" in body and "data" in body:
        return "event"
    if set(body) == {"payment"}:
        return "api_payment"
    return "unknown"


def nextech_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if body.get("valid_json") is False and isinstance(body.get("body"), str):
        return "invalid_json"
    if "access_token" in body:
        return "token"
    resource = body.get("resource") if isinstance(body.get("resource"), dict) else body
    kind = resource.get("resourceType")
    if kind == "Bundle":
        return "bundle"
    if kind == "Appointment" and "_request" in path.stem:
        return "request"  # the request bodies of _appointment.md (SOURCES.md): what we send, not what we read
    if isinstance(kind, str):
        return "resource"
    return "unknown"


CLASSIFIERS = {"telnyx": telnyx_kind, "twilio": twilio_kind, "square": square_kind, "nextech": nextech_kind}


def every_example():
    found = [(provider, p) for provider in ("telnyx", "twilio", "square", "nextech") for p in files(DATA / provider)]
    if NEXTECH_VENDOR.is_dir():
        found += [("nextech", p) for p in files(NEXTECH_VENDOR)]
    return found


def examples(provider: str, *kinds: str, xfail: dict | None = None, folders=None) -> list:
    """pytest params for this provider's files of these kinds, with strict xfails by file name."""
    folders = folders or [DATA / provider]
    params = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for p in files(folder):
            if CLASSIFIERS[provider](p) not in kinds:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=xfail[p.name])] if xfail and p.name in xfail else []
            params.append(pytest.param(p, id=p.name, marks=marks))
    return params


@pytest.mark.parametrize(("provider", "path"), [pytest.param(pr, p, id=f"{pr}/{p.name}") for pr, p in every_example()])
def test_every_collected_example_has_a_replay(provider, path):
    assert CLASSIFIERS[provider](path) != "unknown", f"{path}: no replay in this file knows this shape; add one"


def no_errors_logged(caplog):
    errors = [f"{r.name}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []


def recorded_refusal(response) -> WebhookRejection:
    """A 4xx answer is only acceptable with its refusal recorded (status and reason)."""
    rejection = WebhookRejection.objects.order_by("-pk").first()
    assert rejection is not None and rejection.status_code == response.status_code and rejection.reason
    assert response.json() == {"error": rejection.reason}
    return rejection


# --- Telnyx ---------------------------------------------------------------------------------------------------------


def number_in(value) -> str:
    """The phone number of a Telnyx ``to``/``from`` in any documented shape (string, object, list of either)."""
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("phone_number") or ""
    return str(value or "")


def clinic_side(event_type: str, payload: dict) -> str:
    """Our number in an event: ``to`` of an inbound text or a call, ``from`` of our own text's receipts."""
    if event_type in ("message.sent", "message.finalized"):
        return number_in(payload.get("from"))
    return number_in(payload.get("to"))


def telnyx_endpoint(event_type: str) -> str:
    return TELNYX_VOICE if str(event_type).startswith("call") else TELNYX_MESSAGES


def post_telnyx_raw(client, path, raw: bytes):
    return client.post(path, data=raw, content_type="application/json", **telnyx_headers(raw))


@pytest.fixture
def telnyx_webhooks(db, settings, time_machine):
    time_machine.move_to(NOON_IN_BOSTON, tick=True)
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    settings.PUBLIC_BASE_URL = BASE


def clinic_with_number(number: str, provider: str):
    clinic = make_clinic(f"replay-{uuid.uuid4().hex[:8]}", name="Glow Replay")
    PhoneNumber.objects.create(clinic=clinic, number=number, provider=provider)
    return clinic


def replay_telnyx_event(client, caplog, body: dict, *, raw: bytes | None = None):
    """Post one v2 event (``{"data": {...}}``) signed with the test key, with our clinic owning its clinic-side
    number, and check the effect the event should have. ``raw``: the bytes as published, when unchanged."""
    data = body["data"]
    event_type, payload = data["event_type"], data["payload"]
    ours = clinic_side(event_type, payload)
    clinic = clinic_with_number(ours, "telnyx")
    before = None
    if event_type in ("message.sent", "message.finalized"):
        # A text of ours with the example's id: in flight for message.sent, sent for the final receipt.
        before = Message.Status.SENDING if event_type == "message.sent" else Message.Status.SENT
        Message.objects.create(
            clinic=clinic,
            direction=Message.Direction.OUTBOUND,
            kind=Message.Kind.REPLY,
            from_number=ours,
            to_number=number_in(payload.get("to")),
            body=str(payload.get("text") or ""),
            provider="telnyx",
            provider_message_id=payload["id"],
            status=before,
        )
    raw = raw if raw is not None else json.dumps(body).encode()

    response = post_telnyx_raw(client, telnyx_endpoint(event_type), raw)

    assert response.status_code == 200, response.content
    no_errors_logged(caplog)
    handled = (
        messaging_webhooks.TelnyxMessagesWebhook.handled_types | messaging_webhooks.TelnyxVoiceWebhook.handled_types
    )
    if event_type not in handled:
        # Not a type we subscribe to (e.g. the legacy name call_initiated): 200 so Telnyx stops retrying, counted,
        # nothing recorded. Nothing is lost: we act on no call.initiated either.
        assert not WebhookEvent.objects.exists() and not WebhookRejection.objects.exists()
        return None
    event = WebhookEvent.objects.get(provider="telnyx", event_id=data["id"])
    assert event.event_type == event_type and event.status != WebhookEvent.Status.FAILED, event.reason

    if event_type == "message.received":
        message = Message.objects.get(direction=Message.Direction.INBOUND)
        assert message.clinic == clinic and message.provider == "telnyx"
        assert message.provider_message_id == payload["id"]
        assert message.body == str(payload.get("text") or "")[:1600]
        assert message.from_number == normalize_phone(number_in(payload.get("from")))
        assert message.to_number == ours
        media = payload.get("media") or []
        assert [m["url"] for m in message.media] == [m["url"] for m in media if isinstance(m, dict) and m.get("url")]
        assert event.status == WebhookEvent.Status.PROCESSED and event.clinic == clinic
    elif event_type in ("message.sent", "message.finalized"):
        message = Message.objects.get(provider_message_id=payload["id"])
        expected = PROVIDER_STATUS[payload["to"][0]["status"]]
        assert message.status == expected != before  # moved forward
        if expected == Message.Status.DELIVERED:
            assert message.delivered_at is not None
        errors = payload.get("errors") or []
        if errors:
            assert message.error_code == str(errors[0]["code"])
        assert event.status == WebhookEvent.Status.PROCESSED
    elif event_type == "call.hangup":
        intros = Message.objects.filter(kind=Message.Kind.INTRO)
        missed = payload.get("hangup_cause") in MISSED_CAUSES and payload.get("direction") in (None, "incoming")
        try:
            caller = normalize_phone(number_in(payload.get("from")))
        except ValidationError:
            caller = None
        if not missed or caller is None:
            assert not intros.exists()
        elif PhoneNumber.objects.filter(number=caller).exists():
            # The caller ID is one of our own numbers (a spoofed caller ID, a forwarding loop, or, in the published
            # example, the same number on both sides): nobody to text, and texting ourselves would loop.
            assert not intros.exists(), "intro queued to the clinic's own number"
        else:
            intro = intros.get()
            assert (intro.to_number, intro.from_number, intro.provider) == (caller, ours, "telnyx")
            assert intro.status in (Message.Status.SCHEDULED, Message.Status.QUEUED, Message.Status.SENT)
            assert event.status == WebhookEvent.Status.PROCESSED and "intro queued" in event.reason
    else:  # call.initiated, call.answered: recorded for correlation only
        assert event.status == WebhookEvent.Status.IGNORED
        assert not Message.objects.exists()
    return event


TELNYX_EVENT_XFAIL = {}  # call_hangup.json (from and to both our number) is ignored: no intro to ourselves


@pytest.mark.parametrize("path", examples("telnyx", "event", xfail=TELNYX_EVENT_XFAIL))
def test_telnyx_webhook_example_is_replayed_with_its_effect(client, caplog, telnyx_webhooks, path):
    replay_telnyx_event(client, caplog, load(path), raw=path.read_bytes())


@pytest.mark.parametrize("path", examples("telnyx", "unenveloped", "delivery_record"))
def test_telnyx_bodies_without_the_v2_envelope(client, caplog, telnyx_webhooks, path):
    """Bodies without the v2 ``{"data": ...}`` envelope: v1 Call Control events (2018, ``call_initiated`` /
    ``call_answered`` at the top level), the API reference's rendering of the ``data`` value alone, and a webhook
    *delivery record* (what ``GET /v2/webhook_deliveries`` answers, the event under ``metadata.event``).

    What the code does: a 400 "not a Telnyx event envelope (no data object)", recorded as a WebhookRejection.
    Acceptable: Telnyx's v2 webhooks (the only ones a v2 messaging profile or Call Control app sends, and what
    TELNYX_PUBLIC_KEY verifies) always carry the envelope; v1 is retired; a delivery record and the schema rendering
    are documents about a webhook, not webhooks. The refusal is visible (a row with its reason), never a 500, and the
    events inside are replayed below in the shape Telnyx sends them, with their full effect."""
    body = load(path)
    event_type = body.get("event_type") or body.get("metadata", {}).get("event", {}).get("event_type", "")

    response = post_telnyx_raw(client, telnyx_endpoint(event_type), path.read_bytes())

    assert response.status_code < 500
    if 200 <= response.status_code < 300:
        assert not WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).exists()
    else:
        assert 400 <= response.status_code < 500
        assert recorded_refusal(response).reason == "not a Telnyx event envelope (no data object)"
        assert not WebhookEvent.objects.exists()
    no_errors_logged(caplog)

    # The event itself, as Telnyx delivers it: v2 ``data`` values wrapped in their envelope; the delivery record's
    # event unwrapped. (A v1 name such as call_answered is then an unknown type: 200, nothing recorded.)
    WebhookRejection.objects.all().delete()
    inner = body["metadata"]["event"] if telnyx_kind(path) == "delivery_record" else body
    replay_telnyx_event(client, caplog, {"data": copy.deepcopy(inner)})


def base_example(event_type: str, **payload_match):
    for p in files(DATA / "telnyx"):
        if telnyx_kind(p) != "event":
            continue
        data = load(p)["data"]
        if data["event_type"] == event_type and all(data["payload"].get(k) == v for k, v in payload_match.items()):
            return p
    raise AssertionError(f"no {event_type} example to put the fragment in")


@pytest.mark.parametrize("path", examples("telnyx", "fragment"))
def test_telnyx_fragments_inside_the_event_they_belong_to(client, caplog, telnyx_webhooks, path):
    """Fragments are parts of an event the page printed on their own (SOURCES.md: never a whole webhook). Each is
    put in the published event it belongs to: an ``errors`` array in the message.finalized example, its recipient
    status then one of the documented failure statuses (delivery_failed); ``media`` in the inbound MMS example."""
    fragment = load(path)
    if "errors" in fragment:
        body = load(base_example("message.finalized"))
        body["data"]["payload"]["errors"] = fragment["errors"]
        body["data"]["payload"]["to"][0]["status"] = "delivery_failed"
    elif "media" in fragment:
        body = load(base_example("message.received", type=fragment.get("type", "MMS")))
        body["data"]["payload"].update(fragment)
    else:
        pytest.fail(f"{path.name}: a fragment of a part no replay knows")
    body["data"]["id"] = str(uuid.uuid4())
    replay_telnyx_event(client, caplog, body)


def test_the_same_inbound_text_from_two_doc_pages_is_stored_once(client, caplog, telnyx_webhooks):
    """message_received_sms.json and its thinner copy on the "Receive SMS" guide share the event and message id:
    a redelivery (the guide's copy) changes nothing."""
    first, second = (
        DATA / "telnyx/message_received_sms.json",
        DATA / "telnyx/message_received_sms_receive_message_guide.json",
    )
    replay_telnyx_event(client, caplog, load(first), raw=first.read_bytes())
    assert post_telnyx_raw(client, TELNYX_MESSAGES, second.read_bytes()).status_code == 200
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert WebhookEvent.objects.get().deliveries == 2


def test_telnyx_receipts_of_one_text_only_move_it_forward(client, caplog, telnyx_webhooks):
    """message_sent.json and message_finalized_delivered.json are the receipts of one text (same payload id): in
    order it ends delivered; a late message.sent after the final receipt does not undo it."""
    sent, final = load(DATA / "telnyx/message_sent.json"), load(DATA / "telnyx/message_finalized_delivered.json")
    assert sent["data"]["payload"]["id"] == final["data"]["payload"]["id"]
    replay_telnyx_event(client, caplog, final)
    assert post_telnyx_raw(client, TELNYX_MESSAGES, json.dumps(sent).encode()).status_code == 200
    message = Message.objects.get(provider_message_id=sent["data"]["payload"]["id"])
    assert message.status == Message.Status.DELIVERED
    assert WebhookEvent.objects.get(event_type="message.sent").status == WebhookEvent.Status.IGNORED


def test_telnyx_missed_call_from_a_caller_id_written_with_dashes(client, caplog, telnyx_webhooks):
    """call_initiated.json's caller is "+1-202-555-0133", not E.164. Its hangup (call_hangup.json's payload with the
    numbers, direction and session of call_initiated.json: the same call ending unanswered) must text the caller,
    normalised: libphonenumber reads "+1-202-555-0133" as the valid NANP number +12025550133, and an intro sent to
    the dashed string would fail at the provider (or be stored under a key no later text from them matches)."""
    initiated = load(DATA / "telnyx/call_initiated.json")["data"]["payload"]
    body = load(DATA / "telnyx/call_hangup.json")
    body["data"]["payload"].update(
        {k: initiated[k] for k in ("from", "to", "direction", "call_session_id", "call_control_id")}
    )
    replay_telnyx_event(client, caplog, body)
    assert Message.objects.get(kind=Message.Kind.INTRO).to_number == "+12025550133"


def sdk_headers(headers: dict) -> dict:
    """Django test-client header arguments as the HTTP headers the SDK's verifier reads."""
    return {k.removeprefix("HTTP_").replace("_", "-").lower(): v for k, v in headers.items()}


def check_ed25519_vector(client, settings, vector: dict):
    """A fixed-key v2 vector (public key, timestamp, body, signature): none is published yet (SOURCES.md "Not
    found"); one added later is checked by our view and the SDK at its own time."""
    from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

    raw, timestamp, expected = vector["body"].encode(), str(vector["timestamp"]), vector.get("expected_valid", True)
    settings.TELNYX_PUBLIC_KEY = vector["public_key"]
    headers = {"HTTP_TELNYX_SIGNATURE_ED25519": vector["signature"], "HTTP_TELNYX_TIMESTAMP": timestamp}
    with time_machine.travel(datetime.fromtimestamp(int(timestamp), tz=UTC), tick=False):
        response = client.post(TELNYX_MESSAGES, data=raw, content_type="application/json", **headers)
        if expected:
            verify_webhook_signature(raw, sdk_headers(headers), vector["public_key"])
        else:
            with pytest.raises(WebhookVerificationError):
                verify_webhook_signature(raw, sdk_headers(headers), vector["public_key"])
    if expected:  # verified, then read
        assert response.status_code in (200, 400), response.content
    else:
        assert response.status_code == 403 and recorded_refusal(response).reason == "signature does not match"


@pytest.mark.parametrize("path", examples("telnyx", "signature_vector"))
def test_telnyx_signature_vector(client, settings, path, db):
    """The only fixed-key Telnyx vector published is the 2018 Messaging v1 HMAC (``telnyx-signature:
    t=<ts>,h=<base64 HMAC-SHA256(secret, ts.body)>``): no fixed Ed25519 quadruple exists (SOURCES.md "Not found").

    The vector is checked to be what it says (HMAC recomputed), then both our view and the official SDK's verifier
    (telnyx.lib.webhook_verification), at the vector's own time, must refuse it: v2 webhooks are Ed25519 over
    ``timestamp|body`` with Telnyx's public key, and a v1 HMAC is not a v2 signature, in whichever header it comes.
    Refusing it is right: v1 is retired and no v1 secret is configured (accepting it would need one)."""
    from telnyx.lib.webhook_verification import WebhookVerificationError, verify_webhook_signature

    vector = load(path)
    if "public_key" in vector:
        check_ed25519_vector(client, settings, vector)
        return
    raw, timestamp = vector["body"].encode(), vector["timestamp"]
    computed = hmac.new(vector["secret"].encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).digest()
    assert base64.b64encode(computed).decode() == vector["hash"]
    assert vector["signature_header"] == f"t={timestamp},h={vector['hash']}"
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC

    with time_machine.travel(datetime.fromtimestamp(int(timestamp), tz=UTC), tick=False):
        header_sets = [
            {"HTTP_TELNYX_SIGNATURE": vector["signature_header"]},  # the v1 header, as v1 sent it
            {"HTTP_TELNYX_SIGNATURE_ED25519": vector["hash"], "HTTP_TELNYX_TIMESTAMP": timestamp},  # in v2's headers
        ]
        for headers in header_sets:
            response = client.post(TELNYX_MESSAGES, data=raw, content_type="application/json", **headers)
            assert response.status_code == 403
            with pytest.raises(WebhookVerificationError):
                verify_webhook_signature(raw, sdk_headers(headers), TELNYX_PUBLIC)
    assert [r.reason for r in WebhookRejection.objects.order_by("pk")] == [
        "missing signature headers",
        "signature does not match",
    ]
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("path", examples("telnyx", "api_message"))
def test_telnyx_message_records_are_read_by_our_backend(settings, fake_telnyx, path):  # noqa: F811
    """``GET /v2/messages/{id}`` answers (the message detail record, also the shape of the ``POST /v2/messages``
    answer): the backend's status lookup reads the recipient's status, and a send answered with the record reads its
    id, in the current shape and in the legacy one (``from`` a plain string, ``cost.cost``)."""
    record = load(path)
    settings.PUBLIC_BASE_URL = BASE
    fake_telnyx.respond_get(200, record)
    assert TelnyxBackend().fetch_status(record["data"]["id"]) == record["data"]["to"][0]["status"]
    fake_telnyx.respond(200, record)
    sms = OutboundSms(
        from_number=number_in(record["data"]["from"]),
        to_number=number_in(record["data"]["to"]),
        body=record["data"]["text"],
        idempotency_key="replay#0",
    )
    assert TelnyxBackend().send(sms).provider_message_id == record["data"]["id"]


# --- Twilio ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def twilio_webhooks(db, settings, time_machine):
    time_machine.move_to(NOON_IN_BOSTON, tick=True)
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.PUBLIC_BASE_URL = BASE


def replay_twilio_params(client, caplog, params: dict):
    if "MessageStatus" in params:
        endpoint, ours = TWILIO_STATUS, params["From"]  # a status callback of our text: From is our number
    elif "CallSid" in params:
        endpoint, ours = TWILIO_VOICE, params["To"]
    else:
        endpoint, ours = TWILIO_MESSAGES, params["To"]
    clinic = clinic_with_number(ours, "twilio")
    if endpoint == TWILIO_STATUS:
        Message.objects.create(
            clinic=clinic,
            direction=Message.Direction.OUTBOUND,
            kind=Message.Kind.REPLY,
            from_number=ours,
            to_number=params.get("To") or "+16175550123",
            body="Hi",
            provider="twilio",
            provider_message_id=params["MessageSid"],
            status=Message.Status.SENDING,
        )

    response = post_twilio(client, endpoint, params)

    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/xml")
    no_errors_logged(caplog)
    event = WebhookEvent.objects.get(provider="twilio")
    assert event.status != WebhookEvent.Status.FAILED, event.reason
    if endpoint == TWILIO_MESSAGES:
        message = Message.objects.get(direction=Message.Direction.INBOUND)
        assert (message.provider, message.provider_message_id) == ("twilio", params["MessageSid"])
        assert message.body == params.get("Body", "")[:1600]
        assert message.from_number == normalize_phone(params["From"]) and message.to_number == ours
        count = int(params.get("NumMedia") or 0)
        assert message.media == [
            {"url": params[f"MediaUrl{i}"], "content_type": params.get(f"MediaContentType{i}")} for i in range(count)
        ]
        assert event.status == WebhookEvent.Status.PROCESSED and event.clinic == clinic
    elif endpoint == TWILIO_STATUS:
        message = Message.objects.get(provider_message_id=params["MessageSid"])
        assert message.status == PROVIDER_STATUS[params["MessageStatus"]] != Message.Status.SENDING
        assert event.status == WebhookEvent.Status.PROCESSED
    return event


@pytest.mark.parametrize("path", examples("twilio", "webhook_params"))
def test_twilio_webhook_example_is_replayed_with_its_effect(client, caplog, twilio_webhooks, path):
    """Twilio publishes no signature for these (``url`` null): they are signed with the test token over our URL."""
    replay_twilio_params(client, caplog, load(path)["params"])


@pytest.mark.parametrize("path", examples("twilio", "fragment"))
def test_twilio_media_fragment_in_an_inbound_mms(client, caplog, twilio_webhooks, path):
    """The media parameters are printed on their own: they go with the page's inbound parameters and NumMedia 1."""
    params = {**load(DATA / "twilio/inbound_sms_docs_parameter_examples.json")["params"], **load(path)["params"]}
    params["NumMedia"] = str(sum(1 for key in params if key.startswith("MediaUrl")))
    replay_twilio_params(client, caplog, params)


def form_of(vector: dict, params_key="params") -> str:
    if "raw_form_body" in vector and params_key == "params":
        return vector["raw_form_body"]
    return urlencode(vector[params_key], doseq=True)


def served_by_our_view(vector: dict) -> bool:
    """Our Twilio views verify form posts (request.POST) over PUBLIC_BASE_URL + the full path. A JSON-body vector
    (bodySHA256 in the URL) is not one: Twilio signs JSON bodies that way only for products we do not use (our
    messaging and voice webhooks are form posts), and Django has no form for a JSON body, so our view would check the
    signature over the URL alone, never the body's hash (such a body is then refused, 400, for want of a form); those
    vectors are checked with the SDK only."""
    return "params" in vector and "body" not in vector


# Our Twilio view mounted at each vector's path (pytest.mark.urls below), beside the project's own URLs (the
# middleware reverses the admin's): the vectors' URLs are Twilio's examples (https://mycompany.com/myapp.php?foo=1&bar=2),
# not our paths; the verification is the same code on any path.
urlpatterns = [
    *(
        url_path(path[1:], messaging_webhooks.TwilioVoiceWebhook.as_view())
        for path in sorted(
            {urlsplit(load(p)["url"]).path for p in files(DATA / "twilio") if twilio_kind(p) == "signature_vector"}
        )
    ),
    url_path("", include(django_settings.ROOT_URLCONF)),
]


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("path", examples("twilio", "signature_vector"))
def test_twilio_signature_vector(client, settings, db, path):
    """Each SDK test vector, checked by our view (the vector's params posted to its path and query, PUBLIC_BASE_URL
    its scheme and host, its token and signature) when it is a form, and by the SDK's RequestValidator (validate,
    which also tries the URL with and without the default port). Expected-valid: both accept; expected-invalid: both
    refuse. Our view answers a verified vector with a 400 (the vectors are not calls we can read: no CallStatus),
    an unverified one with a 403 "signature does not match"."""
    from twilio.request_validator import RequestValidator

    vector = load(path)
    url, token, expected = vector["url"], vector["auth_token"], vector["expected_valid"]
    split = urlsplit(url)
    signatures = [
        vector["signature"],
        *([vector["signature_with_port_443"]] if "signature_with_port_443" in vector else []),
    ]
    forms = ["params", *(["params_alternate_order"] if "params_alternate_order" in vector else [])]

    validator = RequestValidator(token)
    for signature in signatures:
        if "body" in vector and "bodySHA256" in split.query:
            assert validator.validate(url, vector["body"], signature) is expected  # body hash + URL signature
        elif "body" in vector:
            # twilio-node's validateRequestWithBody(token, sig, url, body) = validateRequest(url, {}) and the body
            # against the URL's bodySHA256, of which there is none. (twilio-python's validate(url, body_string) has no
            # such branch without bodySHA256: it iterates the string as if it were a form and raises TypeError.)
            assert (validator.validate(url, {}, signature) and "bodySHA256" in split.query) is expected
        else:
            for form in forms:
                assert validator.validate(url, QueryDict(form_of(vector, form)), signature) is expected

    settings.TWILIO_AUTH_TOKEN = token
    settings.PUBLIC_BASE_URL = f"{split.scheme}://{split.netloc}"
    target = split.path + (f"?{split.query}" if split.query else "")
    if "body" in vector and not expected:
        # A JSON body posted where a form is expected: no form, so nothing the signature was computed over.
        response = client.post(
            target, data=vector["body"], content_type="application/json", HTTP_X_TWILIO_SIGNATURE=vector["signature"]
        )
        assert response.status_code == 403 and recorded_refusal(response).reason == "signature does not match"
        return
    if not served_by_our_view(vector):
        return  # SDK only: see served_by_our_view
    for signature in signatures:
        for form in forms:
            rejections = WebhookRejection.objects.count()
            response = client.post(
                target,
                data=form_of(vector, form),
                content_type="application/x-www-form-urlencoded",
                HTTP_X_TWILIO_SIGNATURE=signature,
            )
            if expected:  # verified, then read: a 400 (not a call we can read) or a 200
                assert response.status_code in (200, 400), response.content
            else:
                assert response.status_code == 403
            if response.status_code >= 400:
                assert WebhookRejection.objects.count() == rejections + 1
                recorded_refusal(response)


@pytest.mark.parametrize("path", examples("twilio", "api_resource"))
def test_twilio_message_resource_is_read_by_our_backend(settings, path):
    """The Message resource (``GET .../Messages/{sid}.json``, also what ``POST .../Messages.json`` answers): the
    status lookup and a send read it through the SDK, emoji (a surrogate pair in the JSON) and all."""
    resource = load(path)
    account = resource["account_sid"]
    settings.SMS_BACKEND = ""
    settings.TWILIO_ACCOUNT_SID = account
    settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
    settings.TWILIO_BASE_URL = "http://twilio.fake"
    settings.PUBLIC_BASE_URL = BASE
    messages = f"http://twilio.fake/2010-04-01/Accounts/{account}/Messages"
    with responses.RequestsMock() as mock:
        mock.add(responses.GET, f"{messages}/{resource['sid']}.json", json=resource)
        mock.add(responses.POST, f"{messages}.json", json=resource, status=201)
        assert TwilioBackend().fetch_status(resource["sid"]) == resource["status"]
        sms = OutboundSms(
            from_number=resource["from"], to_number=resource["to"], body=resource["body"], idempotency_key="r#0"
        )
        result = TwilioBackend().send(sms)
    assert (result.provider_message_id, result.status) == (resource["sid"], resource["status"])


# --- Square ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def square(settings, demo, fake_square):
    settings.SQUARE_WEBHOOK_SIGNATURE_KEY = SQUARE_KEY
    settings.SQUARE_WEBHOOK_URL = SQUARE_URL
    with time_machine.travel(SQUARE_NOW, tick=True):
        yield demo


def hold(clinic):
    return booking_hold(
        clinic=clinic,
        service=Service.objects.get(clinic=clinic, name="Botox"),
        provider=EmrProvider.objects.get(clinic=clinic, name="Dr. Sarah Smith"),
        start=datetime(2026, 11, 24, 11, tzinfo=clinic.tz),
        patient_phone="+16175550123",
        patient_name="Jane Doe",
    )


def our_square_payment(clinic, *, order_id: str, amount: int) -> Payment:
    """A deposit link of ours (Square, through the fake), its order and amount those of the example."""
    payment = payment_services.deposit_request(booking_id=hold(clinic).pk)
    Payment.objects.filter(pk=payment.pk).update(order_id=order_id, amount_cents=amount)
    payment.refresh_from_db()
    assert payment.provider == "square"
    return payment


def paid_square_payment(clinic, *, payment_id: str, paid: int) -> Payment:
    payment = our_square_payment(clinic, order_id=f"order-{uuid.uuid4().hex[:8]}", amount=paid)
    Payment.objects.filter(pk=payment.pk).update(
        status=Payment.Status.PAID, provider_status="COMPLETED", payment_id=payment_id, paid_cents=paid
    )
    payment.refresh_from_db()
    return payment


def post_square(client, raw: bytes, *, key=SQUARE_KEY, url=SQUARE_URL, signature=None):
    signature = signature or square_sign(body=raw, signature_key=key, notification_url=url)
    return client.post(
        "/webhooks/square", data=raw, content_type="application/json", HTTP_X_SQUARE_HMACSHA256_SIGNATURE=signature
    )


def square_event_outcome(client, caplog, raw: bytes) -> WebhookEvent:
    body = json.loads(raw)
    response = post_square(client, raw)
    assert response.status_code == 200, response.content
    no_errors_logged(caplog)
    event = WebhookEvent.objects.get(provider="square", event_id=body["event_id"])
    assert event.event_type == body["type"] and event.status != WebhookEvent.Status.FAILED, event.reason
    return event


@pytest.mark.parametrize("path", examples("square", "event", "api_payment"))
@pytest.mark.parametrize("ours", [True, False], ids=["ours", "another-sale"])
def test_square_example_is_replayed_with_its_effect(client, caplog, square, sms_outbox, path, ours):
    """Each published event, signed with the test key and posted. ``ours``: a Payment of ours matches it first
    (its order and amount for payment.*, its payment id, paid in full, for refund.*); ``another-sale``: nothing of
    ours does (Square reports every sale of the seller): recorded and ignored, no staff noise.

    get_payment_response.json (``GET /v2/payments/{id}``) is no webhook; its ``{"payment": ...}`` is exactly a
    payment event's ``data.object``, so it is replayed as the payment.updated that reports that payment."""
    body = load(path)
    raw = path.read_bytes()
    if square_kind(path) == "api_payment":
        body = {
            "merchant_id": "6SSW7HV8K2ST5",
            "type": "payment.updated",
            "event_id": str(uuid.uuid4()),
            "created_at": body["payment"]["updated_at"],
            "data": {"type": "payment", "id": body["payment"]["id"], "object": body},
        }
        raw = json.dumps(body).encode()
    kind, obj = body["type"].split(".")[0], body["data"]["object"]
    item = obj[kind]
    amount = item["amount_money"]["amount"]
    payment = None
    if ours and kind == "payment":
        payment = our_square_payment(square, order_id=item["order_id"], amount=amount)
    elif ours:
        payment = paid_square_payment(square, payment_id=item["payment_id"], paid=amount)

    event = square_event_outcome(client, caplog, raw)

    if payment is None:
        assert event.status == WebhookEvent.Status.IGNORED
        assert ("did not create" if kind == "payment" else "did not take") in event.reason
        assert not StaffAlert.objects.exists()
        assert not Payment.objects.exclude(status=Payment.Status.CREATED).exists()
        return
    payment.refresh_from_db()
    booking = Booking.objects.get(pk=payment.booking_id)
    assert event.status == WebhookEvent.Status.PROCESSED and event.subject_id == str(payment.pk)
    if kind == "payment" and item["status"] == "COMPLETED":
        assert (payment.status, payment.paid_cents, payment.payment_id) == ("paid", amount, item["id"])
        assert booking.status == Booking.Status.CONFIRMED
        assert [m.body[:12] for m in sms_outbox] == ["You're booke"]
    elif kind == "payment":  # APPROVED / PENDING: noted, nothing confirmed yet
        assert (payment.status, payment.provider_status) == ("created", item["status"])
        assert payment.payment_id == item["id"]  # the payment's own id, not data.id (they differ in payment.created)
        assert booking.status == Booking.Status.AWAITING_DEPOSIT and sms_outbox == []
    else:
        expected = {"PENDING": "refund_pending", "COMPLETED": "refunded"}[item["status"]]
        assert payment.status == expected
        assert payment.refunds == {item["id"]: {"status": item["status"], "amount": amount}}
        assert payment.refunded_cents == (amount if item["status"] == "COMPLETED" else 0)
    assert not StaffAlert.objects.exists()


def refund_examples():
    return [p for p in examples("square", "event") if load(p.values[0])["type"].startswith("refund.")]


@pytest.mark.parametrize("path", refund_examples())
def test_square_refund_of_part_of_a_payment(client, caplog, square, path):
    """The refund examples (1000) against a payment of ours of 2500: pending, or partially refunded once done."""
    refund = load(path)["data"]["object"]["refund"]
    payment = paid_square_payment(square, payment_id=refund["payment_id"], paid=refund["amount_money"]["amount"] + 1500)
    square_event_outcome(client, caplog, path.read_bytes())
    payment.refresh_from_db()
    expected = {"PENDING": "refund_pending", "COMPLETED": "partially_refunded"}[refund["status"]]
    assert payment.status == expected
    assert payment.refunded_cents == (1000 if refund["status"] == "COMPLETED" else 0)


def test_square_payment_created_then_completed(client, caplog, square, sms_outbox):
    """payment_created.json then payment_updated_completed.json: the same payment approved, then completed."""
    created, completed = DATA / "square/payment_created.json", DATA / "square/payment_updated_completed.json"
    item = load(created)["data"]["object"]["payment"]
    payment = our_square_payment(square, order_id=item["order_id"], amount=item["amount_money"]["amount"])
    square_event_outcome(client, caplog, created.read_bytes())
    square_event_outcome(client, caplog, completed.read_bytes())
    payment.refresh_from_db()
    assert (payment.status, payment.provider_status, payment.payment_id) == ("paid", "COMPLETED", item["id"])
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    assert len(sms_outbox) == 1


def test_square_refund_created_then_completed_with_the_reused_event_id(client, caplog, square):
    created, updated = DATA / "square/refund_created_pending.json", DATA / "square/refund_updated_completed.json"
    refund = load(created)["data"]["object"]["refund"]
    payment = paid_square_payment(square, payment_id=refund["payment_id"], paid=refund["amount_money"]["amount"])
    assert post_square(client, created.read_bytes()).status_code == 200
    assert post_square(client, updated.read_bytes()).status_code == 200
    no_errors_logged(caplog)
    payment.refresh_from_db()
    assert (payment.status, payment.refunded_cents) == ("refunded", refund["amount_money"]["amount"])


def square_vectors():
    """(id, notification_url, signature_key, body, signature, expected) for every Square vector and case."""
    found = []
    for p in files(DATA / "square"):
        kind = square_kind(p)
        v = load(p)
        if kind == "signature_vector":
            found.append(
                pytest.param(
                    v["notification_url"], v["signature_key"], v["body"], v["signature"], v["expected_valid"], id=p.name
                )
            )
        elif kind == "signature_cases":
            for case in v["cases"]:
                merged = {**v["base"], "signature": v["signature"], **case}
                expected = case.get("expected_valid", "error")
                found.append(
                    pytest.param(
                        merged["notification_url"],
                        merged["signature_key"],
                        merged["body"],
                        merged["signature"],
                        expected,
                        id=f"{p.name}:{case['name']}",
                    )
                )
    return found


@pytest.mark.parametrize(("url", "key", "body", "signature", "expected"), square_vectors())
def test_square_signature_vector(client, settings, db, url, key, body, signature, expected):
    """Each vector of Square's SDK tests, checked by the SDK's own helper (square.utils.webhooks_helper
    verify_signature) and by our view, configured with the vector's notification URL and key. "error" cases (an
    empty key or URL, where the SDK raises ValueError) must be refused by our view too, as a 403, never a 500.

    A verified vector passes the signature check: our view then reads it (the vectors are test notifications or
    bare ``{"data": ...}`` bodies, not payment events); see the test below for what it answers."""
    from square.utils.webhooks_helper import verify_signature as sdk_verify

    if expected == "error":
        with pytest.raises(ValueError):
            sdk_verify(request_body=body, signature_header=signature, signature_key=key, notification_url=url)
    else:
        assert sdk_verify(request_body=body, signature_header=signature, signature_key=key, notification_url=url) is (
            expected
        )
    assert our_square_verify(body=body.encode(), signature=signature, signature_key=key, notification_url=url) is (
        expected is True
    )

    settings.SQUARE_WEBHOOK_URL, settings.SQUARE_WEBHOOK_SIGNATURE_KEY = url, key
    response = post_square(client, body.encode(), signature=signature)
    if expected is True:  # verified, then read: not a payment event (see the test below)
        assert response.status_code in (200, 400), response.content
        if response.status_code == 400:
            assert recorded_refusal(response).reason in ("event_id is missing", "data.object is required")
    else:
        assert response.status_code == 403
        assert recorded_refusal(response).reason in (
            "signature does not match",
            "SQUARE_WEBHOOK_SIGNATURE_KEY is not configured",
        )
    assert not WebhookEvent.objects.exists()  # no vector is a payment or refund event


def test_square_test_notification_is_acknowledged_like_any_unknown_type(client, settings, db):
    vector = load(DATA / "square/sig_test_notification.json")
    settings.SQUARE_WEBHOOK_URL, settings.SQUARE_WEBHOOK_SIGNATURE_KEY = (
        vector["notification_url"],
        vector["signature_key"],
    )
    response = post_square(client, vector["body"].encode(), signature=vector["signature"])
    assert response.status_code == 200, response.content
    assert not WebhookEvent.objects.exists() and not WebhookRejection.objects.exists()


# --- Nextech --------------------------------------------------------------------------------------------------------

NX_BASE, NX_TOKEN_URL = "https://nextech.test/api", "https://login.nextech.test/oauth2/token"
DEFAULT_TOKEN = json.dumps(
    {"token_type": "Bearer", "expires_in": "3600", "access_token": "at-1", "refresh_token": "rt-1"}
).encode()


class NextechAnswers:
    """Nextech answering with the given bytes, exactly as published (an httpx transport: no server, no network).
    ``routes``: (method, path under /api) -> raw body; a path ending in "/" matches any id below it."""

    def __init__(self, routes: dict, *, token: bytes = DEFAULT_TOKEN):
        self.routes, self.token, self.requests = routes, token, []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if str(request.url).startswith(NX_TOKEN_URL):
            return httpx.Response(200, content=self.token, headers={"Content-Type": "application/json"})
        path = request.url.path.removeprefix("/api")
        for (method, route), (status, raw) in self.routes.items():
            if request.method == method and (path == route or (route.endswith("/") and path.startswith(route))):
                return httpx.Response(status, content=raw, headers={"Content-Type": "application/fhir+json"})
        return httpx.Response(404, json={"resourceType": "OperationOutcome", "issue": [{"diagnostics": "no route"}]})


@pytest.fixture
def nextech_answering():
    clients = []

    def build(routes, **kwargs):
        client = NextechClient(
            client_id="nx-client",
            username="api-user@spa.example",
            password=f"pw-{uuid.uuid4().hex}",  # a fresh token cache key per client
            practice_id="PRACTICE-1",
            location_id="1",
            base_url=NX_BASE,
            token_url=NX_TOKEN_URL,
            max_attempts=1,
            sleep=lambda _s: None,
        )
        answers = NextechAnswers(routes, **kwargs)
        client._http.close()
        client._http = httpx.Client(transport=httpx.MockTransport(answers))
        clients.append(client)
        return client, answers

    yield build
    for client in clients:
        client.close()


def skipped_count(resource: str, reason: str = "invalid") -> float:
    labels = {"emr": "nextech", "resource": resource, "reason": reason}
    return REGISTRY.get_sample_value("medspa_emr_resources_skipped_total", labels) or 0.0


def nextech_examples(*kinds, xfail=None):
    return examples("nextech", *kinds, xfail=xfail, folders=[DATA / "nextech", NEXTECH_VENDOR])


SLOT_SAMPLE = NEXTECH_VENDOR / "slot_search.json"
SLOT_DAY = datetime(2018, 2, 26, tzinfo=UTC)


def slot_search(build, raw: bytes, **kwargs):
    client, _ = build({("GET", "/Slot"): (200, raw)}, **kwargs)
    return client.availability(service_ref="9", start=SLOT_DAY, end=SLOT_DAY.replace(day=27))


def without_empty_strings(value):
    """``value`` with every "" left out (FHIR JSON writes an absent value by leaving it out)."""
    if isinstance(value, dict):
        return {k: without_empty_strings(v) for k, v in value.items() if v != ""}
    if isinstance(value, list):
        return [without_empty_strings(v) for v in value if v != ""]
    return value


def resource_of(body: dict) -> dict:
    return body["resource"] if isinstance(body.get("resource"), dict) else body


@pytest.mark.parametrize("path", nextech_examples("bundle"))
def test_nextech_bundle_sample_is_read_by_the_search_that_gets_it(nextech_answering, path):
    """A search answer, served as published, to the adapter's search for its entries' type: Slot -> availability
    (a bad Slot skipped and counted), Appointment -> find_appointment, Patient -> find_or_create_patient (strict:
    a skipped one could mean a second booking or a duplicate chart). Each must read the sample's resource."""
    body = load(path)
    types = {e["resource"]["resourceType"] for e in body.get("entry", []) if isinstance(e.get("resource"), dict)}
    raw = path.read_bytes()
    if types == {"Slot"}:
        slots = slot_search(nextech_answering, raw)
        assert len(slots) == len(body["entry"])
    elif types == {"Appointment"}:
        resource = body["entry"][0]["resource"]
        start = datetime.fromisoformat(resource["start"])
        client, _ = nextech_answering({("GET", "/Appointment"): (200, raw)})
        # As published: read, and not ours (its comment carries no booking:<id> marker).
        assert client.find_appointment(booking_id=41, patient_id="1", start=start) is None
        # The same answer for an appointment our create wrote (its comment starts with our marker): found.
        marked = copy.deepcopy(body)
        marked["entry"][0]["resource"]["comment"] = f"booking:41 {resource.get('comment', '')}".strip()
        client, _ = nextech_answering({("GET", "/Appointment"): (200, json.dumps(marked).encode())})
        assert client.find_appointment(booking_id=41, patient_id="1", start=start).emr_appointment_id == resource["id"]
    elif types == {"Patient"}:
        resource = body["entry"][0]["resource"]
        official = next(n for n in resource["name"] if n.get("family"))
        phone = next(t["value"] for t in resource["telecom"] if t.get("system") == "phone")
        client, answers = nextech_answering({("GET", "/Patient"): (200, raw)})
        digits = "".join(c for c in phone if c.isdigit())
        patient = PatientInfo(first_name=official["given"][0], last_name=official["family"], phone=f"+1{digits}")
        assert client.find_or_create_patient(patient) == resource["id"]
        assert not [r for r in answers.requests if r.method == "POST" and r.url.path.endswith("/Patient")]
    else:
        pytest.fail(f"{path.name}: a Bundle of {types}, which no search of the adapter reads")


@pytest.mark.parametrize("path", nextech_examples("resource"))
def test_nextech_resource_sample_is_read_or_skipped_with_a_counted_reason(nextech_answering, path):
    """A resource on its own (or in a Bundle entry, as the Location sample). Where the adapter reads one: an
    Appointment as the answer to POST /Appointment, a Patient as the answer to POST /Patient. Every resource also
    goes where Nextech puts the resources a Slot refers to: contained in the Slot of Nextech's own Slot sample
    (kept when it passes its STU3 model, else dropped, logged and counted; the Slot is offered either way), and as
    a Bundle entry beside that Slot (left alone: a Slot search reads Slots)."""
    resource = resource_of(load(path))
    kind = resource["resourceType"]
    slot_bundle = load(SLOT_SAMPLE)

    if kind == "Appointment":
        client, _ = nextech_answering({("POST", "/Appointment"): (201, json.dumps(resource).encode())})
        start = datetime.fromisoformat(resource["start"])
        slot = Slot(
            start=start,
            end=datetime.fromisoformat(resource["end"]),
            provider_ref="9",
            service_ref="9",
            purpose_ref="161",
        )
        request = AppointmentRequest(
            booking_id=41, slot=slot, patient=PatientInfo("Jane", "Doe", "+16175550123"), emr_patient_id="77"
        )
        assert client.create_appointment(request).emr_appointment_id == resource["id"]
    elif kind == "Patient":
        client, _ = nextech_answering(
            {
                ("GET", "/Patient"): (200, b'{"resourceType": "Bundle", "type": "searchset"}'),
                ("POST", "/Patient"): (201, json.dumps(resource).encode()),
            }
        )
        # Everything POST /Patient requires (_patient.md, "Create Patient"), from the sample itself.
        patient = PatientInfo(
            first_name="Gregory",
            last_name="Brinkley",
            phone="+18135555555",
            email="test@abc.com",
            birth_date=date(1970, 9, 28),
            postal_code="20787",
        )
        assert client.find_or_create_patient(patient) == resource["id"]

    # Contained in the Slot.
    with_contained = copy.deepcopy(slot_bundle)
    with_contained["entry"][0]["resource"]["contained"] = [resource]
    labels = (kind, "unknown")
    before = {label: skipped_count(label) for label in labels}
    slots = slot_search(nextech_answering, json.dumps(with_contained).encode())
    assert len(slots) == 1 and slots[0].provider_ref == "9323"
    counted = sum(skipped_count(label) - before[label] for label in labels)
    try:  # read as the adapter reads Nextech's answers: an empty string is an absent value (docs/DECISIONS.md)
        get_fhir_model_class(kind).model_validate(without_empty_strings(resource))
        valid = True
    except Exception:  # no STU3 model for the type (Nextech's own resource types), or refused by it
        valid = False
    assert counted == (0 if valid else 1)

    # A Bundle entry beside the Slot.
    beside = copy.deepcopy(slot_bundle)
    beside["entry"].append({"resource": resource})
    assert len(slot_search(nextech_answering, json.dumps(beside).encode())) == 1


@pytest.mark.parametrize("path", nextech_examples("request"))
def test_nextech_appointment_request_samples(nextech_answering, path):
    """Nextech's Appointment request bodies (what a client sends): ours for the same operation must say the same
    things (status, extensions, reference shapes), and the sample as an answer to our PUT (Nextech answers a PUT with
    the Appointment) must not break the adapter: it reads the Appointment, or keeps the status it set."""
    sample = load(path)
    client, answers = nextech_answering({("PUT", "/Appointment/"): (200, path.read_bytes())})
    status = sample.get("status")
    if status == "proposed":  # the booking request
        slot = Slot(
            start=datetime.fromisoformat(sample["start"]),
            end=datetime.fromisoformat(sample["end"]),
            provider_ref="9323",
            service_ref="25",
            location_ref="1",
        )
        ours = client.appointment_body(
            AppointmentRequest(
                booking_id=41, slot=slot, patient=PatientInfo("Jane", "Smith", "+16175550123"), emr_patient_id="EEA9"
            ),
            "EEA9EC85-849E-4B88-9859-9F30CF309446",
            purpose="202",
        )
        assert ours["status"] == sample["status"]
        assert [p["actor"]["reference"] for p in ours["participant"]] == [
            p["actor"]["reference"] for p in sample["participant"]
        ]
        schedule = "https://select.nextech-api.com/api/structuredefinition/appointment-schedule"
        ours_ext = {e["url"]: e.get("valueString") or e["valueReference"]["reference"] for e in ours["extension"]}
        sample_ext = {e["url"]: e.get("valueString") or e["valueReference"]["reference"] for e in sample["extension"]}
        assert ours_ext[schedule] == sample_ext[schedule] == "book"
        assert ours_ext == sample_ext  # type, purpose (required up to Nextech 16.2) and schedule, reference forms
        assert datetime.fromisoformat(ours["start"]) == datetime.fromisoformat(sample["start"])
        return
    # A PUT: confirm (booked) or cancel (cancelled) as we send them, answered with the sample.
    if status == "cancelled":
        assert client.cancel_appointment("5453") is None
        sent = "cancelled"
    else:
        answer = client.confirm_appointment("5453")
        assert answer.emr_appointment_id == "5453" and answer.status in {"booked", status}
        sent = "booked"
    put = next(r for r in answers.requests if r.method == "PUT")
    assert put.url.path == "/api/Appointment/5453"
    assert json.loads(put.content) == {"resourceType": "Appointment", "id": "5453", "status": sent}
    if status in ("booked", "cancelled"):
        assert {k: v for k, v in json.loads(put.content).items() if k != "id"} == {
            "resourceType": "Appointment",
            "status": status,
        }


@pytest.mark.parametrize("path", nextech_examples("token"))
def test_nextech_token_sample_signs_the_adapter_in(nextech_answering, path):
    """The token endpoint's answer as Nextech documents it (expires_in a string, as Azure AD v1 sends it): the
    adapter takes the token and sends it on the next API call."""
    token = load(path)
    client, answers = nextech_answering({("GET", "/Slot"): (200, SLOT_SAMPLE.read_bytes())}, token=path.read_bytes())
    assert len(client.availability(service_ref="9", start=SLOT_DAY, end=SLOT_DAY.replace(day=27))) == 1
    api = [r for r in answers.requests if r.url.path == "/api/Slot"]
    assert api and api[0].headers["authorization"] == f"Bearer {token['access_token']}"


@pytest.mark.parametrize("path", nextech_examples("invalid_json"))
def test_nextech_invalid_json_sample_is_an_emr_error_not_a_crash(nextech_answering, path):
    """The Practitioner sample is not JSON (no closing brace; ``identifier`` twice). Whatever answer carries it, the
    adapter raises its own EmrError (never a JSONDecodeError or KeyError from deep inside)."""
    raw = load(path)["body"].encode()
    with pytest.raises(ValueError):
        json.loads(raw)
    for method, route, call in [
        ("GET", "/Slot", lambda c: c.availability(service_ref="9", start=SLOT_DAY, end=SLOT_DAY.replace(day=27))),
        ("GET", "/Patient", lambda c: c.find_or_create_patient(PatientInfo("Test", "Provider", "+18133242391"))),
        ("GET", "/Appointment", lambda c: c.find_appointment(booking_id=1, patient_id="1", start=SLOT_DAY)),
    ]:
        client, _ = nextech_answering({(method, route): (200, raw)})
        with pytest.raises(EmrError) as caught:
            call(client)
        assert "without JSON" in str(caught.value)


# --- Boulevard (Boulevard/book-sdk and its schema) and OpenAI ------------------------------------------------------


def boulevard_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if "CartErrorCode" in body:
        return "schema_enum"
    if "vectors" in body:
        return "auth_vectors"
    if body.get("prefix") == "blvd-client-v1":
        return "token_recipe"
    if path.name.endswith("_fragment.json") and isinstance(body.get("errors"), list):
        return "error_fragment"
    if "quotes" in body:
        return "help_centre"
    return "unknown"


def openai_kind(path: Path) -> str:
    body = shape(path)
    if body is None:
        return "unknown"
    if isinstance(body.get("error"), dict) and body["error"].get("param"):
        return "parameter_refusal"
    return "unknown"


CLASSIFIERS.update({"boulevard": boulevard_kind, "openai": openai_kind})
BOULEVARD_LOCATION = "urn:blvd:Location:loc-1"


@pytest.mark.parametrize(
    ("provider", "path"),
    [pytest.param(pr, p, id=f"{pr}/{p.name}") for pr in ("boulevard", "openai") for p in files(DATA / pr)],
)
def test_every_boulevard_and_openai_example_has_a_replay(provider, path):
    assert CLASSIFIERS[provider](path) != "unknown", f"{path}: no replay in this file knows this shape; add one"


@pytest.fixture
def boulevard():
    from .fakes.boulevard import FakeBoulevard

    fake = FakeBoulevard().start()
    fake.schedule = [datetime(2025, 3, 10, 14, tzinfo=UTC)]
    yield fake
    fake.stop()


def boulevard_client(fake, **options):
    from emr.boulevard import BoulevardClient

    return BoulevardClient(
        business_id=fake.business_id,
        api_key=fake.api_key,
        api_secret=fake.api_secret,
        location_id=fake.location_id,
        base_url=fake.url,
        sleep=lambda seconds: None,
        **options,
    )


def test_boulevard_cart_error_enum_is_all_the_adapter_and_fake_know():
    from emr import boulevard as adapter

    from .fakes.boulevard import CART_ERROR_CODES

    enum = set(load(DATA / "boulevard" / "cart_error_codes.json")["CartErrorCode"])
    assert enum == CART_ERROR_CODES
    assert {adapter.CARD_MISSING, adapter.QUESTIONS_MISSING, adapter.TIME_MISSING} <= enum
    assert not hasattr(adapter, "TAKEN_CODES")  # the "slot taken" codes we used to match are not in the schema


def test_boulevard_guest_vectors_are_what_the_adapter_sends(boulevard):
    for vector in load(DATA / "boulevard" / "platform_client_auth_vectors.json")["vectors"]:
        boulevard.api_key = vector["apiKey"]
        blvd = boulevard_client(boulevard)
        start = boulevard.schedule[0]
        assert blvd.availability(service_ref="urn:blvd:Service:botox", start=start, end=start.replace(hour=15))
        blvd.close()
        assert boulevard.requests[-1].authorization == vector["Authorization"]


def test_boulevard_token_recipe_signs_the_example_client_in(boulevard):
    recipe = load(DATA / "boulevard" / "client_token_recipe.json")
    assert boulevard.business_id == recipe["example_business_id"]
    blvd = boulevard_client(boulevard, test_client_id=recipe["example_client_id"])
    header = blvd._client_authorization(recipe["example_client_id"])
    _, _, token = base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
    assert token[44:].startswith(recipe["prefix"] + recipe["example_business_id"] + recipe["example_client_id"])
    assert boulevard.signed_client(header) == (recipe["example_client_id"], "")
    blvd.close()


@pytest.mark.parametrize("path", examples("boulevard", "error_fragment"), ids=lambda p: p.name)
def test_boulevard_error_fragments_are_read_as_published(boulevard, path):
    from emr.boulevard import APPOINTMENT, BoulevardError

    from .fakes.boulevard import COST_LIMIT

    error = load(path)["errors"][0]
    blvd = boulevard_client(boulevard)
    if "code" in error:  # anonymous appointment access: UNAUTHENTICATED, a permanent error
        appointment_id = boulevard.book(boulevard.schedule[0], client_id="f9d25e50-c5f0-4879-ae20-026303e23405")
        with pytest.raises(BoulevardError) as caught:
            blvd._call(APPOINTMENT, {"id": appointment_id})
        assert caught.value.code == error["code"] and not caught.value.transient
    else:  # the cost limit: waited out, then answered
        boulevard.rate_limit(times=1, wait_ms=250)
        slots = blvd.availability(
            service_ref="urn:blvd:Service:botox",
            start=boulevard.schedule[0],
            end=boulevard.schedule[0].replace(hour=15),
        )
        assert len(slots) == 1
        assert COST_LIMIT.split(" Query")[0] == error["message"].split(" Query")[0]  # the fake speaks the format
    blvd.close()


def test_boulevard_help_centre_card_rule_stops_checkout(boulevard):
    from emr.boulevard import CardRequired

    quotes = load(DATA / "boulevard" / "help_centre_card_on_file.json")["quotes"]
    assert all("card" in q["quote"].lower() for q in quotes)
    boulevard.payment_info_required = True
    blvd = boulevard_client(boulevard)
    start = boulevard.schedule[0]
    request = AppointmentRequest(
        booking_id=1,
        slot=Slot(start=start, end=start, provider_ref="", service_ref="urn:blvd:Service:botox"),
        patient=PatientInfo(first_name="A", last_name="B", phone="+16175550100"),
    )
    with pytest.raises(CardRequired):
        blvd.create_appointment(request)
    blvd.close()
    assert not boulevard.appointments


@pytest.mark.parametrize("path", examples("openai", "parameter_refusal"), ids=lambda p: p.name)
def test_openai_parameter_refusal_is_what_the_fake_answers(path):
    from .fakes.openai import refusal

    published = load(path)["error"]
    answered = refusal({"model": "gpt-5-mini", published["param"]: 0.2})
    assert answered == published
