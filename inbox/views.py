"""The webhook base view: one for every provider endpoint (Telnyx, Twilio, Square).

Each request: bound the body -> verify the signature on the raw body (constant time; a key list allows rotation)
-> parse into normalised events (cleaned: no NUL, no lone surrogate, bounded depth and ids) -> record each once in
the inbox -> 200. Every refusal is recorded (``WebhookRejection``, no body kept) and answered with its reason:
forged, stale or unsigned 403; too large 413; signed but unreadable 400. Unknown event types: 200 (so the provider
stops retrying), counted. A duplicate: 200, nothing changes; a redelivery of an unprocessed event queues it again.
"""

import json
import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.http import HttpResponse, JsonResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from medspa.http import client_ip

from . import services
from .clean import TooDeep, clean_payload
from .metrics import WEBHOOKS
from .models import WebhookRejection
from .services import NormalisedEvent

logger = logging.getLogger(__name__)


class WebhookForbidden(Exception):
    """Signature missing, wrong or stale."""


class WebhookMalformed(Exception):
    """Signed correctly but not a body we can read."""


class WebhookTooLarge(WebhookMalformed):
    """Larger than any event a provider sends."""


def secret_list(setting_value: str) -> list[str]:
    """A secret setting as a list: comma-separated values let an old and a new key both verify during rotation."""
    return [k.strip() for k in (setting_value or "").split(",") if k.strip()]


def load_json(body: bytes):
    """A JSON body, cleaned and bounded, or WebhookMalformed with the reason."""
    try:
        return clean_payload(json.loads(body))
    except RecursionError:
        raise WebhookMalformed("JSON nested too deeply") from None
    except TooDeep as exc:
        raise WebhookMalformed(f"JSON {exc}") from None
    except (ValueError, TypeError) as exc:  # includes UnicodeDecodeError
        raise WebhookMalformed(f"not JSON ({type(exc).__name__})") from None


@method_decorator(csrf_exempt, name="dispatch")
class WebhookView(View):
    provider = ""
    http_method_names = ["post"]
    handled_types: set[str] = set()

    def post(self, request):
        try:
            self.check_size(request)
            self.verify(request)
        except WebhookTooLarge as exc:
            return self._reject(request, str(exc), status=413)
        except WebhookForbidden as exc:
            return self._reject(request, str(exc), status=403)
        except (RequestDataTooBig, TooManyFieldsSent) as exc:
            return self._reject(request, f"form refused ({type(exc).__name__})", status=400)
        try:
            events = self.parse(request)
        except (WebhookMalformed, RequestDataTooBig, TooManyFieldsSent) as exc:
            return self._reject(request, str(exc) or type(exc).__name__, status=400)
        for event in events:
            if event.event_type not in self.handled_types:
                logger.info("webhook ignored provider=%s type=%s", self.provider, event.event_type[:60])
                WEBHOOKS.labels(self.provider, "ignored_type").inc()
                continue
            WEBHOOKS.labels(self.provider, self.record(event)).inc()
        return self.acknowledge()

    def check_size(self, request):
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit or len(request.body) > limit:
            raise WebhookTooLarge(f"body larger than {limit} bytes")

    def record(self, event: NormalisedEvent) -> str:
        return services.event_record(provider=self.provider, event=event)

    def _reject(self, request, reason, *, status):
        WebhookRejection.objects.create(
            provider=self.provider,
            path=request.path[:200],
            status_code=status,
            reason=reason[:200],
            ip_address=client_ip(request),
        )
        WEBHOOKS.labels(self.provider, "forbidden" if status == 403 else "malformed").inc()
        logger.warning("webhook rejected provider=%s status=%s reason=%s", self.provider, status, reason[:200])
        return JsonResponse({"error": reason[:200]}, status=status)

    def acknowledge(self):
        return JsonResponse({"status": "ok"})

    def verify(self, request):
        raise NotImplementedError

    def parse(self, request) -> list[NormalisedEvent]:
        raise NotImplementedError


class FormWebhookView(WebhookView):
    """Form-encoded webhooks (Twilio): answered with empty TwiML."""

    def acknowledge(self):
        return HttpResponse('<?xml version="1.0" encoding="UTF-8"?><Response/>', content_type="text/xml")
