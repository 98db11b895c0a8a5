"""``POST /webhooks/square``: Square's payment and refund events, on the inbox's webhook base view.

Verified with ``x-square-hmacsha256-signature`` over SQUARE_WEBHOOK_URL + raw body (constant time; a comma-separated
key list allows rotation), recorded once in the inbox under Square's ``event_id`` and processed by its task through
the handler below (``payments.services.payment_event_apply``). Square signs no timestamp: replays are stopped by the
event id. The sandbox checkout records the same events under the provider ``sandbox``.
"""

from django.conf import settings

from inbox.clean import clean_id
from inbox.models import Provider as InboxProvider
from inbox.services import NormalisedEvent, handler
from inbox.views import WebhookForbidden, WebhookMalformed, WebhookView, load_json, secret_list

from . import services
from .backends.square import verify_signature
from .models import Provider

EVENT_TYPES = ("payment.created", "payment.updated", "refund.created", "refund.updated")


class SquareWebhook(WebhookView):
    provider = Provider.SQUARE
    handled_types = set(EVENT_TYPES)

    def verify(self, request):
        keys = secret_list(settings.SQUARE_WEBHOOK_SIGNATURE_KEY)
        if not keys:
            raise WebhookForbidden("SQUARE_WEBHOOK_SIGNATURE_KEY is not configured")
        signature = request.headers.get("x-square-hmacsha256-signature", "").strip()
        if not signature:
            raise WebhookForbidden("missing x-square-hmacsha256-signature")
        url = settings.SQUARE_WEBHOOK_URL
        if not any(
            verify_signature(body=request.body, signature=signature, signature_key=key, notification_url=url)
            for key in keys
        ):
            raise WebhookForbidden("signature does not match")

    def parse(self, request):
        body = load_json(request.body)
        if not isinstance(body, dict):
            raise WebhookMalformed("not a Square event (not an object)")
        try:
            event_id = clean_id(body.get("event_id"), name="event_id")
            event_type = clean_id(body.get("type"), name="type", max_length=60)
        except ValueError as exc:
            raise WebhookMalformed(str(exc)) from None
        data = body.get("data")
        handled = event_type in self.handled_types  # others (webhooks.test_notification...) are a counted 200
        if handled and (not isinstance(data, dict) or not isinstance(data.get("object"), dict)):
            raise WebhookMalformed("data.object is required")
        return [NormalisedEvent(event_id, event_type, body)]


@handler(InboxProvider.SQUARE, *EVENT_TYPES)
@handler(InboxProvider.SANDBOX, *EVENT_TYPES)
def payment_event(event):
    data = (event.payload.get("data") or {}).get("object") or {}
    return services.payment_event_apply(provider=event.provider, event_type=event.event_type, data=data)
