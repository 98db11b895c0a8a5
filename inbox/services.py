"""The webhook inbox: record each provider event once, process it in a task, retry what failed, never lose one.

Apps register a handler per (provider, event type) with ``handler``; the inbox knows nothing of texts or payments.

- ``event_record``: insert the event under (provider, event id, type) and queue its processing after commit. A second
  delivery of an event that was not processed yet (pending, failed, or held by a worker that died) queues it again;
  one that was processed changes nothing.
- ``event_process``: claim the row (a conditional update, so two workers never both run it), run the handler and
  write its outcome in one transaction. A crash rolls the handler's writes back, records the error class and a
  short reason, and dates the next attempt (backoff); after ``MAX_ATTEMPTS`` the event waits for staff, who can
  reprocess it from the admin.
- ``events_sweep`` (beat): rows whose task was lost (Redis flushed or down when it was queued, worker killed, the
  database connection dropped mid-handler) and failed rows whose time has come go back to the queue.
"""

import logging
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from medspa.alerts import staff_alert
from medspa.logging import redact
from medspa.models import Clinic, StaffAlert
from medspa.queueing import PRIORITY, queued_ids
from medspa.queueing import enqueue as enqueue_task
from medspa.retry import RetrySchedule

from .metrics import EVENTS, SWEEP_REQUEUED
from .models import WebhookEvent

logger = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)  # a handler that runs longer than this is taken for dead and run again
PENDING_GRACE = timedelta(seconds=20)  # a pending row older than this lost its task (or waits in a long queue)
REQUEUE_EVERY = timedelta(seconds=60)  # the sweep hands one pending row back at most once a minute
RETRIES = RetrySchedule((10, 30, 120, 600, 1800, 3600))  # seconds before attempts 2..7; then staff decide
MAX_ATTEMPTS = RETRIES.max_attempts
PROCESS_TASK = "inbox.process_event"
Status = WebhookEvent.Status


@dataclass(frozen=True)
class NormalisedEvent:
    """A provider's event as the webhook view parsed it."""

    event_id: str
    event_type: str
    payload: dict = field(default_factory=dict)
    clinic_number: str = ""  # our number the event concerns, to file the event under its clinic


@dataclass(frozen=True)
class Outcome:
    """What a handler did. ``status`` processed, ignored or flagged (processed, but a person should look);
    ``subject`` the row it was about (filed on the event, and its clinic with it)."""

    status: str = Status.PROCESSED
    reason: str = ""
    subject: object = None
    clinic_id: int | None = None


@dataclass(frozen=True)
class Handler:
    run: Callable[[WebhookEvent], Outcome | None]
    route: Callable[[WebhookEvent], int | None] | None = None  # the clinic an event belongs to, before it runs
    # Whether the event goes to the priority queue (a missed call, STOP/HELP): True, or a test of its payload.
    urgent: bool | Callable[[dict], bool] = False

    def is_urgent(self, payload: dict) -> bool:
        return self.urgent(payload) if callable(self.urgent) else bool(self.urgent)


HANDLERS: dict[tuple[str, str], Handler] = {}


def handler(provider: str, *event_types: str, route=None, urgent=False):
    """Register ``fn(event) -> Outcome | None`` for these event types of ``provider`` (a decorator). ``urgent``:
    True, or ``fn(payload) -> bool``, for the events that skip the inbound queue (queueing.PRIORITY)."""

    def register(fn):
        for event_type in event_types:
            HANDLERS[(provider, event_type)] = Handler(fn, route, urgent)
        return fn

    return register


def handled(provider: str, event_type: str) -> bool:
    return (provider, event_type) in HANDLERS


# --- Recording (in the web process) -------------------------------------------------------------------------------


def event_record(*, provider: str, event: NormalisedEvent, now=None) -> str:
    """Store the event once and queue it after commit. Returns accepted, duplicate (already done: nothing
    changes) or redelivered (not done yet: queued again, so a provider's retry is never swallowed)."""
    now = now or timezone.now()
    # One INSERT: in autocommit (a webhook request) it is its own transaction, so no BEGIN/COMMIT around it and the
    # task is queued as soon as it returns; inside a caller's transaction a savepoint keeps a duplicate's
    # IntegrityError from breaking it, and the task is queued when that transaction commits.
    autocommit = connection.get_autocommit() and not connection.in_atomic_block
    guard = nullcontext() if autocommit else transaction.atomic()
    try:
        with guard:
            row = WebhookEvent.objects.create(
                provider=provider,
                event_id=event.event_id,
                event_type=event.event_type,
                our_number=event.clinic_number[:16],
                payload=event.payload,
            )
            transaction.on_commit(lambda: enqueue(row.pk, urgent=_urgent(row)))
    except IntegrityError:
        return _redelivered(provider, event, now)
    EVENTS.labels(provider, "received").inc()
    return "accepted"


def _redelivered(provider: str, event: NormalisedEvent, now) -> str:
    undone = Q(status__in=[Status.PENDING, Status.FAILED]) | Q(status=Status.PROCESSING, lease_until__lte=now)
    rows = WebhookEvent.objects.filter(provider=provider, event_id=event.event_id, event_type=event.event_type)
    rows.update(deliveries=F("deliveries") + 1)
    pk = rows.filter(undone).values_list("pk", flat=True).first()
    if pk is None:
        EVENTS.labels(provider, "duplicate").inc()
        return "duplicate"
    rows.filter(pk=pk, status=Status.FAILED).update(next_attempt_at=now)
    transaction.on_commit(lambda: enqueue(pk, urgent=_urgent(event, provider=provider)))
    EVENTS.labels(provider, "redelivered").inc()
    logger.info("webhook event redelivered event=%s: queued again", pk)
    return "redelivered"


def enqueue(event_id: int, *, urgent: bool = False) -> None:
    """Queue the processing task (on the priority queue if ``urgent``). A broker that is down loses nothing: the
    row is in the database and the sweep queues it again, so the provider still gets its 2xx."""
    enqueue_task(PROCESS_TASK, event_id, queue=PRIORITY if urgent else None)


def _urgent(event, *, provider: str | None = None) -> bool:
    """``event``: a WebhookEvent or a NormalisedEvent (which has no provider of its own)."""
    found = HANDLERS.get((provider or event.provider, event.event_type))
    try:
        return bool(found and found.is_urgent(event.payload))
    except Exception:  # a payload the test cannot read is processed (and fails, if it must) like any other
        return False


# --- Processing (in the worker) -----------------------------------------------------------------------------------


@cache
def _claim_sql(vendor: str) -> str:
    """The claim as one statement, built once: a conditional ``UPDATE ... RETURNING`` (PostgreSQL; SQLite 3.35+)
    that takes the row only when it is pending, failed and due, or held by a run whose lease has passed."""
    meta, quote = WebhookEvent._meta, connection.ops.quote_name
    column = {f.name: quote(f.column) for f in meta.concrete_fields}
    status, attempts = column["status"], column["attempts"]
    # Only the model's own quoted table and column names are formatted in; every value is a parameter.
    sql = f"UPDATE {quote(meta.db_table)} SET {status} = %s, {column['lease_until']} = %s, "  # noqa: S608
    sql += f"{attempts} = {attempts} + 1 WHERE {column['id']} = %s AND ({status} = %s "
    sql += f"OR ({status} = %s AND {column['next_attempt_at']} <= %s) "
    sql += f"OR ({status} = %s AND {column['lease_until']} <= %s)) "
    return sql + f"RETURNING {', '.join(column.values())}"


def _claim(event_id: int, now) -> WebhookEvent | None:
    """Claim the row and read it in one statement (two workers never both get it; the claimed row is not read a
    second time). None when another run holds it or it is done."""
    at = connection.ops.adapt_datetimefield_value
    params = [Status.PROCESSING, at(now + LEASE), event_id]
    params += [Status.PENDING, Status.FAILED, at(now), Status.PROCESSING, at(now)]
    return next(iter(WebhookEvent.objects.raw(_claim_sql(connection.vendor), params)), None)


def event_process(*, event_id: int, now=None) -> str:
    """Run a recorded event's handler once. Returns the outcome, or "skipped" when another run has it or it is
    done. Handlers are idempotent and run in one transaction with the outcome, so a crash leaves no half-done work
    and the next attempt starts clean."""
    now = now or timezone.now()
    event = _claim(event_id, now)
    if event is None:
        return "skipped"
    registered = HANDLERS.get((event.provider, event.event_type))
    try:
        with transaction.atomic():
            if registered is None:  # recorded for correlation only (e.g. call.initiated, call.answered)
                outcome = Outcome(Status.IGNORED, "recorded, nothing to do")
            else:
                outcome = registered.run(event) or Outcome()
            _finish(event, registered, outcome, now)
    except Exception as exc:  # recorded, logged and retried by the sweep: never swallowed
        return _failed(event, registered, exc, now)
    EVENTS.labels(event.provider, outcome.status).inc()
    logger.info("webhook event %s event=%s type=%s", outcome.status, event.pk, event.event_type)
    return outcome.status


def _clinic_of(event, registered) -> int | None:
    """The clinic the event is filed under: as recorded, else the handler's ``route`` (asked only when the outcome
    does not say, so a processed text costs no second lookup of its number)."""
    if event.clinic_id is None and registered is not None and registered.route is not None:
        event.clinic_id = registered.route(event)
    return event.clinic_id


def _finish(event, registered, outcome: Outcome, now):
    fields = {
        "status": outcome.status,
        "reason": outcome.reason[:200],
        "error_class": "",
        "lease_until": None,
        "next_attempt_at": None,
        "processed_at": now,
    }
    subject = outcome.subject
    if subject is not None:
        fields.update(subject_type=subject._meta.label_lower, subject_id=str(subject.pk))
        fields["clinic_id"] = getattr(subject, "clinic_id", None) or event.clinic_id
    if outcome.clinic_id:
        fields["clinic_id"] = outcome.clinic_id
    if not fields.get("clinic_id"):
        fields["clinic_id"] = _clinic_of(event, registered)
    WebhookEvent.objects.filter(pk=event.pk).update(**fields)


def error_reason(exc: BaseException) -> str:
    """A short reason for an exception, fit for the admin: the class and the first line, phones and e-mails
    masked (database errors quote values)."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return redact(f"{type(exc).__name__}: {first_line}")[:200]


def _failed(event, registered, exc, now) -> str:
    attempts = WebhookEvent.objects.filter(pk=event.pk).values_list("attempts", flat=True).first() or 1
    try:  # filed under its clinic, so its staff see it (and are alerted when it gives up)
        _clinic_of(event, registered)
    except Exception:  # the database may be what failed: the sweep's next attempt files it
        logger.warning("webhook event failed event=%s: its clinic could not be looked up", event.pk)
    gave_up = attempts >= MAX_ATTEMPTS
    next_attempt = None if gave_up else RETRIES.next_at(now, attempts)
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.FAILED,
        clinic_id=event.clinic_id,
        error_class=type(exc).__name__[:80],
        reason=error_reason(exc),
        lease_until=None,
        next_attempt_at=next_attempt,
        processed_at=now,
    )
    EVENTS.labels(event.provider, "gave_up" if gave_up else "failed").inc()
    logger.error(
        "webhook event failed event=%s type=%s attempt=%s error=%s%s",
        event.pk,
        event.event_type,
        attempts,
        type(exc).__name__,
        ": staff decide" if gave_up else "",
        exc_info=exc,
    )
    if gave_up:
        _alert_staff(event)
    return "failed"


def _alert_staff(event):

    clinic = Clinic.objects.filter(pk=event.clinic_id).first() if event.clinic_id else None
    if clinic is None:  # not filed under a clinic: platform operators see it in the admin and in the metrics
        return
    staff_alert(
        clinic=clinic,
        kind=StaffAlert.Kind.WEBHOOK,
        text=f"{event.get_provider_display()} event #{event.pk} ({event.event_type}) failed {MAX_ATTEMPTS} times. "
        "Fix the cause, then reprocess it from the Webhook events list.",
        obj=event,
    )


# --- The sweep and staff reprocessing -----------------------------------------------------------------------------


def events_sweep(*, now=None, limit: int = 500) -> list[int]:
    """Queue again what the database says is still to do: pending rows whose task was lost, failed rows due for
    their retry, and rows whose worker died while holding them. A pending row whose task is only waiting in the
    queue (``queueing.queued_ids``) is left alone, and one is handed back at most once a minute, so a long queue
    is not flooded with copies (a copy would find the row claimed and do nothing)."""
    now = now or timezone.now()
    lost = Q(status=Status.PENDING, received_at__lte=now - PENDING_GRACE) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    due = Q(status=Status.FAILED, next_attempt_at__lte=now) | Q(status=Status.PROCESSING, lease_until__lte=now)
    rows = WebhookEvent.objects.filter(lost | due).order_by("received_at")
    found = list(rows.values_list("pk", "status")[:limit])
    waiting = queued_ids(PROCESS_TASK, [pk for pk, status in found if status == Status.PENDING])
    ids = [pk for pk, _ in found if pk not in waiting]
    if ids:
        WebhookEvent.objects.filter(pk__in=ids, status=Status.PENDING).update(next_attempt_at=now + REQUEUE_EVERY)
        # Only the rows queued again are read whole (their payload tells whether they are urgent): under a long queue
        # most rows found are only waiting, and their bodies are not read every 10 s.
        queued = WebhookEvent.objects.filter(pk__in=ids).order_by("received_at")
        for event in queued.only("pk", "provider", "event_type", "payload"):
            enqueue(event.pk, urgent=_urgent(event))
        SWEEP_REQUEUED.labels("inbox").inc(len(ids))
        logger.info("inbox sweep queued %s event(s) again", len(ids))
    return ids


def event_reprocess(*, event: WebhookEvent, now=None) -> bool:
    """Staff: run a failed event again now (after fixing its cause). Processed, ignored or flagged events are
    final: their effects happened once and must not happen twice."""
    now = now or timezone.now()
    updated = WebhookEvent.objects.filter(pk=event.pk, status=Status.FAILED).update(next_attempt_at=now)
    if updated:
        transaction.on_commit(lambda: enqueue(event.pk, urgent=_urgent(event)))
        EVENTS.labels(event.provider, "reprocessed").inc()
    return bool(updated)
