"""Deposits: payment links (Square through its SDK against a local fake, and the sandbox), Square webhooks signed
the way Square signs them, the outbox from payment to confirmation text, and refunds."""

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse

from bookings.models import Booking
from bookings.services import booking_cancel, booking_hold, bookings_expire_holds
from emr.base import EmrError
from emr.models import Provider
from inbox.models import WebhookEvent as PaymentEvent  # the inbox: Square and sandbox events among the rest
from inbox.models import WebhookRejection
from medspa.models import Service, StaffAlert
from payments import services
from payments.backends.square import sign
from payments.models import OutboxItem, Payment

pytest_plugins = ["tests.fakes.square", "tests.browser"]

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in Boston
PHONE = "+16175550123"
SIGNATURE_KEY = "sq-signature-key-test"
WEBHOOK_URL = "https://frontdesk.example.com/webhooks/square"


@pytest.fixture(autouse=True)
def _frozen():
    with time_machine.travel(NOW, tick=True):
        yield


@pytest.fixture
def square_webhooks(settings):
    settings.SQUARE_WEBHOOK_SIGNATURE_KEY = SIGNATURE_KEY
    settings.SQUARE_WEBHOOK_URL = WEBHOOK_URL


def hold(clinic, hour=11, day=24, provider="Dr. Sarah Smith", phone=PHONE, **extra):
    return booking_hold(
        **extra,
        clinic=clinic,
        service=Service.objects.get(clinic=clinic, name="Botox"),
        provider=Provider.objects.get(clinic=clinic, name=provider),
        start=datetime(2026, 11, day, hour, tzinfo=clinic.tz),
        patient_phone=phone,
        patient_name="Jane Doe",
    )


def deliver(client, body: dict, *, key=SIGNATURE_KEY, url=WEBHOOK_URL, raw=None, signature=None):
    raw = raw if raw is not None else json.dumps(body).encode()
    headers = {}
    if signature is not False:
        headers["HTTP_X_SQUARE_HMACSHA256_SIGNATURE"] = signature or sign(
            body=raw, signature_key=key, notification_url=url
        )
    return client.post("/webhooks/square", data=raw, content_type="application/json", **headers)


def square_payment_body(payment, *, status="COMPLETED", amount=None, event_type="payment.updated", event_id=None):
    provider_id = f"sq-pay-{payment.pk}"
    return {
        "merchant_id": "ML-DEMO-MERCHANT",
        "type": event_type,
        "event_id": event_id or f"evt-{payment.pk}-{event_type}-{status}",
        "created_at": "2026-11-23T15:01:00Z",
        "data": {
            "type": "payment",
            "id": provider_id,
            "object": {
                "payment": {
                    "id": provider_id,
                    "status": status,
                    "order_id": payment.order_id,
                    "amount_money": {"amount": payment.amount_cents if amount is None else amount, "currency": "USD"},
                    "location_id": "L-DEMO",
                    "updated_at": "2026-11-23T15:01:00Z",
                }
            },
        },
    }


# --- Requesting a deposit ------------------------------------------------------------------------------------------


def test_sandbox_deposit_link_for_a_held_booking(demo):
    booking = hold(demo)
    payment = services.deposit_request(booking_id=booking.pk)
    assert payment.provider == "sandbox" and payment.amount_cents == 5000 and payment.status == "created"
    assert payment.link_url == f"http://127.0.0.1:8000/pay/{payment.public_token}/"
    assert len(payment.public_token) >= 32
    booking.refresh_from_db()
    assert booking.status == Booking.Status.AWAITING_DEPOSIT and booking.deposit_cents == 5000
    assert booking.hold_expires_at == payment.expires_at
    assert payment.expires_at - NOW >= timedelta(minutes=29)
    assert services.deposit_request(booking_id=booking.pk).pk == payment.pk  # asked again: the same link
    assert Payment.objects.count() == 1


def test_returning_clients_pay_no_deposit_when_the_service_says_new_clients_only(demo):
    from bookings.services import booking_confirm

    booking_confirm(booking_id=hold(demo, hour=9).pk)  # a past visit, confirmed
    again = hold(demo, hour=13, allow_another=True)  # the patient said yes to a second appointment
    with pytest.raises(services.BookingStateError):
        services.deposit_request(booking_id=again.pk)


def test_square_link_request_reaches_square_with_amount_and_idempotency_key(demo, fake_square):
    booking = hold(demo)
    fake_square.fail_next(503)
    with pytest.raises(services.PaymentError) as failed:
        services.deposit_request(booking_id=booking.pk)
    assert failed.value.transient
    payment = services.deposit_request(booking_id=booking.pk)  # the retry
    calls = fake_square.calls("POST", "/v2/online-checkout/payment-links")
    assert len(calls) == 2 and calls[0]["json"]["idempotency_key"] == calls[1]["json"]["idempotency_key"]
    sent = calls[1]["json"]
    assert (
        sent["idempotency_key"]
        == payment.idempotency_key
        == f"deposit-{booking.pk}-{int(booking.created_at.timestamp())}"
    )
    assert sent["quick_pay"] == {
        "name": "Glow Demo Med Spa: Botox deposit",
        "price_money": {"amount": 5000, "currency": "USD"},
        "location_id": "L-DEMO",
    }
    assert sent["checkout_options"]["redirect_url"].endswith(f"/pay/{payment.public_token}/thanks/")
    assert sent["pre_populated_data"] == {"buyer_phone_number": PHONE}
    assert calls[1]["headers"]["authorization"] == "Bearer EAAA-test-token"
    assert payment.provider == "square" and payment.link_url.startswith("https://square.link/u/")
    assert payment.order_id == fake_square.links[payment.link_id]["order_id"]


# --- Square webhooks -----------------------------------------------------------------------------------------------


@pytest.fixture
def square_payment(demo, fake_square, square_webhooks):
    return services.deposit_request(booking_id=hold(demo).pk)


def test_completed_payment_confirms_the_booking_once_and_texts_the_patient(client, square_payment, sms_outbox):
    body = square_payment_body(square_payment)
    for _ in range(3):
        assert deliver(client, body).status_code == 200
    assert PaymentEvent.objects.count() == 1
    square_payment.refresh_from_db()
    booking = square_payment.booking
    booking.refresh_from_db()
    assert square_payment.status == "paid" and square_payment.paid_cents == 5000
    assert square_payment.payment_id == f"sq-pay-{square_payment.pk}"
    assert booking.status == Booking.Status.CONFIRMED and booking.emr_appointment_id == f"builtin-{booking.pk}"
    assert [m.body[:12] for m in sms_outbox] == ["You're booke"]
    assert list(OutboxItem.objects.values_list("kind", "status")) == [
        ("confirm_booking", "done"),
        ("send_confirmation", "done"),
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="parallel deliveries need real connections")
def test_three_parallel_deliveries_confirm_once(demo, fake_square, square_webhooks, sms_outbox):
    payment = services.deposit_request(booking_id=hold(demo).pk)
    body = square_payment_body(payment)
    barrier, statuses = threading.Barrier(3), []

    def post():
        barrier.wait()
        statuses.append(deliver(Client(), body).status_code)
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200, 200, 200]
    assert PaymentEvent.objects.count() == 1
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    assert OutboxItem.objects.filter(kind="confirm_booking").count() == 1
    assert len(sms_outbox) == 1


@pytest.mark.parametrize(
    ("how", "changes"),
    [
        ("wrong url", {"url": WEBHOOK_URL + "/"}),
        ("garbage signature", {"signature": "bm90IGEgc2lnbmF0dXJl"}),
    ],
)
def test_webhooks_signed_for_another_url_or_with_garbage_are_refused_and_change_nothing(
    client, square_payment, how, changes
):
    # Tampered, unsigned, wrong-key, rotated, unconfigured and malformed: tests/test_webhook_contract.py.
    response = deliver(
        client,
        square_payment_body(square_payment),
        url=changes.get("url", WEBHOOK_URL),
        signature=changes.get("signature"),
    )
    assert response.status_code == 403, how
    assert PaymentEvent.objects.count() == 0
    assert WebhookRejection.objects.filter(provider="square").count() == 1
    square_payment.refresh_from_db()
    assert square_payment.status == "created"


def test_payment_created_after_updated_changes_nothing(client, square_payment, sms_outbox):
    deliver(client, square_payment_body(square_payment))
    late = square_payment_body(square_payment, status="APPROVED", event_type="payment.created")
    assert deliver(client, late).status_code == 200
    square_payment.refresh_from_db()
    assert square_payment.status == "paid" and square_payment.provider_status == "COMPLETED"
    assert PaymentEvent.objects.get(event_type="payment.created").status == "ignored"
    assert len(sms_outbox) == 1


def test_a_lower_amount_is_flagged_for_staff_not_confirmed(client, square_payment, sms_outbox):
    deliver(client, square_payment_body(square_payment, amount=2500))
    square_payment.refresh_from_db()
    assert square_payment.status == "created" and square_payment.needs_review
    assert Booking.objects.get(pk=square_payment.booking_id).status == Booking.Status.AWAITING_DEPOSIT
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.PAYMENT)
    assert f"Payment #{square_payment.pk}" in alert.text and "Jane" not in alert.text
    assert PaymentEvent.objects.get().status == "flagged" and sms_outbox == []


def test_a_payment_for_another_sale_of_the_clinic_is_recorded_and_ignored_without_staff_noise(client, square_payment):
    body = square_payment_body(square_payment)
    body["data"]["object"]["payment"]["order_id"] = "ORDER-NOT-OURS"  # Square sends every payment of the seller
    assert deliver(client, body).status_code == 200
    event = PaymentEvent.objects.get()
    assert event.status == "ignored" and "did not create" in event.reason
    assert Booking.objects.get(pk=square_payment.booking_id).status == Booking.Status.AWAITING_DEPOSIT
    assert not StaffAlert.objects.exists()


def test_failed_or_canceled_payment_leaves_the_hold_to_expire(client, square_payment):
    deliver(client, square_payment_body(square_payment, status="FAILED"))
    square_payment.refresh_from_db()
    assert square_payment.status == "created" and square_payment.provider_status == "FAILED"
    assert bookings_expire_holds(now=NOW + timedelta(minutes=31)) == 1
    # The patient retried the card and it went through after all, with the time still free: confirmed.
    deliver(client, square_payment_body(square_payment, event_id="evt-later"))
    assert Booking.objects.get(pk=square_payment.booking_id).status == Booking.Status.CONFIRMED


def test_payment_after_the_hold_expired_and_the_slot_was_taken_is_refunded(
    client, demo, square_payment, fake_square, sms_outbox
):
    from .conftest import make_staff

    make_staff("frontdesk", demo).__class__.objects.filter(username="frontdesk").update(email="desk@glow.example")
    bookings_expire_holds(now=NOW + timedelta(minutes=31))
    hold(demo, phone="+16175550999")  # someone else takes the time
    paid = fake_square.pay_link(square_payment.link_id)
    body = fake_square.payment_event(paid["id"])
    assert deliver(client, body).status_code == 200

    square_payment.refresh_from_db()
    refunds = fake_square.calls("POST", "/v2/refunds")
    assert len(refunds) == 1
    assert refunds[0]["json"]["payment_id"] == paid["id"]
    assert refunds[0]["json"]["amount_money"] == {"amount": 5000, "currency": "USD"}
    assert square_payment.status == "refund_pending" and square_payment.refund_id
    assert Booking.objects.get(pk=square_payment.booking_id).status == Booking.Status.EXPIRED
    alert = StaffAlert.objects.get(kind=StaffAlert.Kind.REFUND)
    assert "time was taken" in alert.text
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["desk@glow.example"]
    assert "Jane" not in mail.outbox[0].body and PHONE not in mail.outbox[0].body
    assert len(sms_outbox) == 1 and "being refunded" in sms_outbox[0].body

    # Square then reports the refund done.
    fake_square.refunds[square_payment.refund_id]["status"] = "COMPLETED"
    deliver(client, fake_square.refund_event(square_payment.refund_id))
    square_payment.refresh_from_db()
    assert square_payment.status == "refunded" and square_payment.refunded_cents == 5000


def test_payment_after_the_hold_expired_with_the_time_still_free_confirms(client, square_payment, sms_outbox):
    bookings_expire_holds(now=NOW + timedelta(minutes=31))
    deliver(client, square_payment_body(square_payment))
    assert Booking.objects.get(pk=square_payment.booking_id).status == Booking.Status.CONFIRMED
    assert len(sms_outbox) == 1 and sms_outbox[0].body.startswith("You're booked")


# --- Outbox: crashes resume, outages retry, nothing doubles --------------------------------------------------------


def test_a_crash_between_steps_resumes_and_never_doubles(
    client, square_payment, sms_outbox, monkeypatch, django_capture_on_commit_callbacks
):
    from payments import tasks

    # The worker dies right after the payment is marked paid: the confirm step is written but never runs.
    monkeypatch.setattr(tasks.run_outbox_item, "apply_async", lambda *a, **k: None)
    deliver(client, square_payment_body(square_payment))
    item = OutboxItem.objects.get()
    assert item.status == "pending" and Booking.objects.get(pk=square_payment.booking_id).status != "confirmed"

    # Another worker had claimed it and died mid-step (its lease runs out).
    OutboxItem.objects.filter(pk=item.pk).update(status="running", lease_until=NOW - timedelta(seconds=1))
    monkeypatch.undo()
    assert services.outbox_due(now=NOW) == [item.pk]
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.outbox_sweep() == 1  # the beat sweep picks it up; the chain completes
    assert Booking.objects.get(pk=square_payment.booking_id).status == "confirmed"
    assert tasks.outbox_sweep() == 0
    assert services.outbox_run(item_id=item.pk) == "skipped"
    assert len(sms_outbox) == 1


def test_an_emr_outage_is_retried_with_backoff_then_surfaced_to_staff(client, square_payment, monkeypatch):
    calls = []

    def down(**kwargs):
        calls.append(kwargs)
        raise EmrError("EMR unavailable", transient=True, status=503)

    monkeypatch.setattr(services, "booking_confirm", down)
    deliver(client, square_payment_body(square_payment))
    item = OutboxItem.objects.get()
    assert item.status == "pending" and item.attempts == 1 and "EmrError" in item.last_error
    assert item.next_attempt_at >= NOW + timedelta(seconds=10)
    for attempt in range(2, services.MAX_ATTEMPTS + 1):
        outcome = services.outbox_run(item_id=item.pk, now=NOW + timedelta(days=attempt))
    assert outcome == "failed" and len(calls) == services.MAX_ATTEMPTS
    assert OutboxItem.objects.get().status == "failed"
    assert StaffAlert.objects.filter(kind=StaffAlert.Kind.EMR_ERROR).count() == 1
    monkeypatch.undo()
    assert services.outbox_retry(item=OutboxItem.objects.get())
    assert services.outbox_run(item_id=item.pk) == "done"
    assert Booking.objects.get(pk=square_payment.booking_id).status == "confirmed"


# --- Refunds -------------------------------------------------------------------------------------------------------


def test_staff_refund_from_the_admin(client, demo, square_payment, fake_square):
    from .conftest import make_staff

    paid = fake_square.pay_link(square_payment.link_id)
    deliver(client, fake_square.payment_event(paid["id"]))
    client.force_login(make_staff("owner", demo))
    url = reverse("admin:payments_payment_changelist")
    client.post(url, {"action": "refund", "_selected_action": [square_payment.pk]})
    client.post(url, {"action": "refund", "_selected_action": [square_payment.pk]})  # a double click
    assert len(fake_square.calls("POST", "/v2/refunds")) == 1
    square_payment.refresh_from_db()
    assert square_payment.status == "refund_pending"
    page = client.get(url, {"review": "yes"})
    assert page.status_code == 200


def test_patient_cancelling_in_time_gets_the_deposit_back(client, square_payment, fake_square):
    paid = fake_square.pay_link(square_payment.link_id)
    deliver(client, fake_square.payment_event(paid["id"]))
    booking_cancel(booking_id=square_payment.booking_id, by="patient")
    assert len(fake_square.calls("POST", "/v2/refunds")) == 0  # queued in the cancel's transaction...
    services.outbox_run(item_id=OutboxItem.objects.get(kind="refund").pk)  # ...and run after it
    assert len(fake_square.calls("POST", "/v2/refunds")) == 1


# --- Sandbox checkout ----------------------------------------------------------------------------------------------


def test_sandbox_checkout_pays_through_the_same_path(client, demo, sms_outbox):
    payment = services.deposit_request(booking_id=hold(demo).pk)
    url = reverse("payments:sandbox-checkout", args=[payment.public_token])
    page = client.get(url).content.decode()
    assert "TEST PAYMENT" in page and "$50" in page and "Botox" in page and "Glow Demo Med Spa" in page
    assert "Tuesday, Nov 24 at 11:00 AM" in page and "10:30 AM" in page  # held until (Boston time)
    response = client.post(url)
    assert response.status_code == 302 and response["Location"].endswith("/thanks/")
    thanks = client.get(response["Location"]).content.decode()
    assert "is confirmed" in thanks
    event = PaymentEvent.objects.get()
    assert event.provider == "sandbox" and event.event_type == "payment.updated" and event.status == "processed"
    assert Booking.objects.get(pk=payment.booking_id).status == Booking.Status.CONFIRMED
    # Single use: a second press finds it paid and records nothing.
    client.post(url)
    assert "already paid" in client.get(url).content.decode()
    assert PaymentEvent.objects.count() == 1 and len(sms_outbox) == 1


def test_sandbox_refuses_expired_links_and_unknown_tokens(client, demo):
    payment = services.deposit_request(booking_id=hold(demo).pk)
    url = reverse("payments:sandbox-checkout", args=[payment.public_token])
    with time_machine.travel(NOW + timedelta(minutes=45)):
        client.post(url)
        assert "expired" in client.get(url).content.decode()
    assert PaymentEvent.objects.count() == 0
    assert client.get(reverse("payments:sandbox-checkout", args=["not-a-token"])).status_code == 404


def test_sandbox_is_off_in_production_unless_enabled(client, demo, settings):
    payment = services.deposit_request(booking_id=hold(demo).pk)
    settings.PAYMENTS_SANDBOX_ENABLED = False
    assert client.get(reverse("payments:sandbox-checkout", args=[payment.public_token])).status_code == 404
    with pytest.raises(services.PaymentConfigError):
        services.deposit_request(booking_id=hold(demo, hour=14, phone="+16175550124").pk)


# --- The sandbox checkout in a real browser ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_sandbox_checkout_in_headless_chromium(live_server, page, demo, settings, sms_outbox):
    settings.PUBLIC_BASE_URL = live_server.url
    payment = services.deposit_request(booking_id=hold(demo).pk)
    assert payment.link_url.startswith(live_server.url)

    page.goto(payment.link_url)
    assert "TEST PAYMENT" in page.inner_text("body")
    assert page.inner_text("#amount") == "$50"
    page.click("#pay")
    page.wait_for_url("**/thanks/")
    assert "is confirmed" in page.inner_text("#state")

    booking = Booking.objects.get(pk=payment.booking_id)
    assert booking.status == Booking.Status.CONFIRMED
    assert Payment.objects.get(pk=payment.pk).status == "paid"
    assert len(sms_outbox) == 1 and sms_outbox[0].to_number == PHONE


def square_refund_body(payment, *, refund_id, amount, status, event_type="refund.updated"):
    """A refund event in the shape of Square's refund.created / refund.updated reference examples."""
    return {
        "merchant_id": "ML-DEMO-MERCHANT",
        "type": event_type,
        "event_id": f"evt-{refund_id}-{status}",
        "created_at": "2026-11-23T16:00:00Z",
        "data": {
            "type": "refund",
            "id": refund_id,
            "object": {
                "refund": {
                    "id": refund_id,
                    "status": status,
                    "amount_money": {"amount": amount, "currency": "USD"},
                    "payment_id": payment.payment_id,
                    "order_id": payment.order_id,
                    "location_id": "L-DEMO",
                    "created_at": "2026-11-23T16:00:00Z",
                    "updated_at": "2026-11-23T16:00:00Z",
                }
            },
        },
    }


def test_a_partial_refund_leaves_the_deposit_partly_refunded_until_the_refunds_add_up(client, square_payment):
    deliver(client, square_payment_body(square_payment))
    square_payment.refresh_from_db()
    assert square_payment.status == "paid" and square_payment.paid_cents == 5000

    # Staff refund $25 of the $50 in Square's dashboard: Square reports it as pending, then completed.
    pending = square_refund_body(
        square_payment, refund_id="R1", amount=2500, status="PENDING", event_type="refund.created"
    )
    deliver(client, pending)
    square_payment.refresh_from_db()
    assert square_payment.status == Payment.Status.REFUND_PENDING and square_payment.refunded_cents == 0
    deliver(client, square_refund_body(square_payment, refund_id="R1", amount=2500, status="COMPLETED"))
    square_payment.refresh_from_db()
    assert square_payment.status == Payment.Status.PARTIALLY_REFUNDED and square_payment.refunded_cents == 2500

    # The same event again changes nothing; the second half completes the refund.
    deliver(client, square_refund_body(square_payment, refund_id="R1", amount=2500, status="COMPLETED"))
    deliver(client, square_refund_body(square_payment, refund_id="R2", amount=2500, status="COMPLETED"))
    square_payment.refresh_from_db()
    assert square_payment.status == Payment.Status.REFUNDED and square_payment.refunded_cents == 5000
    assert set(square_payment.refunds) == {"R1", "R2"}
    assert PaymentEvent.objects.filter(event_type__startswith="refund.").count() == 3


def test_a_refund_of_another_sale_is_recorded_and_ignored(client, square_payment):
    other = Payment(payment_id="sq-pay-somebody-else", order_id="ORDER-X")
    deliver(client, square_refund_body(other, refund_id="R9", amount=1000, status="COMPLETED"))
    event = PaymentEvent.objects.get()
    assert event.status == "ignored" and not StaffAlert.objects.exists()
