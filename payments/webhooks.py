"""``POST /webhooks/square``: Square's payment and refund events, on the messaging webhooks' base view.

Verified with ``x-square-hmacsha256-signature`` over SQUARE_WEBHOOK_URL + raw body (constant time; a comma-separated
key list allows rotation), recorded once under Square's ``event_id`` and processed by a task after commit
(``payments.services.payment_event_process``). Square signs no timestamp: replays are stopped by the event id.
"""

import json

from django.conf import settings

from messaging.webhooks import NormalisedEvent, WebhookForbidden, WebhookMalformed, WebhookView, _keys

from . import services
from .backends.square import verify_signature
from .models import Provider


class SquareWebhook(WebhookView):
    provider = Provider.SQUARE
    handled_types = {"payment.created", "payment.updated", "refund.created", "refund.updated"}

    def verify(self, request):
        keys = _keys(settings.SQUARE_WEBHOOK_SIGNATURE_KEY)
        if not keys:
            raise WebhookForbidden("SQUARE_WEBHOOK_SIGNATURE_KEY is not configured")
        signature = request.headers.get("x-square-hmacsha256-signature", "")
        if not signature:
            raise WebhookForbidden("missing x-square-hmacsha256-signature")
        url = settings.SQUARE_WEBHOOK_URL
        if not any(
            verify_signature(body=request.body, signature=signature, signature_key=key, notification_url=url)
            for key in keys
        ):
            raise WebhookForbidden("signature does not match")

    def parse(self, request):
        try:
            body = json.loads(request.body)
            event_id, event_type, data = str(body["event_id"]), str(body["type"]), body["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise WebhookMalformed(f"not a Square event ({type(exc).__name__}: {exc})") from None
        if not event_id or not isinstance(data, dict) or not isinstance(data.get("object"), dict):
            raise WebhookMalformed("event_id and data.object are required")
        return [NormalisedEvent(event_id, event_type, body)]

    def record(self, event) -> bool:
        received = services.ReceivedEvent(self.provider, event.event_id, event.event_type, event.payload)
        return services.payment_event_record(received) is not None
