import requests
from django.conf import settings
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from . import BaseSmsBackend, OutboundSms, SendError, SendResult

OPTED_OUT_CODES = {"21610"}  # "Attempt to send to unsubscribed recipient"
TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}
TWILIO_API = "https://api.twilio.com"


class _BaseUrlHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to TWILIO_BASE_URL (a sandbox or test fake) instead of api.twilio.com."""

    def request(self, method, url, *args, **kwargs):
        if settings.TWILIO_BASE_URL and url.startswith(TWILIO_API):
            url = settings.TWILIO_BASE_URL.rstrip("/") + url[len(TWILIO_API) :]
        return super().request(method, url, *args, **kwargs)


def client() -> Client:
    """The first of TWILIO_AUTH_TOKEN's comma-separated tokens is the current one; the others only still verify
    webhooks while a rotation is under way."""
    token = settings.TWILIO_AUTH_TOKEN.split(",")[0].strip()
    return Client(settings.TWILIO_ACCOUNT_SID, token, http_client=_BaseUrlHttpClient(timeout=10))


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
