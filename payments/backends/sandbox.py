"""The sandbox: deposits paid on our own server at ``/pay/<token>/``, a page clearly marked as a test payment.
No money moves. Its "Pay" button records a payment event and goes through the same processing as a Square
``payment.updated`` COMPLETED webhook (``payments.services``). The embedded default; refused in production unless
PAYMENTS_SANDBOX_ENABLED is set."""

import hashlib

from django.conf import settings
from django.urls import reverse

from .base import LinkRequest, PaymentBackend, PaymentConfigError, PaymentLink, Refund


class SandboxBackend(PaymentBackend):
    name = "sandbox"

    def __init__(self, *, public_token: str = ""):
        self.public_token = public_token

    @classmethod
    def from_config(cls, clinic, config, *, public_token=""):
        if not settings.PAYMENTS_SANDBOX_ENABLED:
            raise PaymentConfigError("Test payments are off in production and no Square account is configured.")
        return cls(public_token=public_token)

    def create_link(self, request: LinkRequest) -> PaymentLink:
        order = "sandbox-order-" + hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:20]
        url = settings.PUBLIC_BASE_URL + reverse("payments:sandbox-checkout", args=[self.public_token])
        return PaymentLink(link_id=f"sandbox-link-{order[14:]}", url=url, order_id=order)

    def refund(self, *, payment_id, amount_cents, currency, idempotency_key, reason) -> Refund:
        digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:20]
        return Refund(refund_id=f"sandbox-refund-{digest}", status="COMPLETED")
