import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import BaseSmsBackend, OutboundSms, ProviderMessage, SendError, SendResult, reused_client

OPTED_OUT_CODES = {"21610"}  # "Attempt to send to unsubscribed recipient"
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TWILIO_API = "https://api.twilio.com"
# find_sent reads at most this many messages between the two numbers (newest first); reaching it: cannot tell.
LOOKUP_LIMIT = 1000
LOOKUP_PAGE_SIZE = 200


class _BaseUrlHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to TWILIO_BASE_URL (a sandbox or test fake) instead of api.twilio.com."""

    def request(self, method, url, *args, **kwargs):
        if settings.TWILIO_BASE_URL and url.startswith(TWILIO_API):
            url = settings.TWILIO_BASE_URL.rstrip("/") + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


def client() -> Client:
    """The first of TWILIO_AUTH_TOKEN's comma-separated tokens is the current one; the others only still verify
    webhooks while a rotation is under way."""
    sid, token = settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN.split(",")[0].strip()
    return reused_client(("twilio", sid, token), lambda: Client(sid, token, http_client=_BaseUrlHttpClient(timeout=10)))


class TwilioBackend(BaseSmsBackend):
    """Twilio Programmable Messaging through the official SDK."""

    name = "twilio"

    def send(self, sms: OutboundSms) -> SendResult:
        params = {
            "to": sms.to_number,
            "body": sms.body,
            "status_callback": f"{settings.PUBLIC_BASE_URL}/webhooks/twilio/status",
        }
        if sms.messaging_service_sid:
            params["messaging_service_sid"] = sms.messaging_service_sid
        else:
            params["from_"] = sms.from_number
        if sms.media_urls:
            params["media_url"] = list(sms.media_urls)
        try:
            message = client().messages.create(**params)
        except requests.Timeout as exc:
            raise SendError(f"timeout: {exc}", transient=True, may_have_sent=True) from exc
        except requests.ConnectionError as exc:
            raise SendError(f"connection failed: {exc}", transient=True) from exc
        except TwilioRestException as exc:
            code = str(exc.code or exc.status)
            if code in OPTED_OUT_CODES:
                raise SendError(exc.msg, code=code, opted_out=True) from exc
            raise SendError(
                f"HTTP {exc.status}: {exc.msg}", code=code, transient=exc.status in TRANSIENT_STATUS
            ) from exc
        return SendResult(provider_message_id=message.sid, status=message.status or "queued")

    def fetch_status(self, provider_message_id: str) -> str | None:
        """``client.messages(sid).fetch()``: the message's ``status``; 404 (unknown sid) is None."""
        try:
            message = client().messages(provider_message_id).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise _lookup_error(exc) from exc
        except requests.RequestException as exc:
            raise SendError(f"status lookup failed: {type(exc).__name__}", transient=True) from exc
        return str(message.status) if message.status else None

    def find_sent(self, sms: OutboundSms, *, since) -> list[ProviderMessage] | None:
        """``client.messages.list(to=, from_=)``, newest first, kept if outbound and created at or after ``since``.

        No ``date_sent_after`` filter: a message Twilio still queues has no ``date_sent`` yet, so a DateSent filter
        could hide the very message we look for (and DateSent only has day precision). Sent through a Messaging
        Service, a queued message has no ``from`` yet either: then we list by recipient and keep the service's
        messages. The list is complete only when it ends before LOOKUP_LIMIT; otherwise None (cannot tell)."""
        params = {"to": sms.to_number}
        if not sms.messaging_service_sid:
            params["from_"] = sms.from_number
        try:
            messages = client().messages.list(**params, limit=LOOKUP_LIMIT, page_size=LOOKUP_PAGE_SIZE)
        except TwilioRestException as exc:
            raise _lookup_error(exc) from exc
        except requests.RequestException as exc:
            raise SendError(f"message search failed: {type(exc).__name__}", transient=True) from exc
        if len(messages) >= LOOKUP_LIMIT:
            return None
        found = []
        for message in messages:
            if not str(message.direction or "").startswith("outbound"):
                continue
            if sms.messaging_service_sid and message.messaging_service_sid != sms.messaging_service_sid:
                continue
            if message.date_created is not None and message.date_created < since:
                continue  # (an unreadable date is kept: it could be ours)
            found.append(
                ProviderMessage(
                    provider_message_id=message.sid,
                    status=str(message.status or ""),
                    body=message.body or "",
                    created_at=message.date_created,
                )
            )
        return found


def _lookup_error(exc: TwilioRestException) -> SendError:
    return SendError(
        f"HTTP {exc.status}: {exc.msg}", code=str(exc.code or exc.status), transient=exc.status in TRANSIENT_STATUS
    )
