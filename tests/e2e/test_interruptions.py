"""The flow when something gets in the way: the patient opts out half-way, every webhook arrives twice, the
workers crash. STOP ends all texting at once; a duplicate changes nothing; a crash loses nothing."""

import time

import pytest
import redis

from bookings.models import Booking
from conversation.models import Conversation
from inbox.models import WebhookEvent
from messaging.models import Message, OptOut

from .checks import (
    PATIENT_TEXTS,
    assert_booked,
    assert_nextech,
    assert_square,
    assert_texts,
    book_until_deposit,
    deposit_payment,
)
from .flow import Expected, outbox_settled, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_stop_after_the_deposit_link_ends_all_texting(clinic_factory, patient_factory, e2e):
    """STOP in the middle of booking: nothing is sent after the opt-out confirmation, even when the payment comes

    The patient has the deposit link and texts STOP. They get the one opt-out confirmation; then they pay anyway
    (the appointment is written to the EMR, since the money was taken), and text again: no confirmation, no
    reply, nothing."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.say("STOP") == [expect.opted_out()]
    assert patient.pay_deposit(payment.link_url, expect=0) == []
    wait_for(lambda: outbox_settled(payment), "the payment outbox")
    assert patient.say("Did my payment go through?", expect=0) == []
    patient.note("No text for the payment, and no reply: the patient opted out.")

    texts = [expect.intro(), expect.price(), expect.offer(), expect.ask_name(), link, expect.opted_out()]
    patient.assert_no_more_texts(2.0)
    assert_texts(patient, texts)

    booking = Booking.objects.get(clinic=setup.clinic)
    assert booking.status == Booking.Status.CONFIRMED and booking.start == start
    payment.refresh_from_db()
    assert payment.status == "paid" and payment.paid_cents == 5000
    assert_square(patient, payment)
    assert_nextech(patient, booking)

    optout = OptOut.objects.get(clinic=setup.clinic, phone=setup.patient_phone)
    assert optout.active and optout.source == OptOut.Source.KEYWORD
    conversation = Conversation.objects.get(clinic=setup.clinic, patient_phone=setup.patient_phone)
    assert conversation.state == Conversation.State.OPTED_OUT, conversation.state
    assert conversation.needs_staff  # the text after STOP is left for staff to read
    rows = Message.objects.filter(conversation=conversation).order_by("created_at", "pk")
    outbound = [m for m in rows if m.direction == "outbound"]
    sent = [m.body for m in outbound if m.status != Message.Status.DROPPED]
    assert sent == texts
    dropped = [m for m in outbound if m.status == Message.Status.DROPPED]
    assert [m.body for m in dropped] == [expect.confirmation(start)] and dropped[0].provider_message_id is None
    assert [m.body for m in rows if m.direction == "inbound"] == [
        *PATIENT_TEXTS,
        "STOP",
        "Did my payment go through?",
    ]
    patient.transcript.check(
        "Opt-out recorded (keyword); conversation opted_out and flagged for staff; the booking confirmation was "
        "written but dropped (never sent to Telnyx); the booking is confirmed and written to Nextech, the deposit "
        "paid."
    )
    e2e.assert_no_errors()


def test_every_webhook_delivered_twice_changes_nothing(clinic_factory, patient_factory, e2e):
    """Every webhook delivered twice at the same moment: no text, booking, payment or EMR write doubles

    Telnyx and Square retry and sometimes deliver an event twice. Here every one of them (the call, each inbound
    text, each delivery receipt, both Square payment events) arrives twice, concurrently, with the same event id."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup, duplicates=True)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    start, payment, link = book_until_deposit(patient, expect)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[
            expect.intro(),
            expect.price(),
            expect.offer(),
            expect.ask_name(),
            link,
            expect.confirmation(start),
        ],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert_nextech(patient, booking)
    telnyx_ids, square_ids = patient.webhook_ids["telnyx"], patient.webhook_ids["square"]
    assert WebhookEvent.objects.filter(event_id__in=telnyx_ids).count() == len(telnyx_ids)
    assert WebhookEvent.objects.filter(provider="square", event_id__in=square_ids).count() == len(square_ids) == 2
    deliveries = 2 * (len(telnyx_ids) + len(square_ids))
    patient.transcript.check(
        f"{deliveries} webhook deliveries ({len(telnyx_ids)} Telnyx and {len(square_ids)} Square events, each twice "
        "at once): every event recorded once; one booking, one payment, one payment link, one Nextech patient and "
        "appointment, no text twice."
    )
    e2e.assert_no_errors()


def test_workers_killed_and_restarted_mid_conversation(clinic_factory, patient_factory, e2e):
    """Both workers SIGKILLed mid-conversation and restarted: the conversation completes, nothing doubles

    After the open times, both Celery workers are killed (SIGKILL, as a crash or the OOM killer would); the
    patient's pick arrives while none is running and waits in the broker; restarted, they answer it. Killed again
    after the deposit link, the Square payment arrives while they are down, and the confirmation follows the
    restart."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.miss_call() == [expect.intro()]
    assert patient.say("How much is Botox?") == [expect.price()]
    assert patient.say("Yes, tomorrow afternoon") == [expect.offer()]

    crash(e2e, patient)
    pick = patient.say("2", wait=False)
    time.sleep(1.0)
    assert not patient.sends()[patient.seen :], "a text went out with no worker running"
    restart(e2e, patient)
    assert patient.replies_to(pick) == [expect.ask_name()]

    (link,) = patient.say("Jane Doe")
    start = expect.times()[1]
    payment = deposit_payment(setup)
    assert link == expect.deposit_link("Jane", start, payment)

    crash(e2e, patient)
    paid = patient.pay_deposit(payment.link_url, wait=False)
    time.sleep(1.0)
    restart(e2e, patient)
    assert patient.replies_to(paid) == [expect.confirmation(start)]

    booking, _ = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=[expect.intro(), expect.price(), expect.offer(), expect.ask_name(), link, expect.confirmation(start)],
        inbound=PATIENT_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert_nextech(patient, booking)
    e2e.assert_no_errors()


def test_worker_killed_while_answering_loses_nothing(clinic_factory, patient_factory, e2e):
    """The worker SIGKILLed while it holds the patient's turn: the answer still comes after the restart

    The assistant's worker has just taken the patient's text (the turn waits out its short debounce) when it is
    killed. Redis would give the task back only after its visibility timeout (an hour); the beat sweep
    (``conversation.resume_unanswered``, every 10 s) queues the turn again once the text is debounce + 10 s old."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)

    assert patient.say("How much is Botox?") == [expect.price()]
    worker = e2e.processes["worker"]
    taken = worker.log_text().count("conversation.respond[")
    offer = patient.say("Yes, tomorrow afternoon", wait=False)
    wait_for(lambda: worker.log_text().count("conversation.respond[") > taken, "the worker to take the turn", 10)
    e2e.kill_worker("worker")
    patient.note("The assistant's worker took the turn and was SIGKILLed before answering; restarted at once.")
    e2e.start_worker("worker")
    try:
        assert patient.replies_to(offer, timeout=40) == [expect.offer()]
    except AssertionError:
        patient.note("No answer within 40 s: the sweep did not queue the lost turn again.")
        raise
    finally:
        client = redis.Redis.from_url(e2e.redis_url)
        client.delete("unacked", "unacked_index")  # the lost turn would otherwise come back in an hour
        client.close()


# --- helpers ---------------------------------------------------------------------------------------------------


def idle(stack) -> bool:
    """No task queued or in a worker's hands, and no webhook waiting to be processed."""
    client = redis.Redis.from_url(stack.redis_url)
    try:
        queued = sum(client.llen(q) for q in ("default", "inbound", "sms", "ai", "emr", "periodic"))
        busy = queued or client.hlen("unacked")
    finally:
        client.close()
    return not busy and not WebhookEvent.objects.filter(status="pending").exists()


def crash(stack, patient):
    wait_for(lambda: idle(stack), "the workers to be idle")
    started = time.monotonic()
    stack.kill_worker("worker")
    stack.kill_worker("worker-sms")
    patient.note(f"Both Celery workers SIGKILLed (in {time.monotonic() - started:.2f} s).")


def restart(stack, patient):
    started = time.monotonic()
    stack.start_worker("worker", wait=False)
    stack.start_worker("worker-sms", wait=False)
    stack.wait_worker("worker")
    stack.wait_worker("worker-sms")
    patient.note(f"Both workers restarted (ready in {time.monotonic() - started:.2f} s).")
