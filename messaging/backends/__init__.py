"""SMS provider backends, chosen by settings like Django's e-mail backends.

``get_sms_backend(provider)`` returns the backend for a number's provider (``telnyx`` or ``twilio``), unless
``SMS_BACKEND`` names one backend for everything (``console`` in development, ``locmem`` in tests).
Every backend turns its transport and API errors into ``SendError`` with ``transient`` / ``opted_out`` /
``may_have_sent`` set, so the sending code has one place to decide between retry, opt-out and failure.

Backends can also be asked what became of a text (``messaging.services.messages_reconcile``): ``fetch_status`` by
the provider's message id, and, where the provider can search, ``find_sent`` for a text whose id we never learnt.
"""

import os
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime

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


@dataclass(frozen=True)
class ProviderMessage:
    """An outbound message as the provider holds it (found by ``find_sent``). ``body`` is compared in memory with
    ours, never logged."""

    provider_message_id: str
    status: str  # the provider's own word (Telnyx to[0].status, Twilio status), mapped by services.DELIVERY_STATUS
    body: str = ""
    created_at: datetime | None = None


class BaseSmsBackend:
    name = ""

    def send(self, sms: OutboundSms) -> SendResult:
        raise NotImplementedError

    def fetch_status(self, provider_message_id: str) -> str | None:
        """The provider's status word for a message it accepted under this id, or None when it cannot tell (an id
        it does not know, or no longer keeps). None never means "not sent": we hold the id, so it was accepted.
        Transport and API errors raise SendError."""
        return None

    def find_sent(self, sms: OutboundSms, *, since: datetime) -> list[ProviderMessage] | None:
        """Every outbound message the provider holds from ``sms``'s sender to its recipient created at or after
        ``since``, complete, or None when the provider cannot list them completely (no search API, too many to
        list). An empty list is the provider saying it has no such message. Errors raise SendError."""
        return None


_clients: dict = {}
_clients_lock = threading.Lock()


def reused_client(key: Hashable, build: Callable):
    """One SDK client per process and ``key`` (the settings it is built from), built on first use.

    Building a provider's client costs more than a send (the Telnyx SDK's ``httpx.Client`` loads the CA bundle,
    about 16 ms); one client also keeps its connections alive between sends. The process id is part of the key
    so that a Celery prefork child never uses a client (and its sockets) inherited from its parent, and the
    settings are so that a changed key or base URL (a rotation, a test) gets a new client."""
    key = (os.getpid(), key)
    found = _clients.get(key)
    if found is None:
        with _clients_lock:
            found = _clients.get(key)
            if found is None:
                found = _clients[key] = build()
    return found


def get_sms_backend(provider: str = "") -> BaseSmsBackend:
    path = settings.SMS_BACKEND or BACKENDS.get(provider) or BACKENDS["console"]
    return import_string(BACKENDS.get(path, path))()
