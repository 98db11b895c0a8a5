"""The signed-webhook contract, one set of cases for every provider endpoint (in the way of django-anymail's
WebhookBasicAuthTestCase): a request that is forged, stale, unsigned, signed with a wrong, removed or unconfigured key,
sent with the wrong method or signed but unreadable is refused with its status and reason, recorded as a
WebhookRejection (except a wrong method, refused before anything is read), and records no event and does nothing: no
text received or sent, no payment changed. A valid event is accepted and acted on once, however often it comes.

``SignedWebhookContract`` holds the cases and is not collected itself; each provider's subclass only says how it
signs, which setting holds its keys, its URL, a valid event (built from the provider's published example in
tests/data/providers/) and what its events change.
"""

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import time_machine
from django.http import QueryDict
from nacl.signing import SigningKey

from bookings.models import Booking
from bookings.services import booking_hold
from emr.models import Provider as Practitioner
from inbox.models import WebhookEvent, WebhookRejection
from medspa.models import Service
from messaging.models import Message, PhoneNumber
from payments import services as payments
from payments.backends.square import sign as square_sign
from payments.models import OutboxItem, Payment

from .conftest import make_clinic
from .messaging_helpers import TELNYX_KEY, TELNYX_PUBLIC, TWILIO_TOKEN, telnyx_headers, twilio_signature

pytest_plugins = ["tests.fakes.square"]

DATA = Path(__file__).parent / "data" / "providers"
NOON = datetime(2026, 11, 23, 17, 0, tzinfo=UTC)  # Monday noon in Boston: no quiet hours, the demo clinic open
BASE = "https://frontdesk.example.com"


def example(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


class SignedWebhookContract:
    """The cases. A subclass sets the attributes below and implements the methods under "What a provider says"."""

    provider: str
    path: str
    key_setting: str  # the setting that holds the verifying key(s), comma-separated during a rotation
    content_type = "application/json"
    signature_header: str  # as in request.META
    missing_reason: str  # the refusal's reason when the signature header is absent
    malformed: list[tuple[bytes, str]]  # signed bodies that cannot be read, and the reason each is refused with

    # --- What a provider says -------------------------------------------------------------------------------------

    def first_key(self):
        """(what signs, the setting's value that verifies it): the key configured at the start of each case."""
        raise NotImplementedError

    def new_key(self):
        """A fresh (signer, setting value) pair: another account's key, or the next one in a rotation."""
        raise NotImplementedError

    def world(self, request):
        """Whatever a valid event needs to have an effect (a clinic and its number, a payment waiting)."""
        raise NotImplementedError

    def body(self) -> bytes:
        """A valid event, as the provider sends it, with new ids at each call."""
        raise NotImplementedError

    def sign(self, raw: bytes, signer) -> dict:
        """The headers (request.META names) the provider sends with ``raw``, signed by ``signer``."""
        raise NotImplementedError

    def forge(self, raw: bytes) -> bytes:
        """``raw`` with something an attacker would change."""
        raise NotImplementedError

    def effects(self) -> dict:
        """What an accepted event changes, to compare before and after a request."""
        raise NotImplementedError

    # --- The harness ----------------------------------------------------------------------------------------------

    @pytest.fixture(autouse=True)
    def _contract(self, request, db, settings, client, sms_outbox):
        self.settings, self.client, self.outbox = settings, client, sms_outbox
        settings.PUBLIC_BASE_URL = BASE
        with time_machine.travel(NOON, tick=True):
            self.signer, self.key_value = self.first_key()
            self.configure(self.key_value)
            self.world(request)
            yield

    def configure(self, value: str):
        setattr(self.settings, self.key_setting, value)

    def post(self, raw: bytes, headers: dict):
        return self.client.post(self.path, data=raw, content_type=self.content_type, **headers)

    def deliver(self, signer=None):
        raw = self.body()
        return self.post(raw, self.sign(raw, signer or self.signer))

    def snapshot(self) -> dict:
        return {
            "events": WebhookEvent.objects.count(),
            "rejections": WebhookRejection.objects.count(),
            "texts_sent": len(self.outbox),
            **self.effects(),
        }

    def assert_refused(self, response, before: dict, *, status: int, reason: str):
        """Refused with ``status`` and ``reason``, the refusal recorded, nothing else recorded or done."""
        assert response.status_code == status, response.content
        error = response.json()["error"]
        assert reason in error, error
        assert self.snapshot() == {**before, "rejections": before["rejections"] + 1}
        rejection = WebhookRejection.objects.order_by("-pk").first()
        assert (rejection.provider, rejection.path, rejection.status_code) == (self.provider, self.path, status)
        assert rejection.reason == error

    def assert_accepted(self, response, before: dict):
        assert response.status_code == 200, response.content
        after = self.snapshot()
        assert after["events"] == before["events"] + 1 and after["rejections"] == before["rejections"]
        return after

    # --- The cases ------------------------------------------------------------------------------------------------

    def test_a_signed_event_is_accepted_recorded_once_and_acted_on(self):
        before = self.snapshot()
        after = self.assert_accepted(self.deliver(), before)
        event = WebhookEvent.objects.get()
        assert (event.provider, event.status, event.deliveries) == (self.provider, "processed", 1)
        assert after != {**before, "events": before["events"] + 1}  # it did something: the refusals below mean it

    def test_a_forged_body_is_refused(self):
        raw = self.body()
        forged = self.forge(raw)
        assert forged != raw
        before = self.snapshot()
        response = self.post(forged, self.sign(raw, self.signer))
        self.assert_refused(response, before, status=403, reason="signature does not match")

    def test_a_request_without_a_signature_is_refused(self):
        raw = self.body()
        headers = self.sign(raw, self.signer)
        del headers[self.signature_header]
        before = self.snapshot()
        self.assert_refused(self.post(raw, headers), before, status=403, reason=self.missing_reason)

    def test_a_request_signed_with_another_key_is_refused(self):
        other, _ = self.new_key()
        before = self.snapshot()
        self.assert_refused(self.deliver(other), before, status=403, reason="signature does not match")

    def test_during_a_rotation_the_old_and_the_new_key_both_verify(self):
        new, new_value = self.new_key()
        self.configure(f"{new_value},{self.key_value}")
        for signer in (self.signer, new):
            before = self.snapshot()
            self.assert_accepted(self.deliver(signer), before)
        assert WebhookEvent.objects.count() == 2

    def test_after_a_rotation_the_removed_key_is_refused(self):
        new, new_value = self.new_key()
        self.configure(new_value)
        before = self.snapshot()
        self.assert_refused(self.deliver(self.signer), before, status=403, reason="signature does not match")
        before = self.snapshot()
        self.assert_accepted(self.deliver(new), before)

    def test_without_a_configured_key_every_request_is_refused(self):
        """Documented (docs/DEPLOYMENT.md, the medspa.W10x checks): an empty key setting refuses every webhook,
        signed or not; nothing is accepted unverified."""
        self.configure("")
        raw = self.body()
        headers = self.sign(raw, self.signer)
        unsigned = {k: v for k, v in headers.items() if k != self.signature_header}
        for sent in (headers, unsigned):
            before = self.snapshot()
            response = self.post(raw, sent)
            self.assert_refused(response, before, status=403, reason=f"{self.key_setting} is not configured")

    def test_other_methods_are_405_before_anything_is_read(self):
        raw = self.body()
        headers = self.sign(raw, self.signer)
        before = self.snapshot()
        assert self.client.get(self.path, **headers).status_code == 405
        assert self.client.put(self.path, raw, content_type=self.content_type, **headers).status_code == 405
        assert self.snapshot() == before  # not even a rejection: the method is refused before the body is read

    def test_a_signed_but_malformed_body_is_400_with_its_reason(self):
        assert self.malformed
        for raw, reason in self.malformed:
            before = self.snapshot()
            response = self.post(raw, self.sign(raw, self.signer))
            self.assert_refused(response, before, status=400, reason=reason)
            assert response.json() == {"error": reason}

    def test_a_duplicate_delivery_is_200_and_changes_nothing(self):
        raw = self.body()
        headers = self.sign(raw, self.signer)
        before = self.snapshot()
        after_first = self.assert_accepted(self.post(raw, headers), before)
        response = self.post(raw, headers)
        assert response.status_code == 200
        assert self.snapshot() == after_first
        assert WebhookEvent.objects.get().deliveries == 2


class TimestampedContract(SignedWebhookContract):
    """Providers that sign a timestamp: a request older (or newer) than the tolerance is a replay."""

    tolerance_setting: str
    timestamp_header: str  # as in request.META

    def test_a_stale_or_future_timestamp_is_refused(self):
        tolerance = getattr(self.settings, self.tolerance_setting)
        with time_machine.travel(NOON, tick=False) as clock:
            raw = self.body()
            headers = self.sign(raw, self.signer)  # signed at noon
            clock.shift(timedelta(seconds=tolerance + 1))  # replayed just after the window closed
            before = self.snapshot()
            self.assert_refused(self.post(raw, headers), before, status=403, reason="timestamp outside")

            ahead = self.body()
            ahead_headers = self.sign(ahead, self.signer)  # "signed" past the window, seen at noon
            clock.move_to(NOON)
            before = self.snapshot()
            self.assert_refused(self.post(ahead, ahead_headers), before, status=403, reason="timestamp outside")

            clock.shift(timedelta(seconds=tolerance))  # the noon request at the window's edge: still accepted
            before = self.snapshot()
            self.assert_accepted(self.post(raw, headers), before)

    def test_a_timestamp_that_is_not_a_unix_time_is_refused_not_a_500(self):
        """``str.isdigit`` says yes to "²" and to a 5,000-digit number, which ``int`` or the clock arithmetic
        refuse: each must be a 403 like any forgery (a WSGI server hands header bytes over as Latin-1)."""
        raw = self.body()
        for timestamp in ["\xb2", "\u0661\u0662", "1e3", "-1", "9" * 400, "9" * 5000]:
            headers = {**self.sign(raw, self.signer), self.timestamp_header: timestamp}
            before = self.snapshot()
            self.assert_refused(self.post(raw, headers), before, status=403, reason="timestamp outside")


def messaging_effects() -> dict:
    return {
        "texts_in": Message.objects.filter(direction=Message.Direction.INBOUND).count(),
        "texts_out": Message.objects.filter(direction=Message.Direction.OUTBOUND).count(),
    }


# --- Telnyx: Ed25519 over "timestamp|body" ------------------------------------------------------------------------


class TestTelnyxContract(TimestampedContract):
    provider = "telnyx"
    path = "/webhooks/telnyx/messages"
    key_setting = "TELNYX_PUBLIC_KEY"
    tolerance_setting = "TELNYX_WEBHOOK_TOLERANCE"
    timestamp_header = "HTTP_TELNYX_TIMESTAMP"
    signature_header = "HTTP_TELNYX_SIGNATURE_ED25519"
    missing_reason = "missing signature headers"
    malformed = [
        (b"not json", "not JSON (JSONDecodeError)"),
        (b"{}", "not a Telnyx event envelope (no data object)"),
        (b'{"data": {"id": "x"}}', "data.payload must be an object"),
        (b'{"data": {"id": 1, "event_type": "a", "payload": []}}', "data.payload must be an object"),
        (b'{"data": {"event_type": "message.received", "payload": {}}}', "data.id is missing"),
    ]

    def first_key(self):
        return TELNYX_KEY, TELNYX_PUBLIC

    def new_key(self):
        key = SigningKey.generate()
        return key, base64.b64encode(bytes(key.verify_key)).decode()

    def world(self, request):
        clinic = make_clinic("glow", name="Glow")
        PhoneNumber.objects.create(clinic=clinic, number="+17735550002", provider="telnyx")  # the example's "to"

    def body(self):
        event = example("telnyx/message_received_sms.json")
        event["data"]["id"] = str(uuid.uuid4())
        event["data"]["payload"]["id"] = str(uuid.uuid4())
        return json.dumps(event).encode()

    def sign(self, raw, signer):
        return telnyx_headers(raw, key=signer)

    def forge(self, raw):
        return raw.replace(b"Hello from Telnyx!", b"STOP")

    def effects(self):
        return messaging_effects()


# --- Twilio: X-Twilio-Signature over the URL and the form (HMAC-SHA1 auth token, or HMAC-SHA256 shared key) -------


class TestTwilioContract(SignedWebhookContract):
    provider = "twilio"
    path = "/webhooks/twilio/messages"
    key_setting = "TWILIO_AUTH_TOKEN"
    algorithm = None  # HMAC-SHA1
    content_type = "application/x-www-form-urlencoded"
    signature_header = "HTTP_X_TWILIO_SIGNATURE"
    missing_reason = "missing X-Twilio-Signature"
    malformed = [
        (urlencode({"From": "+16175550123", "To": "+15558675310", "Body": "hi"}).encode(), "MessageSid is missing"),
        (urlencode({"MessageSid": "SM" + "0" * 70}).encode(), "MessageSid is longer than 64 characters"),
        (urlencode({"MessageSid": "SM1", "To": "+1" + "5" * 20}).encode(), "To is longer than 16 characters"),
    ]

    def first_key(self):
        return TWILIO_TOKEN, TWILIO_TOKEN

    def new_key(self):
        token = uuid.uuid4().hex
        return token, token

    def world(self, request):
        clinic = make_clinic("glow", name="Glow")
        PhoneNumber.objects.create(clinic=clinic, number="+15558675310", provider="twilio")  # the example's "To"

    def body(self):
        params = example("twilio/inbound_sms_docs_parameter_examples.json")["params"]
        return urlencode({**params, "MessageSid": "SM" + uuid.uuid4().hex}).encode()

    def sign(self, raw, signer):
        params = QueryDict(raw.decode())
        return {self.signature_header: twilio_signature(BASE + self.path, params, signer, self.algorithm)}

    def forge(self, raw):
        return raw.replace(b"Body=Ahoy", b"Body=STOP")

    def effects(self):
        return messaging_effects()


class TestTwilioSharedKeyContract(TestTwilioContract):
    """Announced by X-Twilio-Webhooks-Signature-Settings; the auth token stays configured and must not stand in."""

    key_setting = "TWILIO_WEBHOOK_SHARED_KEY"
    algorithm = "HMAC_SHA256"

    def first_key(self):
        return "twilio-shared-key-secret", "twilio-shared-key-secret"

    def world(self, request):
        self.settings.TWILIO_AUTH_TOKEN = TWILIO_TOKEN
        super().world(request)

    def sign(self, raw, signer):
        settings_header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
        return {**super().sign(raw, signer), "HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS": settings_header}


# --- Square: HMAC-SHA256 over the notification URL and the body ---------------------------------------------------


class TestSquareContract(SignedWebhookContract):
    provider = "square"
    path = "/webhooks/square"
    key_setting = "SQUARE_WEBHOOK_SIGNATURE_KEY"
    signature_header = "HTTP_X_SQUARE_HMACSHA256_SIGNATURE"
    missing_reason = "missing x-square-hmacsha256-signature"
    malformed = [
        (b"not json", "not JSON (JSONDecodeError)"),
        (b"[]", "not a Square event (not an object)"),
        (b'{"type": "payment.updated"}', "event_id is missing"),
        (b'{"type": "payment.updated", "event_id": "evt-1", "data": {}}', "data.object is required"),
    ]

    def first_key(self):
        return "sq-signature-key-test", "sq-signature-key-test"

    def new_key(self):
        key = "sq-" + uuid.uuid4().hex
        return key, key

    def world(self, request):
        self.settings.SQUARE_WEBHOOK_URL = BASE + self.path
        demo = request.getfixturevalue("demo")
        request.getfixturevalue("fake_square")
        booking = booking_hold(
            clinic=demo,
            service=Service.objects.get(clinic=demo, name="Botox"),
            provider=Practitioner.objects.get(clinic=demo, name="Dr. Sarah Smith"),
            start=datetime(2026, 11, 24, 11, tzinfo=demo.tz),
            patient_phone="+16175550123",
            patient_name="Jane Doe",
        )
        self.payment = payments.deposit_request(booking_id=booking.pk)

    def body(self):
        event = example("square/payment_updated_completed.json")
        event["event_id"] = str(uuid.uuid4())
        paid = event["data"]["object"]["payment"]
        paid["order_id"] = self.payment.order_id
        paid["amount_money"]["amount"] = self.payment.amount_cents
        return json.dumps(event).encode()

    def sign(self, raw, signer):
        signature = square_sign(body=raw, signature_key=signer, notification_url=self.settings.SQUARE_WEBHOOK_URL)
        return {self.signature_header: signature}

    def forge(self, raw):
        return raw.replace(b'"merchant_id": "6SSW7HV8K2ST5"', b'"merchant_id": "ATTACKER"')

    def effects(self):
        payment = Payment.objects.get(pk=self.payment.pk)
        return {
            "payment": (payment.status, payment.paid_cents, payment.payment_id),
            "booking": Booking.objects.get(pk=payment.booking_id).status,
            "outbox": OutboxItem.objects.count(),
        }
