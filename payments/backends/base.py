"""The interface every payment provider backend implements, and the values it takes and returns.

Backends turn their transport and API errors into ``PaymentError``: ``transient`` says whether trying again later
(with the same idempotency key) may succeed, so the calling code has one place to choose between retry and failure.
Each is built by ``from_config(clinic, config, public_token=)`` (``payments.services.payment_backend``).
"""

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class LinkRequest:
    """A hosted checkout link for one deposit."""

    idempotency_key: str  # derived from our booking: a retry must return the same link
    name: str  # e.g. "Glow Demo Med Spa: Botox deposit" -- no clinical detail beyond the service name
    amount_cents: int
    currency: str  # "USD"
    buyer_phone: str  # E.164
    redirect_url: str  # our own thank-you page
    note: str = ""  # e.g. "booking 42" (payment_note)
    location_id: str = ""  # overrides the backend's default location when set


@dataclass(frozen=True)
class PaymentLink:
    link_id: str
    url: str
    order_id: str


@dataclass(frozen=True)
class Refund:
    refund_id: str
    status: str  # the provider's word, upper case: PENDING, COMPLETED, REJECTED, FAILED


class PaymentError(Exception):
    """A provider call failed. ``transient``: worth retrying with the same key; ``status``: the HTTP status, if any."""

    def __init__(self, message, *, transient=False, status=None):
        super().__init__(message)
        self.transient, self.status = transient, status


class PaymentConfigError(Exception):
    """No payment provider can be used for this clinic (for example the sandbox in production)."""


class PaymentBackend(ABC):
    name = ""

    @classmethod
    @abstractmethod
    def from_config(cls, clinic, config, *, public_token: str = ""):
        """The backend for ``clinic`` from its ``PaymentConfig`` (None when it has none: the platform's settings);
        ``public_token``: the payment's own token (the sandbox's checkout page). ``PaymentConfigError`` when the
        configuration cannot make one."""
        raise NotImplementedError

    @abstractmethod
    def create_link(self, request: LinkRequest) -> PaymentLink: ...

    @abstractmethod
    def refund(
        self, *, payment_id: str, amount_cents: int, currency: str, idempotency_key: str, reason: str
    ) -> Refund: ...
