"""Provider webhooks: one base view, a subclass per provider and endpoint.

Each request: verify the signature on the raw body (constant-time; a key list allows rotation) -> parse into
normalised events -> record each once under (provider, event id) -> enqueue its processing after commit -> 200.
Forged, stale or unsigned: 403 and a ``WebhookRejection`` row (no body kept). Malformed: 400 with the reason.
Unknown event types: 200 (so the provider stops retrying), logged and counted. A duplicate: 200, nothing changes.
"""

import base64
import binascii
import json
import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from twilio.request_validator import RequestValidator

from medspa.http import client_ip

from . import services
from .metrics import WEBHOOKS
from .models import Provider, WebhookEvent, WebhookRejection

logger = logging.getLogger(__name__)


class WebhookForbidden(Exception):
    """Signature missing, wrong or stale."""


class WebhookMalformed(Exception):
    """Signed correctly but not a body we can read."""


@dataclass
class NormalisedEvent:
    event_id: str
    event_type: str
    payload: dict = field(default_factory=dict)
    clinic_number: str = ""  # our number the event concerns, to file the event under its clinic


def _keys(setting_value: str) -> list[str]:
    return [k.strip() for k in (setting_value or "").split(",") if k.strip()]


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    provider = ""
    http_method_names = ["post"]
    handled_types: set[str] = set()

    def post(self, request):
        try:
            self.verify(request)
        except WebhookForbidden as exc:
            return self._reject(request, str(exc), status=403)
        try:
            events = self.parse(request)
        except WebhookMalformed as exc:
            return self._reject(request, str(exc), status=400)
        for event in events:
            if event.event_type not in self.handled_types:
                logger.info("webhook ignored provider=%s type=%s", self.provider, event.event_type)
                WEBHOOKS.labels(self.provider, "ignored_type").inc()
                continue
            WEBHOOKS.labels(self.provider, "accepted" if self.record(event) else "duplicate").inc()
        return self.acknowledge()

    def record(self, event) -> bool:
        """Store the event once and hand it to a task after commit; False for a duplicate."""
        return webhook_event_record(self.provider, event)

    def _reject(self, request, reason, *, status):
        WebhookRejection.objects.create(
            provider=self.provider, path=request.path[:200], reason=reason[:200], ip_address=client_ip(request)
        )
        WEBHOOKS.labels(self.provider, "forbidden" if status == 403 else "malformed").inc()
        logger.warning("webhook rejected provider=%s status=%s reason=%s", self.provider, status, reason)
        return JsonResponse({"error": reason}, status=status)

    def acknowledge(self):
        return JsonResponse({"status": "ok"})

    def verify(self, request):
        raise NotImplementedError

    def parse(self, request) -> list[NormalisedEvent]:
        raise NotImplementedError


def webhook_event_record(provider: str, event: NormalisedEvent) -> bool:
    """Insert the event once; enqueue it after commit. False for a duplicate. Nothing else happens here, so the
    provider gets its 2xx fast: even routing to a clinic waits for the worker."""
    try:
        with transaction.atomic():
            row = WebhookEvent.objects.create(
                provider=provider,
                event_id=event.event_id,
                event_type=event.event_type,
                our_number=event.clinic_number[:16],
                payload=event.payload,
            )
            from .tasks import process_webhook_event

            transaction.on_commit(lambda: process_webhook_event.delay(row.pk))
    except IntegrityError:
        return False
    return True


# --- Telnyx -----------------------------------------------------------------------------------------------------


class TelnyxWebhookView(WebhookView):
    """Ed25519 over ``timestamp|raw body`` (headers telnyx-signature-ed25519, telnyx-timestamp), 300 s window."""

    provider = Provider.TELNYX

    def verify(self, request):
        keys = _keys(settings.TELNYX_PUBLIC_KEY)
        if not keys:
            raise WebhookForbidden("TELNYX_PUBLIC_KEY is not configured")
        signature = request.headers.get("telnyx-signature-ed25519", "")
        timestamp = request.headers.get("telnyx-timestamp", "")
        if not signature or not timestamp:
            raise WebhookForbidden("missing signature headers")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > settings.TELNYX_WEBHOOK_TOLERANCE:
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
        try:
            body = json.loads(request.body)
            data = body["data"]
            event_id, event_type, payload = str(data["id"]), str(data["event_type"]), data["payload"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookMalformed(f"not a Telnyx event envelope ({type(exc).__name__}: {exc})") from None
        if not isinstance(payload, dict):
            raise WebhookMalformed("data.payload must be an object")
        return [NormalisedEvent(event_id, event_type, data, self.clinic_number(event_type, payload))]

    def clinic_number(self, event_type, payload):
        return ""


class TelnyxMessagesWebhook(TelnyxWebhookView):
    handled_types = {"message.received", "message.sent", "message.finalized"}

    def clinic_number(self, event_type, payload):
        if event_type == "message.received":
            to = payload.get("to") or [{}]
            return (to[0] or {}).get("phone_number", "") if isinstance(to, list) else ""
        return str((payload.get("from") or {}).get("phone_number", ""))


class TelnyxVoiceWebhook(TelnyxWebhookView):
    handled_types = {"call.initiated", "call.answered", "call.hangup"}

    def clinic_number(self, event_type, payload):
        return str(payload.get("to", ""))


# --- Twilio -----------------------------------------------------------------------------------------------------


class TwilioWebhookView(WebhookView):
    """HMAC-SHA1 of the public URL + sorted form parameters (X-Twilio-Signature), via the SDK's validator."""

    provider = Provider.TWILIO

    def verify(self, request):
        tokens = _keys(settings.TWILIO_AUTH_TOKEN)
        if not tokens:
            raise WebhookForbidden("TWILIO_AUTH_TOKEN is not configured")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature:
            raise WebhookForbidden("missing X-Twilio-Signature")
        # The URL Twilio called, built from our public base URL (never the Host header a client controls).
        url = settings.PUBLIC_BASE_URL + request.get_full_path()
        params = {key: request.POST.getlist(key)[-1] for key in request.POST}
        if not any(RequestValidator(token).validate(url, params, signature) for token in tokens):
            raise WebhookForbidden("signature does not match")

    def acknowledge(self):
        return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml")

    def field(self, request, name):
        value = request.POST.get(name, "").strip()
        if not value:
            raise WebhookMalformed(f"missing {name}")
        return value


class TwilioMessagesWebhook(TwilioWebhookView):
    handled_types = {"message.received"}

    def parse(self, request):
        sid = self.field(request, "MessageSid")
        payload = {key: request.POST.get(key) for key in request.POST}
        return [NormalisedEvent(sid, "message.received", payload, self.field(request, "To"))]


class TwilioStatusWebhook(TwilioWebhookView):
    handled_types = {"message.status"}

    def parse(self, request):
        sid, status = self.field(request, "MessageSid"), self.field(request, "MessageStatus")
        payload = {key: request.POST.get(key) for key in request.POST}
        return [NormalisedEvent(f"{sid}:{status}", "message.status", payload, request.POST.get("From", ""))]


class TwilioVoiceWebhook(TwilioWebhookView):
    handled_types = {"call.status"}

    def parse(self, request):
        sid = self.field(request, "CallSid")
        status = request.POST.get("DialCallStatus") or request.POST.get("CallStatus")
        if not status:
            raise WebhookMalformed("missing DialCallStatus or CallStatus")
        payload = {key: request.POST.get(key) for key in request.POST}
        return [NormalisedEvent(f"{sid}:{status}", "call.status", payload, request.POST.get("To", ""))]


# --- Processing (in the worker) ---------------------------------------------------------------------------------


def _telnyx_message_received(data):
    p = data["payload"]
    to = (p.get("to") or [{}])[0].get("phone_number", "")
    media = [{"url": m.get("url"), "content_type": m.get("content_type")} for m in p.get("media") or []]
    services.inbound_receive(
        provider=Provider.TELNYX,
        provider_message_id=str(p.get("id") or data["id"]),
        from_number=(p.get("from") or {}).get("phone_number", ""),
        to_number=to,
        body=p.get("text") or "",
        media=media,
    )


def _telnyx_message_status(data):
    p = data["payload"]
    to = (p.get("to") or [{}])[0]
    errors = p.get("errors") or [{}]
    services.message_status_update(
        provider=Provider.TELNYX,
        provider_message_id=str(p.get("id", "")),
        status=to.get("status", ""),
        error_code=str((errors[0] or {}).get("code", "")),
    )


def _telnyx_call_hangup(data):
    p = data["payload"]
    if p.get("direction") not in (None, "incoming") or p.get("hangup_cause") not in services.MISSED_TELNYX_CAUSES:
        return
    session = p.get("call_session_id")
    answered = WebhookEvent.objects.filter(
        provider=Provider.TELNYX, event_type="call.answered", payload__payload__call_session_id=session
    ).exists()
    if not answered:
        services.missed_call_receive(to_number=str(p.get("to", "")), from_number=str(p.get("from", "")))


def _twilio_message_received(p):
    count = int(p.get("NumMedia") or 0) if str(p.get("NumMedia") or "0").isdigit() else 0
    media = [{"url": p.get(f"MediaUrl{i}"), "content_type": p.get(f"MediaContentType{i}")} for i in range(count)]
    services.inbound_receive(
        provider=Provider.TWILIO,
        provider_message_id=p["MessageSid"],
        from_number=p.get("From", ""),
        to_number=p.get("To", ""),
        body=p.get("Body", ""),
        media=media,
    )


def _twilio_message_status(p):
    services.message_status_update(
        provider=Provider.TWILIO,
        provider_message_id=p["MessageSid"],
        status=p.get("MessageStatus", ""),
        error_code=str(p.get("ErrorCode") or ""),
    )


def _twilio_call_status(p):
    status = p.get("DialCallStatus") or p.get("CallStatus")
    if status in services.MISSED_TWILIO_STATUSES:
        services.missed_call_receive(to_number=p.get("To", ""), from_number=p.get("From", ""))


HANDLERS = {
    (Provider.TELNYX, "message.received"): _telnyx_message_received,
    (Provider.TELNYX, "message.sent"): _telnyx_message_status,
    (Provider.TELNYX, "message.finalized"): _telnyx_message_status,
    (Provider.TELNYX, "call.hangup"): _telnyx_call_hangup,
    (Provider.TWILIO, "message.received"): _twilio_message_received,
    (Provider.TWILIO, "message.status"): _twilio_message_status,
    (Provider.TWILIO, "call.status"): _twilio_call_status,
}


def webhook_event_process(*, event_id: int) -> str:
    """Run a recorded event's handler. Handlers are idempotent (unique message ids, forward-only statuses, one
    intro a day), so a second run after a crash changes nothing; the row says what happened."""
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.status != WebhookEvent.Status.PENDING:
        return "skipped"
    if event.our_number and event.clinic_id is None:
        number = services.phone_number_route(number=event.our_number)
        if number is not None:
            WebhookEvent.objects.filter(pk=event.pk).update(clinic=number.clinic)
    handler = HANDLERS.get((event.provider, event.event_type))
    if handler is None:  # recorded for correlation only (call.initiated, call.answered)
        outcome, error = WebhookEvent.Status.IGNORED, ""
    else:
        try:
            handler(event.payload)
            outcome, error = WebhookEvent.Status.PROCESSED, ""
        except Exception as exc:
            WebhookEvent.objects.filter(pk=event.pk).update(
                status=WebhookEvent.Status.FAILED, error=f"{type(exc).__name__}"[:300], processed_at=timezone.now()
            )
            logger.exception("webhook event failed event=%s type=%s", event.pk, event.event_type)
            raise
    WebhookEvent.objects.filter(pk=event.pk).update(status=outcome, error=error, processed_at=timezone.now())
    return outcome
