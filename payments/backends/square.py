"""Square deposits through the official SDK (``squareup``, module ``square``): Quick Pay payment links and refunds.

``POST {base}/v2/online-checkout/payment-links`` and ``POST {base}/v2/refunds``, authenticated with
``Authorization: Bearer <access token>``; both are idempotent by the ``idempotency_key`` in the body, so a retry
after a timeout returns the link or refund the first attempt made. The SDK would retry 408/409/429/5xx answers by
itself (twice, sleeping up to a minute): every call passes ``max_retries=0`` because our own retry logic decides.

Webhooks: ``verify_signature`` checks ``x-square-hmacsha256-signature``, which is
base64(HMAC-SHA256(key=signature key, message=notification URL + raw body)); ``sign`` computes it.
"""

import base64
import hashlib
import hmac
import logging
import re

import httpx
from django.conf import settings
from square import Square
from square.core.api_error import ApiError
from square.environment import SquareEnvironment

from .base import LinkRequest, PaymentBackend, PaymentConfigError, PaymentError, PaymentLink, Refund

try:
    from square.utils.webhooks_helper import verify_signature as _sdk_verify_signature
except ImportError:  # pragma: no cover - older or newer SDKs without the helper
    _sdk_verify_signature = None

logger = logging.getLogger(__name__)

# Worth trying again later (with the same idempotency key): timeouts, conflicts with a request still in flight,
# rate limits and Square's own failures. Every other 4xx is our request's fault and fails the same way again.
TRANSIENT_STATUS = {408, 409, 425, 429}
_PHONE = re.compile(r"\+\d{7,15}")  # E.164


def _scrub(text: str, *secrets: str) -> str:
    """An error detail without anything that looks like a phone number (Square may echo the bad value)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _PHONE.sub("[redacted]", text)


def _describe(exc: ApiError) -> tuple[str, str]:
    """(first error code, "CODE: detail; CODE: detail") from Square's ``{"errors": [...]}`` answer."""
    parts, first_code = [], ""
    for error in exc.errors or []:
        code = str(getattr(error, "code", "") or "")
        detail = str(getattr(error, "detail", "") or "")
        field = str(getattr(error, "field", "") or "")
        first_code = first_code or code
        text = f"{code}: {detail}" if code and detail else code or detail
        parts.append(f"{text} (field {field})" if field and field not in text else text)
    return first_code, "; ".join(p for p in parts if p)


def _is_transient(status) -> bool:
    return status is None or status >= 500 or status in TRANSIENT_STATUS


class SquareBackend(PaymentBackend):
    """Square's Checkout (payment links) and Refunds APIs. ``base_url`` overrides the environment's URL (tests)."""

    name = "square"

    def __init__(self, *, access_token, location_id, base_url="", environment="sandbox", timeout=10.0):
        self.access_token = access_token
        self.location_id = location_id
        self.base_url = (base_url or "").rstrip("/") or (
            SquareEnvironment.PRODUCTION.value if environment == "production" else SquareEnvironment.SANDBOX.value
        )
        self.timeout = float(timeout)

    @classmethod
    def from_config(cls, clinic, config, *, public_token=""):
        """The clinic's own Square token and location, else the platform's (SQUARE_*)."""
        token = (config.square_access_token if config else "") or settings.SQUARE_ACCESS_TOKEN
        location = (config.square_location_id if config else "") or settings.SQUARE_LOCATION_ID
        if not token or not location:
            raise PaymentConfigError("Square needs an access token and a location id (clinic or SQUARE_* settings).")
        return cls(
            access_token=token,
            location_id=location,
            base_url=settings.SQUARE_BASE_URL,
            environment=settings.SQUARE_ENVIRONMENT,
        )

    def __repr__(self):  # never the token
        return f"<SquareBackend {self.base_url} location={self.location_id}>"

    def _call(self, operation: str, call, *, scrub=()):
        """Run ``call(client, request_options)`` on a fresh SDK client; map every failure to ``PaymentError``.

        A client per call: nothing to close or share between threads, and links and refunds are rare.
        """
        options = {"max_retries": 0, "timeout_in_seconds": self.timeout}
        http = httpx.Client(timeout=self.timeout, follow_redirects=False)
        client = Square(token=self.access_token, base_url=self.base_url, timeout=self.timeout, httpx_client=http)
        try:
            return call(client, options)
        except ApiError as exc:
            status = exc.status_code
            code, detail = _describe(exc)
            if status is not None and 200 <= status < 300:  # a success answer we could not read
                logger.warning("square %s: unreadable %s answer", operation, status)
                raise PaymentError(f"Square {operation}: unreadable answer", transient=True, status=status) from None
            transient = _is_transient(status)
            logger.warning("square %s failed: HTTP %s %s (transient=%s)", operation, status, code, transient)
            message = f"Square {operation} HTTP {status}"
            if detail:
                message = f"{message}: {_scrub(detail, *scrub)}"
            # Not chained: the SDK's exception text carries the whole answer, which may echo what we sent.
            raise PaymentError(message, transient=transient, status=status) from None
        except httpx.TimeoutException as exc:
            logger.warning("square %s timed out after %ss", operation, self.timeout)
            raise PaymentError(f"Square {operation}: timed out", transient=True) from exc
        except httpx.HTTPError as exc:  # connection refused or reset, DNS, protocol errors
            logger.warning("square %s: %s", operation, type(exc).__name__)
            raise PaymentError(f"Square {operation}: {type(exc).__name__}", transient=True) from exc
        finally:
            http.close()

    def create_link(self, request: LinkRequest) -> PaymentLink:
        location_id = request.location_id or self.location_id
        pre_populated = {"buyer_phone_number": request.buyer_phone} if request.buyer_phone else None
        params = {
            "idempotency_key": request.idempotency_key,
            "quick_pay": {
                "name": request.name,
                "price_money": {"amount": int(request.amount_cents), "currency": request.currency.upper()},
                "location_id": location_id,
            },
            "checkout_options": {"redirect_url": request.redirect_url},
        }
        if pre_populated:
            params["pre_populated_data"] = pre_populated
        if request.note:
            params["payment_note"] = request.note

        def call(client, options):
            return client.checkout.payment_links.create(**params, request_options=options)

        phone_digits = request.buyer_phone.lstrip("+")
        answer = self._call("payment link", call, scrub=(request.buyer_phone, phone_digits))
        link = answer.payment_link
        if link is None or not link.id or not link.url:
            logger.warning("square payment link: answer without a link (key %s)", request.idempotency_key)
            raise PaymentError("Square payment link: the answer has no payment link", status=200)
        logger.info(
            "square payment link %s created (order %s, key %s)", link.id, link.order_id, request.idempotency_key
        )
        return PaymentLink(link_id=link.id, url=link.url, order_id=link.order_id or "")

    def refund(self, *, payment_id: str, amount_cents: int, currency: str, idempotency_key: str, reason: str) -> Refund:
        def call(client, options):
            return client.refunds.refund_payment(
                idempotency_key=idempotency_key,
                payment_id=payment_id,
                amount_money={"amount": int(amount_cents), "currency": currency.upper()},
                reason=reason or None,
                request_options=options,
            )

        answer = self._call("refund", call)
        refund = answer.refund
        if refund is None or not refund.id:
            logger.warning("square refund of payment %s: answer without a refund", payment_id)
            raise PaymentError("Square refund: the answer has no refund", status=200)
        status = str(refund.status or "PENDING").upper()
        logger.info("square refund %s of payment %s: %s", refund.id, payment_id, status)
        return Refund(refund_id=refund.id, status=status)


def sign(*, body: bytes, signature_key: str, notification_url: str) -> str:
    """The ``x-square-hmacsha256-signature`` value Square sends: base64(HMAC-SHA256(key, url + body))."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    digest = hmac.new(signature_key.encode("utf-8"), notification_url.encode("utf-8") + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify_signature(*, body: bytes, signature: str, signature_key: str, notification_url: str) -> bool:
    """Whether ``signature`` is Square's signature of ``body`` for this key and URL (exactly as configured in
    Square, trailing slash and all). False for a missing signature, key or URL or any malformed input; never raises.
    """
    try:
        if not signature or not signature_key or not notification_url or not isinstance(signature, str):
            return False
        if isinstance(body, str):
            body = body.encode("utf-8")
        if not isinstance(body, bytes | bytearray) or not body:
            return False  # Square always sends a JSON body (the SDK helper rejects an empty one too)
        body = bytes(body)
        if _sdk_verify_signature is not None:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None  # the SDK takes text; bytes that are not UTF-8 are checked below as they are
            if text is not None:
                return bool(
                    _sdk_verify_signature(
                        request_body=text,
                        signature_header=signature,
                        signature_key=signature_key,
                        notification_url=notification_url,
                    )
                )
        expected = sign(body=body, signature_key=signature_key, notification_url=notification_url)
        return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))
    except Exception:  # malformed input of any kind is an invalid signature
        logger.warning("square webhook signature check failed on malformed input", exc_info=True)
        return False
