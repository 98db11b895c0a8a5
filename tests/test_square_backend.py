"""The Square backend through the official SDK, against the local fake Square server (tests/fakes/square.py)."""

import base64
import hashlib
import hmac
import json
import socket
import time

import pytest
from square.utils.webhooks_helper import verify_signature as sdk_verify_signature

from payments.backends.base import LinkRequest, PaymentBackend, PaymentError, PaymentLink, Refund
from payments.backends.square import SquareBackend, sign, verify_signature

pytest_plugins = ["tests.fakes.square"]  # the fake_square fixture

PHONE = "+16175550123"
LINKS = "/v2/online-checkout/payment-links"
REFUNDS = "/v2/refunds"


@pytest.fixture
def backend(fake_square, settings):
    return SquareBackend(
        access_token=settings.SQUARE_ACCESS_TOKEN,
        location_id=settings.SQUARE_LOCATION_ID,
        base_url=settings.SQUARE_BASE_URL,
        timeout=2.0,
    )


def link_request(key="booking-42-deposit", **changes):
    values = {
        "idempotency_key": key,
        "name": "Glow Demo Med Spa: Botox deposit",
        "amount_cents": 5000,
        "currency": "USD",
        "buyer_phone": PHONE,
        "redirect_url": "https://app.example.com/pay/thanks/42",
        "note": "booking 42",
    }
    return LinkRequest(**{**values, **changes})


# --- configuration ---


def test_the_environment_chooses_the_base_url():
    assert issubclass(SquareBackend, PaymentBackend) and SquareBackend.name == "square"
    sandbox = SquareBackend(access_token="t", location_id="L")
    production = SquareBackend(access_token="t", location_id="L", environment="production")
    custom = SquareBackend(access_token="t", location_id="L", base_url="http://127.0.0.1:9/", environment="production")
    assert sandbox.base_url == "https://connect.squareupsandbox.com"
    assert production.base_url == "https://connect.squareup.com"
    assert custom.base_url == "http://127.0.0.1:9"
    assert "EAAA-secret" not in repr(SquareBackend(access_token="EAAA-secret", location_id="L"))


# --- payment links ---


def test_the_link_request_reaches_square_as_documented(backend, fake_square):
    link = backend.create_link(link_request())

    assert isinstance(link, PaymentLink)
    [call] = fake_square.calls("POST", LINKS)
    assert call["headers"]["authorization"] == "Bearer EAAA-test-token"
    assert call["headers"]["content-type"].startswith("application/json")
    assert call["headers"]["square-version"]  # the SDK pins the API version it was built for
    assert call["json"] == {
        "idempotency_key": "booking-42-deposit",
        "quick_pay": {
            "name": "Glow Demo Med Spa: Botox deposit",
            "price_money": {"amount": 5000, "currency": "USD"},
            "location_id": "L-DEMO",
        },
        "checkout_options": {"redirect_url": "https://app.example.com/pay/thanks/42"},
        "pre_populated_data": {"buyer_phone_number": PHONE},
        "payment_note": "booking 42",
    }
    stored = fake_square.links[link.link_id]
    assert link == PaymentLink(link_id=stored["id"], url=stored["url"], order_id=stored["order_id"])
    assert link.url.startswith("https://square.link/u/")
    assert fake_square.orders[link.order_id]["total_money"] == {"amount": 5000, "currency": "USD"}


def test_a_link_request_can_name_its_own_location(backend, fake_square):
    backend.create_link(link_request(location_id="L-OTHER", note=""))

    body = fake_square.calls("POST", LINKS)[0]["json"]
    assert body["quick_pay"]["location_id"] == "L-OTHER"
    assert "payment_note" not in body


def test_the_same_key_returns_the_same_link_and_a_new_key_a_new_one(backend, fake_square):
    first = backend.create_link(link_request())
    again = backend.create_link(link_request())
    other = backend.create_link(link_request("booking-43-deposit"))

    assert again == first
    assert other.link_id != first.link_id and other.order_id != first.order_id and other.url != first.url
    assert len(fake_square.links) == 2
    assert [c["json"]["idempotency_key"] for c in fake_square.calls("POST", LINKS)] == [
        "booking-42-deposit",
        "booking-42-deposit",
        "booking-43-deposit",
    ]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_square_failures_and_rate_limits_are_transient_and_not_retried_by_the_sdk(backend, fake_square, status):
    fake_square.fail_next(status)

    started = time.monotonic()
    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())

    assert caught.value.transient is True and caught.value.status == status
    assert len(fake_square.requests) == 1  # our retry logic decides, not the SDK's (which would sleep and retry)
    assert time.monotonic() - started < 1.5
    assert backend.create_link(link_request()).link_id  # the next attempt with the same key works


def test_a_rejected_request_is_not_transient_and_carries_squares_detail(backend, fake_square):
    fake_square.fail_next(
        400,
        errors=[
            {
                "category": "INVALID_REQUEST_ERROR",
                "code": "INVALID_LOCATION",
                "detail": "The location is not enabled for online checkout.",
            }
        ],
    )

    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())

    assert caught.value.transient is False and caught.value.status == 400
    assert "The location is not enabled for online checkout." in str(caught.value)
    assert "INVALID_LOCATION" in str(caught.value)


def test_error_messages_never_carry_the_buyers_phone(backend, fake_square):
    fake_square.fail_next(
        400, errors=[{"category": "INVALID_REQUEST_ERROR", "code": "INVALID_PHONE_NUMBER", "detail": f"Bad {PHONE}"}]
    )
    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())
    assert PHONE not in str(caught.value) and PHONE[2:] not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no SDK exception with the body

    with pytest.raises(PaymentError) as caught:  # the fake's own validation
        backend.create_link(link_request("booking-44-deposit", buyer_phone="+1617555"))
    assert caught.value.status == 400 and not caught.value.transient
    assert "INVALID_PHONE_NUMBER" in str(caught.value) and "+1617555" not in str(caught.value)


def test_a_bad_amount_is_rejected_by_square(backend, fake_square):
    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request(amount_cents=0))

    assert caught.value.status == 400 and not caught.value.transient
    assert "VALUE_TOO_LOW" in str(caught.value)
    assert fake_square.links == {}


def test_reusing_a_key_for_a_different_link_is_refused(backend, fake_square):
    backend.create_link(link_request())

    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request(amount_cents=7500))

    assert caught.value.status == 400 and not caught.value.transient
    assert "IDEMPOTENCY_KEY_REUSED" in str(caught.value)


def test_a_timeout_is_transient_and_the_retry_finds_the_link_square_made(fake_square, settings):
    backend = SquareBackend(
        access_token=settings.SQUARE_ACCESS_TOKEN,
        location_id=settings.SQUARE_LOCATION_ID,
        base_url=settings.SQUARE_BASE_URL,
        timeout=0.3,
    )
    fake_square.delay_next(5)

    started = time.monotonic()
    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())

    assert time.monotonic() - started < 2
    assert caught.value.transient is True and caught.value.status is None
    [made] = fake_square.links.values()  # Square carried the request out; only its answer was late
    assert backend.create_link(link_request()).link_id == made["id"]
    assert len(fake_square.links) == 1


def test_an_unreachable_square_is_transient(fake_square):
    with socket.socket() as probe:  # a local port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = SquareBackend(access_token="EAAA-test-token", location_id="L-DEMO", base_url=f"http://127.0.0.1:{port}")

    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())

    assert caught.value.transient is True and caught.value.status is None


def test_a_wrong_token_is_refused_and_not_transient(fake_square, settings):
    backend = SquareBackend(access_token="EAAA-wrong", location_id="L-DEMO", base_url=settings.SQUARE_BASE_URL)

    with pytest.raises(PaymentError) as caught:
        backend.create_link(link_request())

    assert caught.value.status == 401 and caught.value.transient is False
    assert "UNAUTHORIZED" in str(caught.value)
    assert fake_square.links == {}


# --- refunds ---


def refund(backend, key="refund-booking-42", amount=5000, payment_id="PAY-1", reason="Booking cancelled"):
    return backend.refund(
        payment_id=payment_id, amount_cents=amount, currency="USD", idempotency_key=key, reason=reason
    )


def test_a_refund_reaches_square_and_returns_its_status(backend, fake_square):
    fake_square.add_payment("PAY-1", "ORDER-1", 6000)

    result = refund(backend)

    [call] = fake_square.calls("POST", REFUNDS)
    assert call["headers"]["authorization"] == "Bearer EAAA-test-token"
    assert call["json"] == {
        "idempotency_key": "refund-booking-42",
        "payment_id": "PAY-1",
        "amount_money": {"amount": 5000, "currency": "USD"},
        "reason": "Booking cancelled",
    }
    [stored] = fake_square.refunds.values()
    assert result == Refund(refund_id=stored["id"], status="PENDING")
    assert stored["order_id"] == "ORDER-1"

    fake_square.refund_status = "COMPLETED"
    assert refund(backend, key="refund-booking-42-b", amount=1000).status == "COMPLETED"  # the rest


def test_a_repeated_refund_returns_the_same_refund_once(backend, fake_square):
    fake_square.add_payment("PAY-1", "ORDER-1", 5000)

    first = refund(backend)
    again = refund(backend)

    assert again == first
    assert len(fake_square.refunds) == 1
    assert fake_square.payments["PAY-1"]["refunded_money"]["amount"] == 5000


def test_refunding_an_unknown_payment_is_not_transient(backend, fake_square):
    with pytest.raises(PaymentError) as caught:
        refund(backend, payment_id="PAY-NOPE")

    assert caught.value.status == 404 and caught.value.transient is False
    assert "NOT_FOUND" in str(caught.value)


def test_refunding_more_than_was_paid_is_refused(backend, fake_square):
    fake_square.add_payment("PAY-1", "ORDER-1", 5000)

    with pytest.raises(PaymentError) as caught:
        refund(backend, amount=5001)

    assert caught.value.status == 400 and caught.value.transient is False
    assert "REFUND_AMOUNT_INVALID" in str(caught.value)
    assert fake_square.refunds == {}


def test_a_refund_during_an_outage_is_transient(backend, fake_square):
    fake_square.add_payment("PAY-1", "ORDER-1", 5000)
    fake_square.fail_next(503, times=2)

    for _ in range(2):
        with pytest.raises(PaymentError) as caught:
            refund(backend)
        assert caught.value.transient is True and caught.value.status == 503

    assert refund(backend).status == "PENDING"
    assert len(fake_square.requests) == 3


def test_a_paid_link_can_be_refunded(backend, fake_square):
    link = backend.create_link(link_request())
    payment = fake_square.pay_link(link.link_id)

    assert payment["order_id"] == link.order_id and payment["amount_money"]["amount"] == 5000
    assert payment["note"] == "booking 42"
    event = fake_square.payment_event(payment["id"])
    assert event["type"] == "payment.updated" and event["data"]["object"]["payment"]["status"] == "COMPLETED"
    result = refund(backend, payment_id=payment["id"])
    assert result.refund_id.startswith(payment["id"])


# --- webhook signatures ---

KEY = "whsec-signature-key"
URL = "https://app.example.com/webhooks/square"
BODY = json.dumps({"type": "payment.updated", "data": {"id": "PAY-1"}, "note": "café"}).encode()


def test_sign_is_squares_algorithm():
    expected = base64.b64encode(hmac.new(KEY.encode(), URL.encode() + BODY, hashlib.sha256).digest()).decode()
    assert sign(body=BODY, signature_key=KEY, notification_url=URL) == expected
    assert sdk_verify_signature(
        request_body=BODY.decode(), signature_header=expected, signature_key=KEY, notification_url=URL
    )


def test_verify_signature_accepts_squares_signature():
    signature = sign(body=BODY, signature_key=KEY, notification_url=URL)
    assert verify_signature(body=BODY, signature=signature, signature_key=KEY, notification_url=URL) is True


def test_a_body_that_is_not_utf8_is_still_checked_as_bytes():
    body = b'{"x": "\xff"}'
    signature = sign(body=body, signature_key=KEY, notification_url=URL)
    assert verify_signature(body=body, signature=signature, signature_key=KEY, notification_url=URL) is True
    assert verify_signature(body=body + b" ", signature=signature, signature_key=KEY, notification_url=URL) is False


@pytest.mark.parametrize(
    "changes",
    [
        {"body": BODY.replace(b"PAY-1", b"PAY-2")},
        {"body": BODY + b"\n"},
        {"body": b""},
        {"notification_url": URL + "/"},
        {"notification_url": URL.replace("https", "http")},
        {"notification_url": ""},
        {"signature_key": "another-key"},
        {"signature_key": ""},
        {"signature": ""},
        {"signature": None},
        {"signature": "not base64 at all"},
        {"signature": "é" * 44},
        {"body": None},
    ],
    ids=lambda changes: ", ".join(f"{k}={str(v)[:12]!r}" for k, v in changes.items()),
)
def test_verify_signature_rejects_anything_else(changes):
    arguments = {
        "body": BODY,
        "signature": sign(body=BODY, signature_key=KEY, notification_url=URL),
        "signature_key": KEY,
        "notification_url": URL,
        **changes,
    }
    assert verify_signature(**arguments) is False


def test_verify_signature_without_the_sdk_helper(monkeypatch):
    """Older or newer SDKs may lack square.utils.webhooks_helper: the same answers from our own HMAC check."""
    import payments.backends.square as square_backend

    monkeypatch.setattr(square_backend, "_sdk_verify_signature", None)
    signature = sign(body=BODY, signature_key=KEY, notification_url=URL)
    assert verify_signature(body=BODY, signature=signature, signature_key=KEY, notification_url=URL) is True
    assert verify_signature(body=BODY + b" ", signature=signature, signature_key=KEY, notification_url=URL) is False
    assert verify_signature(body=BODY, signature=signature, signature_key=KEY, notification_url=URL + "/") is False
    assert verify_signature(body=BODY, signature="é" * 44, signature_key=KEY, notification_url=URL) is False
