"""Telnyx and Twilio webhooks: how each provider signs and shapes its events, and what each event does.

The views (one per endpoint, on the inbox's base view) verify and parse; the handlers, registered with the inbox,
run in the worker. Parsing accepts every shape the providers document or are seen to send (Telnyx ``to`` as a
list or a string, ``from`` as an object or a string, ``media`` absent, null or empty); the published examples
these are tested against are in tests/data/providers/ with their sources.
"""

import base64
import binascii
import logging
import time

from django.conf import settings
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from twilio.request_validator import (
    HMAC_SHA1,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)

from inbox.clean import clean_id, clean_text
from inbox.models import Provider as InboxProvider
from inbox.models import WebhookEvent
from inbox.services import NormalisedEvent, Outcome, handler
from inbox.views import FormWebhookView, WebhookForbidden, WebhookMalformed, WebhookView, load_json, secret_list

from . import services
from .compliance import Intent, classify
from .models import Provider

logger = logging.getLogger(__name__)

MAX_TEXT = 1600  # carriers deliver at most 10 concatenated parts; anything longer is cut before the engine sees it


def first_number(value) -> str:
    """A phone number from any of the shapes Telnyx uses: "+1...", {"phone_number": ...}, or a list of either."""
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("phone_number") or ""
    return clean_text(str(value or "")).strip()[:32]


# --- Telnyx -----------------------------------------------------------------------------------------------------


class TelnyxWebhookView(WebhookView):
    """Ed25519 over ``timestamp|raw body`` (headers telnyx-signature-ed25519, telnyx-timestamp), 300 s window."""

    provider = Provider.TELNYX

    def verify(self, request):
        keys = secret_list(settings.TELNYX_PUBLIC_KEY)
        if not keys:
            raise WebhookForbidden("TELNYX_PUBLIC_KEY is not configured")
        # Proxies and some HTTP stacks leave a trailing newline or spaces; the official SDK's verifier accepts them.
        signature = request.headers.get("telnyx-signature-ed25519", "").strip()
        timestamp = request.headers.get("telnyx-timestamp", "").strip()
        if not signature or not timestamp:
            raise WebhookForbidden("missing signature headers")
        # ASCII digits, no longer than a Unix time: str.isdigit() also passes "²" (int() refuses it) and numbers too
        # long for int() or the float arithmetic, which would answer 500.
        unix_time = timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
        if not unix_time or abs(time.time() - int(timestamp)) > settings.TELNYX_WEBHOOK_TOLERANCE:
            raise WebhookForbidden("timestamp outside the allowed window")
        try:
            signature_bytes = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            raise WebhookForbidden("signature is not base64") from None
        signed = timestamp.encode() + b"|" + request.body
        for key in keys:
            try:
                VerifyKey(base64.b64decode(key)).verify(signed, signature_bytes)
                return
            except (BadSignatureError, ValueError, binascii.Error):
                continue
        raise WebhookForbidden("signature does not match")

    def parse(self, request):
        body = load_json(request.body)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            raise WebhookMalformed("not a Telnyx event envelope (no data object)")
        payload = data.get("payload")
        if not isinstance(payload, dict):
            raise WebhookMalformed("data.payload must be an object")
        try:
            event_id = clean_id(data.get("id"), name="data.id")
            event_type = clean_id(data.get("event_type"), name="data.event_type", max_length=60)
        except ValueError as exc:
            raise WebhookMalformed(str(exc)) from None
        return [NormalisedEvent(event_id, event_type, data, self.clinic_number(event_type, payload)[:16])]

    def clinic_number(self, event_type, payload):
        return ""


class TelnyxMessagesWebhook(TelnyxWebhookView):
    handled_types = {"message.received", "message.sent", "message.finalized"}

    def clinic_number(self, event_type, payload):
        return first_number(payload.get("to") if event_type == "message.received" else payload.get("from"))


class TelnyxVoiceWebhook(TelnyxWebhookView):
    handled_types = {"call.initiated", "call.answered", "call.hangup"}

    def clinic_number(self, event_type, payload):
        return first_number(payload.get("to"))


# --- Twilio -----------------------------------------------------------------------------------------------------


class TwilioWebhookView(FormWebhookView):
    """X-Twilio-Signature, checked with the official SDK's validator over the public URL and the full multi-value
    form: HMAC-SHA1 with the account's auth token, or, when Twilio announces a shared key in
    X-Twilio-Webhooks-Signature-Settings, HMAC-SHA256 with that key (TWILIO_WEBHOOK_SHARED_KEY)."""

    provider = Provider.TWILIO

    def verify(self, request):
        algorithm = get_signature_algorithm(request.headers.get(SIGNATURE_SETTINGS_HEADER, ""))
        setting = "TWILIO_AUTH_TOKEN" if algorithm == HMAC_SHA1 else "TWILIO_WEBHOOK_SHARED_KEY"
        secrets = secret_list(getattr(settings, setting))
        if not secrets:
            raise WebhookForbidden(f"{setting} is not configured ({algorithm} signature)")
        signature = request.headers.get("X-Twilio-Signature", "").strip()
        if not signature:
            raise WebhookForbidden("missing X-Twilio-Signature")
        # The URL Twilio called, built from our public base URL (never the Host header a client controls).
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
        if not any(RequestValidator(s).validate(url, request.POST, signature, algorithm) for s in secrets):
            raise WebhookForbidden("signature does not match")

    def form(self, request) -> dict:
        """The form as stored: one value per field (the last, as Django's QueryDict gives), cleaned."""
        return {clean_text(key): clean_text(request.POST.get(key, "")) for key in request.POST}

    def field(self, form, name, *, max_length=64):
        try:
            return clean_id(form.get(name), name=name, max_length=max_length)
        except ValueError as exc:
            raise WebhookMalformed(str(exc)) from None


class TwilioMessagesWebhook(TwilioWebhookView):
    handled_types = {"message.received"}

    def parse(self, request):
        form = self.form(request)
        sid = self.field(form, "MessageSid")
        return [NormalisedEvent(sid, "message.received", form, self.field(form, "To", max_length=16))]


class TwilioStatusWebhook(TwilioWebhookView):
    handled_types = {"message.status"}

    def parse(self, request):
        form = self.form(request)
        sid, status = self.field(form, "MessageSid"), self.field(form, "MessageStatus", max_length=30)
        return [NormalisedEvent(f"{sid}:{status}", "message.status", form, form.get("From", "")[:16])]


class TwilioVoiceWebhook(TwilioWebhookView):
    handled_types = {"call.status"}

    def parse(self, request):
        form = self.form(request)
        sid = self.field(form, "CallSid")
        status = form.get("DialCallStatus") or form.get("CallStatus")
        if not status:
            raise WebhookMalformed("missing DialCallStatus or CallStatus")
        status = self.field({"status": status}, "status", max_length=30)
        return [NormalisedEvent(f"{sid}:{status}", "call.status", form, form.get("To", "")[:16])]


# --- Processing (in the worker, through the inbox) ----------------------------------------------------------------


def route_by_number(event: WebhookEvent) -> int | None:
    """The clinic an event belongs to: the owner of our number it concerns."""
    number = services.phone_number_route(number=event.our_number) if event.our_number else None
    return number.clinic_id if number else None


def is_keyword(text) -> bool:
    """STOP, START, HELP and their kin: answered from the priority queue (classified in the web process, a pure
    function of the text)."""
    return classify(str(text or "")[:MAX_TEXT]).intent != Intent.NONE


def _received(message) -> Outcome:
    if message is None:
        return Outcome(WebhookEvent.Status.IGNORED, "duplicate text, or sent to a number that is not ours")
    return Outcome(reason="text received", subject=message)


def _telnyx_media(payload) -> list:
    media = payload.get("media")
    if not isinstance(media, list):
        return []
    return [
        {"url": m.get("url"), "content_type": m.get("content_type")}
        for m in media
        if isinstance(m, dict) and m.get("url")
    ]


@handler(
    InboxProvider.TELNYX,
    "message.received",
    route=route_by_number,
    urgent=lambda payload: is_keyword((payload.get("payload") or {}).get("text")),
)
def telnyx_message_received(event):
    p = event.payload["payload"]
    try:
        message_id = clean_id(p.get("id") or event.event_id, name="payload.id")
    except ValueError:
        message_id = event.event_id
    return _received(
        services.inbound_receive(
            provider=Provider.TELNYX,
            provider_message_id=message_id,
            from_number=first_number(p.get("from")),
            to_number=first_number(p.get("to")),
            body=str(p.get("text") or "")[:MAX_TEXT],
            media=_telnyx_media(p),
        )
    )


@handler(InboxProvider.TELNYX, "message.sent", "message.finalized", route=route_by_number)
def telnyx_message_status(event):
    p = event.payload["payload"]
    to = p.get("to")
    recipient = (to[0] if isinstance(to, list) and to else to) or {}
    status = recipient.get("status", "") if isinstance(recipient, dict) else ""
    errors = p.get("errors") if isinstance(p.get("errors"), list) else []
    first_error = errors[0] if errors and isinstance(errors[0], dict) else {}
    updated = services.message_status_update(
        provider=Provider.TELNYX,
        provider_message_id=str(p.get("id") or ""),
        status=str(status or ""),
        error_code=str(first_error.get("code") or ""),
    )
    return _status_outcome(updated, status)


def _status_outcome(updated, status) -> Outcome:
    if updated:
        return Outcome(reason=f"delivery status {status}"[:200])
    return Outcome(WebhookEvent.Status.IGNORED, f"status {status or '(none)'} for no message of ours, or not newer")


@handler(InboxProvider.TELNYX, "call.hangup", route=route_by_number, urgent=True)
def telnyx_call_hangup(event):
    p = event.payload["payload"]
    if p.get("direction") not in (None, "incoming") or p.get("hangup_cause") not in services.MISSED_TELNYX_CAUSES:
        return Outcome(WebhookEvent.Status.IGNORED, "answered, outgoing or not a missed call")
    session = p.get("call_session_id")
    answered = (
        session
        and WebhookEvent.objects.filter(
            provider=InboxProvider.TELNYX, event_type="call.answered", payload__payload__call_session_id=session
        ).exists()
    )
    if answered:
        return Outcome(WebhookEvent.Status.IGNORED, "the call was answered")
    sent = services.missed_call_receive(to_number=first_number(p.get("to")), from_number=first_number(p.get("from")))
    return Outcome(reason="missed call: intro queued" if sent else "missed call: no intro (sent today or not ours)")


@handler(
    InboxProvider.TWILIO,
    "message.received",
    route=route_by_number,
    urgent=lambda payload: is_keyword(payload.get("Body")),
)
def twilio_message_received(event):
    p = event.payload
    count = int(p["NumMedia"]) if str(p.get("NumMedia") or "").isdigit() else 0
    media = [
        {"url": p.get(f"MediaUrl{i}"), "content_type": p.get(f"MediaContentType{i}")}
        for i in range(min(count, 10))
        if p.get(f"MediaUrl{i}")
    ]
    return _received(
        services.inbound_receive(
            provider=Provider.TWILIO,
            provider_message_id=p["MessageSid"],
            from_number=p.get("From", ""),
            to_number=p.get("To", ""),
            body=(p.get("Body") or "")[:MAX_TEXT],
            media=media,
        )
    )


@handler(InboxProvider.TWILIO, "message.status", route=route_by_number)
def twilio_message_status(event):
    p = event.payload
    status = p.get("MessageStatus", "")
    updated = services.message_status_update(
        provider=Provider.TWILIO,
        provider_message_id=p["MessageSid"],
        status=status,
        error_code=str(p.get("ErrorCode") or ""),
    )
    return _status_outcome(updated, status)


@handler(InboxProvider.TWILIO, "call.status", route=route_by_number, urgent=True)
def twilio_call_status(event):
    p = event.payload
    status = p.get("DialCallStatus") or p.get("CallStatus")
    if status not in services.MISSED_TWILIO_STATUSES:
        return Outcome(WebhookEvent.Status.IGNORED, f"call {status}: not a missed call")
    sent = services.missed_call_receive(to_number=p.get("To", ""), from_number=p.get("From", ""))
    return Outcome(reason="missed call: intro queued" if sent else "missed call: no intro (sent today or not ours)")
