import telnyx
from django.conf import settings

from . import BaseSmsBackend, OutboundSms, ProviderMessage, SendError, SendResult, reused_client

OPTED_OUT_CODES = {"40300"}  # "Blocked due to STOP message"
TRANSIENT_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def client() -> telnyx.Telnyx:
    """The process's Telnyx client for the current settings. Our own retry logic (sending with backoff from the
    database) decides; the SDK does not retry by itself."""
    api_key, base_url = settings.TELNYX_API_KEY, settings.TELNYX_BASE_URL or None
    return reused_client(
        ("telnyx", api_key, base_url),
        lambda: telnyx.Telnyx(api_key=api_key, base_url=base_url, max_retries=0, timeout=10.0),
    )


def _error_code(exc: telnyx.APIStatusError) -> tuple[str, str]:
    body = exc.body if isinstance(exc.body, dict) else {}
    errors = body.get("errors") or [{}]
    first = errors[0] if isinstance(errors[0], dict) else {}
    return str(first.get("code", "")), str(first.get("detail") or first.get("title") or exc.message)


class TelnyxBackend(BaseSmsBackend):
    """Telnyx Messaging API through the official SDK (``POST {TELNYX_BASE_URL}/messages``)."""

    name = "telnyx"

    def send(self, sms: OutboundSms) -> SendResult:
        params = {
            "from_": sms.from_number,
            "to": sms.to_number,
            "text": sms.body,
            "webhook_url": f"{settings.PUBLIC_BASE_URL}/webhooks/telnyx/messages",
        }
        if sms.media_urls:
            params["media_urls"] = list(sms.media_urls)
        profile = sms.messaging_profile_id or settings.TELNYX_MESSAGING_PROFILE_ID
        if profile:
            params["messaging_profile_id"] = profile
        try:
            response = client().messages.send(**params, extra_headers={"Idempotency-Key": sms.idempotency_key})
        except telnyx.APITimeoutError as exc:
            raise SendError(f"timeout: {exc}", transient=True, may_have_sent=True) from exc
        except telnyx.APIConnectionError as exc:
            raise SendError(f"connection failed: {exc}", transient=True) from exc
        except telnyx.APIStatusError as exc:
            code, detail = _error_code(exc)
            if code in OPTED_OUT_CODES:
                raise SendError(detail, code=code, opted_out=True) from exc
            raise SendError(
                f"HTTP {exc.status_code}: {detail}",
                code=code or str(exc.status_code),
                transient=exc.status_code in TRANSIENT_STATUS,
            ) from exc
        return SendResult(provider_message_id=response.data.id)

    def fetch_status(self, provider_message_id: str) -> str | None:
        """``GET {TELNYX_BASE_URL}/messages/{id}`` (the SDK's ``messages.retrieve``): the recipient's
        ``to[0].status``. Telnyx keeps messages there for 10 days; 404 (unknown or older) is None."""
        try:
            response = client().messages.retrieve(provider_message_id)
        except telnyx.NotFoundError:
            return None
        except telnyx.APITimeoutError as exc:
            raise SendError(f"timeout: {exc}", transient=True) from exc
        except telnyx.APIConnectionError as exc:
            raise SendError(f"connection failed: {exc}", transient=True) from exc
        except telnyx.APIStatusError as exc:
            code, detail = _error_code(exc)
            raise SendError(
                f"HTTP {exc.status_code}: {detail}",
                code=code or str(exc.status_code),
                transient=exc.status_code in TRANSIENT_STATUS,
            ) from exc
        recipients = getattr(response.data, "to", None) or []
        return (recipients[0].status or None) if recipients else None

    def find_sent(self, sms: OutboundSms, *, since) -> list[ProviderMessage] | None:
        """Cannot tell: the Messaging API has no search by sender, recipient and time (``GET /messages/{id}`` needs
        the id we never got). Detail records (``detail_records.list`` with record_type messaging) are billing
        records written with a delay, so finding nothing there would prove nothing."""
        return None
