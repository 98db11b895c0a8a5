"""The database is the source of truth: what Redis or a killed sender loses, beat's sweeps find again in PostgreSQL.

- Redis flushed (FLUSHALL) while a patient's text, then the assistant's turn, then the Square payment's events wait in
  it, and killed and started again empty in the middle of a burst of other patients' texts: ``inbox.sweep`` (events
  pending 20 s, failed and due, past their 60 s lease), ``conversation.resume_unanswered`` (texts without a turn),
  ``messaging.reconcile_messages`` (texts queued 30 s) and ``payments.outbox_sweep`` queue the work again, and
  nothing is done twice.
- The sending workers (``worker``, whose turns send their replies while the sms queue is idle, and ``worker-sms``)
  SIGKILLed while sends are in flight at a slow Telnyx, and texts whose row stayed ``sending`` or
  ``unknown``: the reconcile sweep asks Telnyx by id when it has one, and hands the conversation to staff when it
  cannot tell (Telnyx has no search), never sending a second copy.
"""

import collections
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest
from django.utils import timezone

from conversation.models import Conversation, Turn
from inbox.models import WebhookEvent
from medspa.models import StaffAlert
from messaging.models import Message

from . import report
from .checks import PATIENT_TEXTS, assert_booked, assert_nextech, deposit_payment
from .flow import Expected, Patient, Step, wait_for
from .stack import SMS_STUCK_SECONDS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

QUESTION = "How much is Botox?"
Status = Message.Status


# --- helpers ----------------------------------------------------------------------------------------------------


def settle(stack, timeout=30):
    """Nothing queued or in a worker's hands, no webhook event waiting: a quiet moment to break something in."""

    def quiet():
        client = stack.redis_client()
        try:
            busy = stack.queued() or client.hlen("unacked")
        finally:
            client.close()
        return not busy and not WebhookEvent.objects.filter(status__in=["pending", "processing"]).exists()

    wait_for(quiet, "the stack to be idle", timeout)


def queued_tasks(stack, *queues) -> list[str]:
    """The names of the tasks waiting in these broker queues (the kombu message headers)."""
    client = stack.redis_client()
    try:
        names = []
        for queue in queues:
            for raw in client.lrange(queue, 0, -1):
                names.append(json.loads(raw).get("headers", {}).get("task", "?"))
        return names
    finally:
        client.close()


def counted(names) -> str:
    return ", ".join(f"{name} x{n}" for name, n in sorted(collections.Counter(names).items())) or "nothing"


def flush(stack, patient, what):
    """FLUSHALL, noting what it threw away."""
    lost = queued_tasks(stack, "inbound", "ai", "sms", "default", "emr", "periodic")
    stack.flush_redis()
    assert stack.queued() == 0
    patient.note(f"Redis FLUSHALL {what}: lost {counted(lost)} (and every cache entry).")
    return lost


def other_patients(stack, setup, count, transcript, **kwargs) -> list[Patient]:
    """``count`` more patients of the same clinic (fictional 555-01xx numbers other than the clinic's and the first
    patient's), each with a conversation of their own."""
    taken = {setup.number, setup.patient_phone, setup.clinic.front_desk_phone}
    phones = [p for p in (f"+120855501{i:02d}" for i in range(60, 100)) if p not in taken][:count]
    assert len(phones) == count
    return [Patient(stack, replace(setup, patient_phone=phone), transcript, **kwargs) for phone in phones]


def side_transcript() -> report.Transcript:
    """Where the many patients' steps go (the scenario's own transcript gets notes on them)."""
    return report.Transcript(nodeid="", title="", summary="")


def noter(transcript):
    def note(text):
        transcript.add(Step("note", text))

    return note


def outbound(patient) -> list[Message]:
    return list(
        Message.objects.filter(
            clinic=patient.setup.clinic, to_number=patient.phone, direction=Message.Direction.OUTBOUND
        ).order_by("pk")
    )


def alert_for(message) -> StaffAlert | None:
    return StaffAlert.objects.filter(dedupe_key=f"sms-unsettled:{message.pk}").first()


def where_they_stopped(stack, patients) -> str:
    """For a scenario that timed out: each patient's texts, turns and replies (ids and states), what waits in the
    broker, and the workers' last log lines (ids only, as every log line here)."""
    lines = []
    for p in patients:
        conversation = Conversation.objects.filter(clinic=p.setup.clinic, patient_phone=p.phone).first()
        inbound = Message.objects.filter(clinic=p.setup.clinic, from_number=p.phone).order_by("pk")
        lines.append(
            f"conversation {conversation and conversation.pk} state={conversation and conversation.state} "
            f"handled_through={conversation and conversation.handled_through}; inbound "
            f"{[(m.pk, m.status, Turn.objects.filter(inbound=m).count()) for m in inbound]}; outbound "
            f"{[(m.pk, m.status, m.attempts) for m in outbound(p)]}"
        )
    lines.append(f"queued: {counted(queued_tasks(stack, 'inbound', 'ai', 'sms', 'default', 'emr', 'periodic'))}")
    for name in ("worker", "worker-sms", "beat"):
        if name in stack.processes:
            lines.append(f"--- {name} ---\n{stack.processes[name].tail(25)}")
    return "\n".join(lines)


def clean_unacked(stack):
    """Deliveries a killed worker held stay in Redis's unacked set until the visibility timeout (an hour); the rows
    they were about are settled, so drop them rather than have the next scenario's teardown wait on them."""
    client = stack.redis_client()
    try:
        client.delete("unacked", "unacked_index")
    finally:
        client.close()


# --- Redis flushed and restarted -----------------------------------------------------------------------------------


def test_redis_flushed_mid_conversation_and_after_a_payment_loses_nothing(clinic_factory, patient_factory, e2e):
    """Redis flushed mid-conversation and after the payment, and restarted during a burst of 20 patients' texts: the
    booking completes, everyone is answered, nothing doubles

    The stack runs on its own Redis (no persistence, as in production). A patient who called books by text; Redis is
    flushed (FLUSHALL) three times while work waits in it: the patient's text in the inbound queue (its worker busy:
    here, stopped), the assistant's turn in the ai queue, and the Square payment's two events. Then 20 other patients
    text the clinic at once, and Redis is SIGKILLed and started again, empty, in the middle of it: texts arrive while
    it is down. Nobody runs anything by hand: the sweeps find the work in PostgreSQL."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup)
    expect = Expected(setup)
    ids = {}

    assert patient.miss_call() == [expect.intro()]
    assert patient.say(PATIENT_TEXTS[0]) == [expect.price()]

    # 1. The patient's text is in the inbound queue when Redis is flushed: inbox.sweep (pending > 20 s) requeues it.
    settle(e2e)
    e2e.kill_worker("worker-inbound")
    offer = patient.say(PATIENT_TEXTS[1], wait=False)
    wait_for(lambda: "inbox.process_event" in queued_tasks(e2e, "inbound"), "the text's event in the queue", 15)
    assert "inbox.process_event" in flush(e2e, patient, "with the patient's text in the inbound queue")
    e2e.start_worker("worker-inbound")
    assert patient.replies_to(offer, timeout=90) == [expect.offer()]

    # 2. The assistant's turn is in the ai queue when Redis is flushed: conversation.resume_unanswered requeues it.
    settle(e2e)
    e2e.kill_worker("worker")
    inbound = e2e.processes["worker-inbound"]
    done = inbound.log_text().count("webhook event processed")
    pick = patient.say(PATIENT_TEXTS[2], wait=False)
    # Logged after the event's transaction and its on-commit publish of conversation.respond.
    wait_for(lambda: inbound.log_text().count("webhook event processed") > done, "the text to be recorded", 15)
    assert "conversation.respond" in flush(e2e, patient, "with the assistant's turn in the ai queue")
    e2e.start_worker("worker")
    assert patient.replies_to(pick, timeout=90) == [expect.ask_name()]

    (link,) = patient.say(PATIENT_TEXTS[3])
    start = expect.times()[1]
    payment = deposit_payment(setup)
    assert link == expect.deposit_link("Jane", start, payment)

    # 3. The payment's events are in the inbound queue when Redis is flushed: inbox.sweep requeues them.
    settle(e2e)
    e2e.kill_worker("worker-inbound")
    paid = patient.pay_deposit(payment.link_url, wait=False)
    wait_for(lambda: queued_tasks(e2e, "inbound").count("inbox.process_event") >= 2, "the payment's events", 15)
    assert flush(e2e, patient, "right after Square's payment webhooks").count("inbox.process_event") == 2
    e2e.start_worker("worker-inbound")
    assert patient.replies_to(paid, timeout=90) == [expect.confirmation(start)]

    # 4. Redis SIGKILLed and started again, empty, while 20 other patients text the clinic.
    settle(e2e)
    before = e2e.log_offsets()
    burst = other_patients(e2e, setup, 20, side_transcript())
    supervision = e2e.supervised()  # a worker that exits when Redis vanishes is restarted, as compose does
    restarted = supervision.__enter__()
    try:
        steps = {}
        with ThreadPoolExecutor(max_workers=7) as pool:

            def text(group):
                steps.update(zip(group, pool.map(lambda p: p.say(QUESTION, wait=False), group), strict=True))

            text(burst[:7])
            e2e.kill_redis()
            down = time.monotonic()
            text(burst[7:14])  # the web still answers 200: the events are in PostgreSQL, their tasks nowhere
            time.sleep(max(0.0, 3.0 - (time.monotonic() - down)))
            e2e.start_redis()
            ids["down"] = time.monotonic() - down
            text(burst[14:])
        patient.note(
            f"20 other patients text {QUESTION!r} at once: 7 texts, then Redis SIGKILLed, 7 texts while it is down "
            f"({ids['down']:.1f} s), Redis started again (empty, no persistence), 6 more texts."
        )
        for other in burst:  # each within two minutes of their own text
            step = steps[other]
            left = 120 - (time.monotonic() - step.started)
            assert other.replies_to(step, timeout=max(left, 0.1)) == [expect.price()], other.phone
        supervision.__exit__(None, None, None)
        if restarted:
            patient.note(
                f"{', '.join(sorted(set(restarted)))} exited when Redis vanished under it and was restarted within a "
                "second, as docker-compose's `restart: unless-stopped` does."
            )
        window = e2e.logs_between(before)
        after_restart = e2e.log_offsets()
        seconds = answer_seconds(burst)
        assert max(seconds) <= 120, seconds
        patient.transcript.add(
            Step("patient", f"The 20 other patients, each: {QUESTION}", [expect.price()], max(seconds))
        )
        patient.note(
            f"Every one of the 20 answered exactly once, at most {max(seconds):.1f} s after the web took their text "
            f"(median {sorted(seconds)[10]:.1f} s; from the event's arrival to the reply's send); nobody ran anything."
        )
        booking, _ = assert_booked(
            patient,
            start=start,
            payment=payment,
            texts=[expect.intro(), expect.price(), expect.offer(), expect.ask_name(), link, expect.confirmation(start)],
            inbound=PATIENT_TEXTS,
            origin=Conversation.Origin.MISSED_CALL,
        )
        assert_nextech(patient, booking)
        assert_burst(burst, expect)
        hooks = sum(len(p.webhook_ids["telnyx"]) for p in burst)
        patient.transcript.check(
            f"The 20 other patients: each received the price once (20 texts, 20 distinct idempotency keys), one "
            f"inbound and one outbound row each (delivered), one turn each; their {hooks} Telnyx webhooks recorded "
            "once each, none pending or failed."
        )
    finally:
        supervision.__exit__(None, None, None)
        for other in burst:
            other.close()

    events = WebhookEvent.objects.filter(clinic=setup.clinic)
    texts = events.filter(event_type="message.received")
    # Each text processed as the text it is: none recorded failed and then "ignored" as its own duplicate (what a
    # broker error raised after the event's commit used to do).
    assert set(texts.values_list("status", "reason")) == {("processed", "text received")}
    sweep = e2e.scenario_logs()["worker"]
    again = sum(int(n) for n in re.findall(r"inbox sweep queued (\d+) event", sweep))
    patient.transcript.check(
        f"{events.count()} webhook events, each recorded once, the {texts.count()} texts each processed once as a "
        f"text; the inbox sweep queued {again} of them again (their tasks lost with Redis)."
    )
    records = log_records(window)
    redis_down = (*REDIS_DOWN, f"127.0.0.1:{e2e.redis_port}")  # a task that failed on the unreachable Redis
    exits = [r for r in records if r[1] == "CRITICAL" and WORKER_EXIT_ON_BROKER_LOSS in r[2]]
    assert {name for name, _, _ in exits} <= set(restarted), (exits, restarted)  # an exit, and it was restarted
    unexpected = [
        r
        for r in records
        if r[1] in ("ERROR", "CRITICAL") and not any(a in r[2] for a in redis_down) and r not in exits
    ]
    assert not unexpected, "errors while Redis was down beyond the broker being unreachable:\n" + "\n".join(
        " ".join(r) for r in unexpected[:20]
    )
    patient.transcript.check(
        "Logged from the Redis kill until all 20 were answered (warnings and errors; nothing else): "
        + summarise(records)
    )
    e2e.assert_no_errors(texts=e2e.logs_between(e2e.scenario_log_offsets, before))  # before the restart
    e2e.assert_no_errors(texts=e2e.logs_between(after_restart))  # once everyone was answered


def assert_burst(burst, expect):
    """Each of the burst's patients: one text in, one reply out, sent once and delivered, their webhooks once."""
    for other in burst:
        other.assert_no_more_texts(0.0)
        assert other.received() == [expect.price()], (other.phone, other.received())
    for other in burst:
        conversation = Conversation.objects.get(clinic=other.setup.clinic, patient_phone=other.phone)
        rows = Message.objects.filter(conversation=conversation)
        assert [m.body for m in rows.filter(direction="inbound")] == [QUESTION]
        wait_for(
            lambda rows=rows: not rows.filter(direction="outbound").exclude(status=Status.DELIVERED).exists(),
            "the burst's delivery receipts",
            30,
        )
        (reply,) = rows.filter(direction="outbound")
        (send,) = other.sends()
        assert reply.provider_message_id == send["response"]["data"]["id"]
        assert Turn.objects.filter(conversation=conversation).count() == 1
        recorded = WebhookEvent.objects.filter(provider="telnyx", event_id__in=other.webhook_ids["telnyx"])
        wait_for(
            lambda recorded=recorded: set(recorded.values_list("status", flat=True)) <= {"processed", "ignored"},
            "the burst's webhooks to be processed",
            60,
        )
        assert recorded.count() == len(other.webhook_ids["telnyx"]) == 3  # the text, message.sent, finalized
    keys = [s["headers"].get("Idempotency-Key") for other in burst for s in other.sends()]
    assert len(set(keys)) == len(keys) == len(burst)


def answer_seconds(patients) -> list[float]:
    """Per patient: from the web recording their text (the inbox event) to their reply's send (the message row)."""
    seconds = []
    for p in patients:
        (event,) = WebhookEvent.objects.filter(
            provider="telnyx", event_id__in=p.webhook_ids["telnyx"], event_type="message.received"
        )
        (reply,) = outbound(p)
        seconds.append((reply.sent_at - event.received_at).total_seconds())
    return seconds


# What the processes may log as errors while their Redis is down: the broker cannot be reached.
REDIS_DOWN = (
    "Cannot connect to redis",  # a worker's consumer, reconnecting
    "Couldn't apply scheduled task",  # beat
    "reason:network:ConnectionError",  # "Couldn't ack": a finished task comes back later and finds its row done
)
# kombu's Redis transport, when the broker vanishes while a task is unacknowledged, may fail to restore it as it
# closes the channel (the connection is already gone: ``conninfo.hostname`` of None, as in celery/kombu#582 and #970)
# and the worker exits with this line. The unacked task is not lost (it is in the "unacked" hash, and our sweeps
# rebuild from PostgreSQL), and the worker is restarted by its supervisor: allowed only for a worker that was.
WORKER_EXIT_ON_BROKER_LOSS = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"
CELERY_RECORD = re.compile(r"^\[[\d\- :,]+: (\w+)/[^\]]*\] (.*)$")
DJANGO_RECORD = re.compile(r"^[\d\-]+ [\d:,]+ (\w+) \S+ (.*)$")


def log_records(texts: dict) -> list[tuple[str, str, str]]:
    """(process, level, message) of the warnings and errors the app's processes logged (tracebacks left out)."""
    records = []
    for name, text in texts.items():
        if name in ("redis", "telnyx", "square", "nextech", "openai"):
            continue
        for line in text.splitlines():
            match = CELERY_RECORD.match(line) or DJANGO_RECORD.match(line)
            if match and match.group(1) in ("WARNING", "ERROR", "CRITICAL") and "Warning:" not in match.group(2):
                records.append((name, match.group(1), match.group(2).strip()))
    return records


def summarise(records) -> str:
    """The records grouped by process, level and gist (ids, numbers and ports dropped)."""
    gists = collections.Counter()
    for name, level, message in records:
        gist = re.sub(r"\b[0-9a-f]{8}-[0-9a-f-]{27}\b", "<id>", message)
        gist = re.sub(r"\[[\d, ]*\]", "[...]", gist)
        gist = re.sub(r"\d+", "N", gist)[:140]
        gists[(name, level, gist)] += 1
    return "; ".join(f"{name} {level} x{n}: {gist}" for (name, level, gist), n in gists.most_common(15)) or "nothing"


# --- Stranded sends ------------------------------------------------------------------------------------------------


def test_killed_workers_with_sends_in_flight_strand_no_text(clinic_factory, e2e, transcript):
    """The sending workers SIGKILLed with sends in flight at a slow Telnyx: each of six patients gets their reply
    once, and the texts whose fate only Telnyx knows go to staff

    Six patients text the clinic at once; Telnyx (the fake) takes 5 s to answer a send. A turn sends its reply from
    its own process while the sms queue is idle (``messaging.send_here_or_enqueue``), so the sends wait on Telnyx in
    ``worker``'s threads (and ``worker-sms``'s, for any that went through the queue). While at least two wait, both
    workers are SIGKILLed and started again. The texts not yet sent or not yet answered go out afterwards (the sweeps
    queue what the killed workers held: unanswered turns, queued rows); the ones in flight reached Telnyx (the
    patients have them) but their rows stayed ``sending`` without a provider id. After SMS_STUCK_SECONDS the
    reconcile sweep asks: Telnyx cannot be searched without the id, so each is marked unknown, its conversation
    flagged for staff and one staff alert raised; none is sent again."""
    setup = clinic_factory("nextech")
    expect = Expected(setup)
    patients = other_patients(e2e, setup, 6, side_transcript(), receipts=False)
    senders = ("worker", "worker-sms")
    try:
        e2e.telnyx.config(send_delay=5)
        steps = {p: p.say(QUESTION, wait=False) for p in patients}

        def in_flight():
            held = [f for f in e2e.telnyx.state()["in_flight"] if not f["done"]]
            sending = Message.objects.filter(clinic=setup.clinic, status=Status.SENDING).count()
            return len(held) == sending >= 2 and all(time.time() - f["arrived"] < 3 for f in held)

        wait_for(in_flight, "at least two sends waiting on Telnyx", 60)
        killed = time.monotonic()
        for name in senders:
            e2e.kill_worker(name)
        stranded = list(Message.objects.filter(clinic=setup.clinic, status=Status.SENDING).order_by("pk"))
        e2e.telnyx.config(send_delay=0)
        for name in senders:
            e2e.start_worker(name)
        note = noter(transcript)
        note(
            f"6 patients text {QUESTION!r} at once; Telnyx answers sends after 5 s. worker and worker-sms SIGKILLed "
            f"with {len(stranded)} sends in flight (messages {[m.pk for m in stranded]}: sending, no provider id); "
            "restarted at once."
        )
        try:
            wait_for(
                lambda: all(len(p.sends()) >= 1 for p in patients), "every patient's reply at Telnyx", 120, interval=0.5
            )
        except AssertionError as error:  # say where each unanswered patient's text stopped (ids and states only)
            unanswered = [p for p in patients if not p.sends()]
            raise AssertionError(f"{error}\n{where_they_stopped(e2e, unanswered)}") from None
        for p in patients:
            assert p.replies_to(steps[p], timeout=5) == [expect.price()]
        slowest = max(time.monotonic() - step.started for step in steps.values())
        transcript.add(Step("patient", f"Six patients, each: {QUESTION}", [expect.price()], slowest))
        note(f"All 6 replies reached Telnyx, one each, the last {time.monotonic() - killed:.1f} s after the kill.")

        def settled():
            rows = Message.objects.filter(pk__in=[m.pk for m in stranded])
            return not rows.filter(status=Status.SENDING).exists() and all(alert_for(m) for m in stranded)

        bound = int(SMS_STUCK_SECONDS)
        wait_for(settled, "the reconcile sweep to settle the stranded texts", bound + 90, interval=0.5)
        note(
            f"The reconcile sweep settled all {len(stranded)} {time.monotonic() - killed:.1f} s after the kill "
            f"(SMS_STUCK_SECONDS={bound}, every 30 s): Telnyx cannot be asked without the id -> unknown, staff told."
        )
        for p in patients:
            p.assert_no_more_texts(0.0)
        time.sleep(2.0)
        for p in patients:
            assert p.received() == [expect.price()], (p.phone, p.received())
            (row,) = outbound(p)
            conversation = Conversation.objects.get(clinic=setup.clinic, patient_phone=p.phone)
            (send,) = p.sends()
            if row.pk in {m.pk for m in stranded}:
                assert row.status == Status.UNKNOWN and row.provider_message_id is None and row.attempts == 1
                assert conversation.needs_staff
                alert = alert_for(row)
                assert alert.kind == StaffAlert.Kind.HANDOFF and f"Text #{row.pk}" in alert.text
                assert f"conversation #{conversation.pk}" in alert.text and p.phone not in alert.text
            else:
                assert row.status == Status.SENT and row.provider_message_id == send["response"]["data"]["id"]
                assert not conversation.needs_staff and alert_for(row) is None
        keys = [s["headers"].get("Idempotency-Key") for p in patients for s in p.sends()]
        assert len(set(keys)) == len(keys) == 6
        assert not Message.objects.filter(clinic=setup.clinic, status__in=[Status.SENDING, Status.QUEUED]).exists()
        log = e2e.processes["worker-sms"].log_text()  # the reconcile sweep runs on the sms queue
        for m in stranded:
            assert f"stuck text reconciled message={m.pk} provider=telnyx outcome=unsettled" in log
        transcript.check(
            "6 replies, 6 sends to Telnyx (distinct idempotency keys), each patient's text exactly once; the rows not "
            "in flight sent with Telnyx's id; the stranded rows unknown (no id, 1 attempt), their conversations "
            "flagged for staff and one 'Conversation needs a person' alert each (ids only); no row left queued or "
            "sending."
        )
        e2e.assert_no_errors()
    finally:
        clean_unacked(e2e)
        for p in patients:
            p.close()


def test_a_stuck_text_is_reconciled_with_the_provider(clinic_factory, e2e, transcript):
    """Texts stuck in sending or unknown are settled with Telnyx: by id when we have it, else handed to staff, never
    sent twice

    Three patients of the clinic get their reply; none of Telnyx's delivery receipts come. A: its row is left
    ``unknown`` with Telnyx's id, and Telnyx has since delivered it. B: the write after the send was lost, so its row
    is still ``sending`` without an id. C: Telnyx (the fake) takes 13 s to answer, past the 10 s read timeout, so the
    worker marks it ``unknown`` with no id (Telnyx took it anyway). The rows are dated back by SMS_STUCK_SECONDS
    (the minute they would sit there; the killed-worker scenario waits it for real). The reconcile sweep asks
    Telnyx about A by id and records it delivered; B and C cannot be looked up (Telnyx has no search), so their
    conversations are flagged for staff with one alert each, and nobody gets a second copy."""
    setup = clinic_factory("nextech")
    expect = Expected(setup)
    a, b, c = other_patients(e2e, setup, 3, side_transcript(), receipts=False)
    note = noter(transcript)
    try:
        for label, p in (("A", a), ("B", b)):
            step = p.say(QUESTION, wait=False)
            assert p.replies_to(step) == [expect.price()]
            transcript.add(Step("patient", f"{label}: {QUESTION}", [expect.price()], step.seconds))
        wait_for(lambda: all(outbound(p) and outbound(p)[0].status == Status.SENT for p in (a, b)), "A, B sent", 10)
        (row_a,), (row_b,) = outbound(a), outbound(b)

        e2e.telnyx.config(send_delay=13)
        step_c = c.say(QUESTION, wait=False)
        wait_for(lambda: outbound(c) and outbound(c)[0].status == Status.UNKNOWN, "C's send to time out", 40)
        e2e.telnyx.config(send_delay=0)
        assert c.replies_to(step_c, timeout=20) == [expect.price()]  # Telnyx took it after all
        transcript.add(Step("patient", f"C: {QUESTION}", [expect.price()], step_c.seconds))
        (row_c,) = outbound(c)
        assert row_c.provider_message_id is None and "timeout" in row_c.error_detail

        stuck = timezone.now() - timedelta(seconds=int(SMS_STUCK_SECONDS) + 1)
        Message.objects.filter(pk=row_a.pk).update(status=Status.UNKNOWN, updated_at=stuck)
        e2e.telnyx.set_status(row_a.provider_message_id, "delivered")
        Message.objects.filter(pk=row_b.pk).update(
            status=Status.SENDING, provider_message_id=None, sent_at=None, updated_at=stuck
        )
        Message.objects.filter(pk=row_c.pk).update(updated_at=stuck)
        dated = time.monotonic()
        note(
            f"Rows left stuck: A #{row_a.pk} unknown with Telnyx's id (Telnyx: delivered); B #{row_b.pk} sending, no "
            f"id (the write after the send lost); C #{row_c.pk} unknown, no id (read timeout); all dated "
            f"{SMS_STUCK_SECONDS} s back."
        )

        def settled():
            rows = {m.pk: m for m in Message.objects.filter(pk__in=[row_a.pk, row_b.pk, row_c.pk])}
            return rows[row_a.pk].status == Status.DELIVERED and all(alert_for(rows[m.pk]) for m in (row_b, row_c))

        wait_for(settled, "the reconcile sweep", 75, interval=0.5)
        note(f"The reconcile sweep settled all three {time.monotonic() - dated:.1f} s later (it runs every 30 s).")
        time.sleep(2.0)

        row_a.refresh_from_db()
        assert row_a.status == Status.DELIVERED and row_a.delivered_at and row_a.sent_at
        lookups = [entry["path"] for entry in e2e.telnyx.state()["lookups"]]
        assert lookups.count(f"/v2/messages/{row_a.provider_message_id}") == 1, lookups
        assert len(lookups) == 1, lookups  # B and C: no id to ask about
        assert alert_for(row_a) is None
        assert not Conversation.objects.get(clinic=setup.clinic, patient_phone=a.phone).needs_staff
        for p, row in ((b, row_b), (c, row_c)):
            row.refresh_from_db()
            assert row.status == Status.UNKNOWN and row.provider_message_id is None
            conversation = Conversation.objects.get(clinic=setup.clinic, patient_phone=p.phone)
            assert conversation.needs_staff
            alert = alert_for(row)
            assert alert.kind == StaffAlert.Kind.HANDOFF and alert.object_id == str(row.pk)
            assert f"Text #{row.pk}" in alert.text and f"conversation #{conversation.pk}" in alert.text
            assert p.phone not in alert.text
        for p in (a, b, c):
            p.assert_no_more_texts(0.0)
            assert p.received() == [expect.price()] and len(p.sends()) == 1
        transcript.check(
            f"A #{row_a.pk}: asked by id (GET /v2/messages/{{id}} once) and recorded delivered, nobody told. "
            f"B #{row_b.pk} and C #{row_c.pk}: unknown, conversations flagged for staff, one 'Conversation needs a "
            "person' alert each (ids only). One send to Telnyx per patient: nothing sent twice."
        )
        e2e.assert_no_errors()
    finally:
        for p in (a, b, c):
            p.close()
