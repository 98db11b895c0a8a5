"""SMS provider backends, chosen by settings like Django's e-mail backends.

``get_sms_backend(provider)`` returns the backend for a number's provider (``telnyx`` or ``twilio``), unless
``SMS_BACKEND`` names one backend for everything (``console`` in development, ``locmem`` in tests).
Every backend turns its transport and API errors into ``SendError`` with ``transient`` / ``opted_out`` /
``may_have_sent`` set, so the sending code has one place to decide between retry, opt-out and failure.
"""

from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string

BACKENDS = {
    "telnyx": "messaging.backends.telnyx.TelnyxBackend",
    "twilio": "messaging.backends.twilio.TwilioBackend",
    "console": "messaging.backends.console.ConsoleBackend",
    "locmem": "messaging.backends.locmem.LocmemBackend",
}


@dataclass(frozen=True)
class OutboundSms:
    from_number: str
    to_number: str
    body: str
    idempotency_key: str
    media_urls: list = field(default_factory=list)
    messaging_profile_id: str = ""
    messaging_service_sid: str = ""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    status: str = "sent"


class SendError(Exception):
    """A send that did not succeed. ``transient``: worth retrying (timeouts, 5xx, 429). ``opted_out``: the
    provider refuses because the recipient opted out (Telnyx 40300, Twilio 21610): record it, never retry.
    ``may_have_sent``: the request may have reached the provider (a read timeout): never resend blindly."""

    def __init__(self, detail, *, code="", transient=False, opted_out=False, may_have_sent=False):
        super().__init__(detail)
        self.detail, self.code = str(detail)[:300], str(code)[:20]
        self.transient, self.opted_out, self.may_have_sent = transient, opted_out, may_have_sent


class BaseSmsBackend:
    name = ""

    def send(self, sms: OutboundSms) -> SendResult:
        raise NotImplementedError


def get_sms_backend(provider: str = "") -> BaseSmsBackend:
    path = settings.SMS_BACKEND or BACKENDS.get(provider) or BACKENDS["console"]
    return import_string(BACKENDS.get(path, path))()
