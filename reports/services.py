"""The outcomes of one clinic over a range of its local days, computed from the rows the other apps keep (no second
source of truth: nothing here is stored).

The funnel is a cohort: the conversations *opened* in the range (a missed call, a web lead or the patient's first
text), followed to wherever they went, even after the range ends. The busiest hours count the patients' texts
*received* in the range, by the clinic's local hour. Days and hours are the clinic's wall clock, whatever the
server's zone."""

import math
import statistics
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db.models import Count, Min, Sum
from django.db.models.functions import Coalesce, ExtractHour

from bookings.models import Booking
from conversation.models import Conversation, Turn
from medspa.models import Clinic, Service
from messaging.models import Message
from payments.models import Payment

# A booking that was made and kept its time (a cancelled one may never have been confirmed: it does not count).
BOOKED = (Booking.Status.AWAITING_STAFF, Booking.Status.CONFIRMED, Booking.Status.COMPLETED, Booking.Status.NO_SHOW)
# The clinic's texts that answer a patient: the intro after a missed call or a lead, the assistant's and staff's.
ANSWER_KINDS = (Message.Kind.INTRO, Message.Kind.REPLY, Message.Kind.STAFF)
# Gone to the provider (unknown: the request timed out, the provider may have it); scheduled, failed, dropped: not.
WENT_OUT = (Message.Status.SENT, Message.Status.DELIVERED, Message.Status.UNKNOWN)
ORIGINS = (
    (Conversation.Origin.MISSED_CALL, "Missed calls"),
    (Conversation.Origin.WEB_LEAD, "Web leads"),
    (Conversation.Origin.INBOUND_TEXT, "Patient-first texts"),
)
STAGES = (
    ("answered", "Answered"),
    ("offered", "Times offered"),
    ("deposit_link", "Deposit link sent"),
    ("paid", "Deposit paid"),
    ("booked", "Booked"),
    ("showed", "Showed (completed)"),
)


@dataclass
class Outcomes:
    clinic: Clinic
    start: date
    end: date  # inclusive
    entered: dict = field(default_factory=dict)  # origin -> conversations opened
    stages: dict = field(default_factory=dict)  # stage -> conversations that reached it
    no_shows: int = 0
    reply_seconds: list = field(default_factory=list)  # per answered conversation, sorted
    missed_calls: int = 0
    missed_calls_booked: int = 0
    deposits_paid_cents: int = 0
    deposits_refunded_cents: int = 0
    booked_estimate_cents: int = 0
    booked_unpriced: int = 0  # booked services priced at consultation: not in the estimate
    inbound_by_hour: list = field(default_factory=lambda: [0] * 24)

    @property
    def opened(self) -> int:
        return sum(self.entered.values())

    @property
    def reply_median(self) -> float | None:
        return statistics.median(self.reply_seconds) if self.reply_seconds else None

    @property
    def reply_p90(self) -> float | None:
        """Nearest rank: the smallest time at least 90% of the answered conversations were answered within."""
        if not self.reply_seconds:
            return None
        return self.reply_seconds[math.ceil(0.9 * len(self.reply_seconds)) - 1]

    @property
    def missed_calls_recovered(self) -> float | None:
        return self.missed_calls_booked / self.missed_calls if self.missed_calls else None


def local_day_bounds(clinic: Clinic, start: date, end: date) -> tuple[datetime, datetime]:
    """The aware instants at which the clinic's local ``start`` day begins and the day after ``end`` begins (a DST
    day is 23 or 25 hours: the wall clock decides)."""
    return (
        datetime.combine(start, time.min, tzinfo=clinic.tz),
        datetime.combine(end + timedelta(days=1), time.min, tzinfo=clinic.tz),
    )


def service_estimate_cents(service: Service) -> int | None:
    """What a booked service is worth by the catalog: the fixed price, the low end of a range, the price per unit
    times the fewest typical units (one when not given); None when priced at consultation."""
    if service.price_cents is None:
        return None
    if service.price_type == Service.PriceType.PER_UNIT:
        return service.price_cents * (service.typical_units_min or 1)
    return service.price_cents


def outcomes_compute(*, clinic: Clinic, start: date, end: date) -> Outcomes:
    """The clinic's outcomes for its local days ``start``..``end`` (inclusive)."""
    since, until = local_day_bounds(clinic, start, end)
    result = Outcomes(clinic=clinic, start=start, end=end)
    cohort = Conversation.objects.filter(clinic=clinic, created_at__gte=since, created_at__lt=until)

    by_origin = dict(cohort.order_by().values_list("origin").annotate(n=Count("pk")))
    result.entered = {origin: by_origin.get(origin, 0) for origin, _ in ORIGINS}

    opened_at = dict(cohort.values_list("pk", "created_at"))
    first_answers = (
        Message.objects.filter(
            clinic=clinic,
            conversation__in=cohort,
            direction=Message.Direction.OUTBOUND,
            kind__in=ANSWER_KINDS,
            status__in=WENT_OUT,
        )
        .order_by()
        .values("conversation_id")
        .annotate(first=Min(Coalesce("sent_at", "created_at")))
    )
    seconds = []
    for row in first_answers:
        began = opened_at.get(row["conversation_id"])
        if began is not None:
            seconds.append(max(0.0, (row["first"] - began).total_seconds()))
    result.reply_seconds = sorted(seconds)

    bookings = Booking.objects.filter(clinic=clinic, conversation__in=cohort)
    booked = bookings.filter(status__in=BOOKED)
    payments = Payment.objects.filter(clinic=clinic, booking__in=bookings)
    offered = (
        Turn.objects.filter(conversation__in=cohort, tool_calls__icontains='"find_open_times"')
        .order_by()
        .values_list("conversation_id", "tool_calls")
        .iterator()
    )
    offered_ids = {
        pk
        for pk, calls in offered
        if any(c.get("tool") == "find_open_times" and not str(c.get("outcome", "")).startswith("0 ") for c in calls)
    }
    offered_ids |= set(bookings.values_list("conversation_id", flat=True))  # a time held was a time offered

    def conversations(qs, path="conversation_id"):
        return qs.order_by().values(path).distinct().count()

    result.stages = {
        "answered": len(result.reply_seconds),
        "offered": len(offered_ids),
        "deposit_link": conversations(payments, "booking__conversation_id"),
        "paid": conversations(payments.filter(paid_at__isnull=False), "booking__conversation_id"),
        "booked": conversations(booked),
        "showed": conversations(bookings.filter(status=Booking.Status.COMPLETED)),
    }
    result.no_shows = conversations(bookings.filter(status=Booking.Status.NO_SHOW))
    result.missed_calls = result.entered[Conversation.Origin.MISSED_CALL]
    result.missed_calls_booked = conversations(booked.filter(conversation__origin=Conversation.Origin.MISSED_CALL))

    money = payments.filter(paid_at__isnull=False).aggregate(paid=Sum("paid_cents"), refunded=Sum("refunded_cents"))
    result.deposits_paid_cents = money["paid"] or 0
    result.deposits_refunded_cents = money["refunded"] or 0
    services = {s.pk: s for s in Service.objects.filter(clinic=clinic)}
    for service_id, n in booked.order_by().values_list("service_id").annotate(n=Count("pk")):
        price = service_estimate_cents(services[service_id])
        if price is None:
            result.booked_unpriced += n
        else:
            result.booked_estimate_cents += price * n

    hours = (
        Message.objects.filter(
            clinic=clinic,
            direction=Message.Direction.INBOUND,
            kind=Message.Kind.PATIENT,
            created_at__gte=since,
            created_at__lt=until,
        )
        .annotate(hour=ExtractHour("created_at", tzinfo=clinic.tz))
        .order_by()
        .values_list("hour")
        .annotate(n=Count("pk"))
    )
    for hour, n in hours:
        result.inbound_by_hour[hour] = n
    return result


def _dollars(cents: int) -> str:
    return f"{cents / 100:.2f}"


def _minutes(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds / 60:.1f}"


def outcomes_rows(outcomes: Outcomes) -> list[tuple[str, str, str]]:
    """The figures as (section, figure, value) rows: the CSV export, in the page's order."""
    o = outcomes
    rows = [
        ("range", "clinic", o.clinic.name),
        ("range", "first day", o.start.isoformat()),
        ("range", "last day", o.end.isoformat()),
        ("range", "time zone", o.clinic.timezone),
    ]
    rows += [("funnel", label, str(o.entered[origin])) for origin, label in ORIGINS]
    rows.append(("funnel", "Conversations opened", str(o.opened)))
    rows += [("funnel", label, str(o.stages[key])) for key, label in STAGES]
    rows.append(("funnel", "No-shows", str(o.no_shows)))
    rows += [
        ("first reply", "answered conversations", str(len(o.reply_seconds))),
        ("first reply", "median minutes", _minutes(o.reply_median)),
        ("first reply", "p90 minutes", _minutes(o.reply_p90)),
        ("missed calls", "missed calls", str(o.missed_calls)),
        ("missed calls", "led to a booking", str(o.missed_calls_booked)),
        (
            "missed calls",
            "recovered share",
            "" if o.missed_calls_recovered is None else f"{o.missed_calls_recovered:.3f}",
        ),
        ("revenue", "deposits paid (USD)", _dollars(o.deposits_paid_cents)),
        ("revenue", "deposits refunded (USD)", _dollars(o.deposits_refunded_cents)),
        ("revenue", "booked services at catalog price, estimate (USD)", _dollars(o.booked_estimate_cents)),
        ("revenue", "booked services priced at consultation (not estimated)", str(o.booked_unpriced)),
    ]
    rows += [("inbound texts by hour", f"{hour:02d}:00", str(n)) for hour, n in enumerate(o.inbound_by_hour)]
    return rows
