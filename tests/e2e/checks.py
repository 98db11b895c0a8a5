"""The booking dialogue every scenario goes through, and the final state each one must leave behind: the rows in
PostgreSQL and what the fake providers were asked to do."""

import contextlib
from datetime import datetime, timedelta

from bookings.models import Booking
from conversation.models import Conversation, Turn
from inbox.models import WebhookEvent
from messaging.models import Message
from payments.models import OutboxItem, Payment

from .flow import Expected, Patient, Setup, wait_for
from .stack import TELNYX_API_KEY


def book_until_deposit(patient: Patient, expect: Expected):
    """From "How much is Botox?" to the deposit link: the price from the catalog, three real open times tomorrow
    afternoon, the second one held under the patient's name, the $50 Square link. Returns (start, payment, the
    deposit link's text)."""
    assert patient.say("How much is Botox?") == [expect.price()]
    assert patient.say("Yes, tomorrow afternoon") == [expect.offer()]
    assert patient.say("2") == [expect.ask_name()]
    (link_text,) = patient.say("Jane Doe")
    start = expect.times()[1]
    payment = deposit_payment(patient.setup)
    assert link_text == expect.deposit_link("Jane", start, payment)
    assert payment.link_url.startswith("https://square.link/u/")
    booking = payment.booking
    assert booking.status == Booking.Status.AWAITING_DEPOSIT and booking.start == start
    return start, payment, link_text


def deposit_payment(setup) -> Payment:
    """The clinic's one deposit (each scenario has its own clinic)."""
    return Payment.objects.get(clinic=setup.clinic)


PATIENT_TEXTS = ["How much is Botox?", "Yes, tomorrow afternoon", "2", "Jane Doe"]


def assert_texts(patient: Patient, expected: list[str]):
    """Exactly these texts reached the patient, in this order, and nothing else (checked after a quiet moment)."""
    patient.assert_no_more_texts()
    assert patient.received() == expected
    patient.transcript.check(f"The patient received exactly {len(expected)} texts, in the order shown.")


def assert_booked(
    patient: Patient,
    *,
    start,
    payment: Payment,
    texts: list[str],
    inbound: list[str],
    origin: str,
    conversation_state=Conversation.State.CONFIRMED,
):
    """The final state after a paid, confirmed booking."""
    setup: Setup = patient.setup
    note = patient.transcript.check
    assert_texts(patient, texts)

    booking = Booking.objects.get(clinic=setup.clinic)  # exactly one: nothing doubled
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.service == setup.service and booking.provider == setup.provider
    assert (booking.start, booking.end) == (start, start + timedelta(minutes=30))
    assert (booking.patient_name, booking.patient_phone) == (patient.name, setup.patient_phone)
    assert booking.deposit_cents == 5000 and booking.hold_expires_at is None
    note(f"Booking #{booking.pk}: confirmed, Botox with {booking.provider.name}, {start.isoformat()}, {patient.name}.")

    payment.refresh_from_db()
    link = assert_square(patient, payment)
    assert payment.booking_id == booking.pk
    assert payment.status == Payment.Status.PAID and payment.paid_cents == payment.amount_cents == 5000
    assert payment.provider == "square" and payment.provider_status == "COMPLETED"
    assert payment.payment_id == patient.paid["payment"]["id"]
    events = dict(WebhookEvent.objects.about(payment).values_list("event_type", "status"))
    # Each recorded once. payment.created (APPROVED) is noted, or ignored when payment.updated (COMPLETED) was
    # processed first: events queued while the workers were down are taken in any order, as Square may send them.
    assert events["payment.updated"] == "processed" and events["payment.created"] in ("processed", "ignored")
    assert WebhookEvent.objects.about(payment).count() == 2
    assert list(OutboxItem.objects.filter(payment=payment).values_list("kind", "status").order_by("pk")) == [
        ("confirm_booking", "done"),
        ("send_confirmation", "done"),
    ]
    note(
        f"Payment #{payment.pk}: paid $50.00 through Square link {link['id']} (order {payment.order_id}); "
        "payment.created and payment.updated recorded once each; outbox steps confirm and text done."
    )

    conversation = Conversation.objects.get(clinic=setup.clinic, patient_phone=setup.patient_phone)
    assert conversation.origin == origin
    assert conversation.state == conversation_state, conversation.state
    assert conversation.booking_id == booking.pk and conversation.service_id == setup.service.pk
    assert conversation.patient_name == patient.name and conversation.owner == Conversation.Owner.ASSISTANT
    assert not conversation.needs_staff
    turns = Turn.objects.filter(conversation=conversation)
    assert turns.count() == len(inbound) and set(turns.values_list("engine", flat=True)) == {"rules"}
    note(f"Conversation #{conversation.pk}: origin {origin}, state {conversation.state}, {turns.count()} rules turns.")

    assert_messages(patient, conversation, texts=texts, inbound=inbound)
    return booking, conversation


def assert_square(patient: Patient, payment: Payment) -> dict:
    """One payment link was created at Square, with the clinic's own token and location, for $50."""
    calls = [c for c in patient.stack.square.calls() if c["path"] == "/v2/online-checkout/payment-links"]
    assert len(calls) == 1, calls
    (call,) = calls
    assert call["headers"]["authorization"] == "Bearer EAAA-test-token"
    body = call["json"]
    assert body["idempotency_key"] == payment.idempotency_key
    assert body["quick_pay"] == {
        "name": f"{patient.setup.clinic.name}: Botox deposit",
        "price_money": {"amount": 5000, "currency": "USD"},
        "location_id": "L-DEMO",
    }
    assert body["pre_populated_data"] == {"buyer_phone_number": patient.phone}
    assert body["checkout_options"]["redirect_url"].startswith(f"{patient.stack.base_url}/pay/")
    (link,) = patient.stack.square.state()["links"].values()
    assert (payment.link_id, payment.link_url, payment.order_id) == (link["id"], link["url"], link["order_id"])
    return link


def assert_messages(patient: Patient, conversation, *, texts, inbound):
    """Message rows: the patient's texts in, the clinic's texts out, each sent once through Telnyx and delivered."""
    stack, setup = patient.stack, patient.setup
    rows = Message.objects.filter(conversation=conversation).order_by("created_at", "pk")
    # The last delivery receipts were posted a moment ago: let the worker file them (the asserts below say what not).
    with contextlib.suppress(AssertionError):
        wait_for(
            lambda: (
                not rows.filter(direction="outbound").exclude(status=Message.Status.DELIVERED).exists()
                and not WebhookEvent.objects.filter(status=WebhookEvent.Status.PENDING).exists()
            ),
            "the delivery receipts to be processed",
            timeout=15,
        )
    received = [m.body for m in rows if m.direction == Message.Direction.INBOUND]
    assert received == inbound
    outbound = [m for m in rows if m.direction == Message.Direction.OUTBOUND]
    assert [m.body for m in outbound] == texts
    sends = [s for s in patient.sends() if s.get("status") == 200]
    assert [m.provider_message_id for m in outbound] == [s["response"]["data"]["id"] for s in sends]
    assert all(m.status == Message.Status.DELIVERED for m in outbound), [(m.body[:30], m.status) for m in outbound]
    keys = [s["headers"].get("Idempotency-Key") for s in sends]
    assert len(set(keys)) == len(keys) == len(texts), keys
    for send in sends:
        assert send["headers"]["Authorization"] == f"Bearer {TELNYX_API_KEY}"
        assert send["json"]["from"] == setup.number
        assert send["json"]["messaging_profile_id"].startswith("e2e-profile-")
        assert send["json"]["webhook_url"] == f"{stack.base_url}/webhooks/telnyx/messages"
    telnyx_events = patient.webhook_ids["telnyx"]
    recorded = WebhookEvent.objects.filter(provider="telnyx", event_id__in=telnyx_events)
    assert recorded.count() == len(set(telnyx_events))
    assert set(recorded.values_list("status", flat=True)) <= {"processed", "ignored"}
    who = f"Patient {patient.label}'s message rows" if patient.label else "Message rows"
    patient.transcript.check(
        f"{who}: {len(inbound)} in, {len(outbound)} out, each sent once to Telnyx (distinct idempotency "
        f"keys) and delivered; {recorded.count()} Telnyx webhooks recorded once each, none failed."
    )


def assert_nextech(patient: Patient, booking: Booking):
    """The appointment was written to Nextech once: a new patient, then a proposed Appointment for the slot."""
    calls = patient.stack.nextech.calls()
    state = patient.stack.nextech.state()
    (appointment,) = state["appointments"].values()
    assert booking.emr_appointment_id == appointment["id"]
    posts = [c for c in calls if c["method"] == "POST" and c["path"] == "/Appointment"]
    assert len(posts) == 1
    assert appointment["status"] == "proposed" and f"booking:{booking.pk}" in appointment["comment"]
    assert datetime.fromisoformat(appointment["start"]) == booking.start
    actors = {p["actor"]["reference"] for p in appointment["participant"]}
    (patient_id,) = state["patients"]  # the prospect Nextech made from the appointment's contained Patient
    assert actors == {f"patient/{patient_id}", "location/1", "practitioner/9"}
    extensions = appointment["extension"]
    types = [e["valueReference"]["reference"] for e in extensions if e["url"].endswith("/appointment-type")]
    assert types == ["appointment-type/12"]
    (person,) = state["patients"].values()
    given, family = patient.name.split()
    assert person["name"][0]["family"] == family and person["name"][0]["given"] == [given]
    phones = ["".join(c for c in t["value"] if c.isdigit()) for t in person["telecom"] if t["system"] == "phone"]
    assert patient.phone[2:] in phones  # sent as Nextech stores it, "(NPA) NXX-XXXX"
    assert all(c["headers"].get("nx-practice-id") == "PRACTICE-1" for c in calls if c["path"] != "/token")
    patient.transcript.check(
        f"Nextech: Patient/{patient_id} created for {patient.name} and Appointment/{appointment['id']} (proposed, "
        f"practitioner 9, type 12, {appointment['start']}, comment booking:{booking.pk}) written once; "
        f"{len(calls)} FHIR calls in all."
    )
