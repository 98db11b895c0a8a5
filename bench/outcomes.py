"""Benchmark: the outcomes page (issue 19 item 5) at 100,000 messages.

Builds, in a fresh database of its own (SQLite in a temporary directory, or the PostgreSQL of ``--database-url``),
one clinic in Los Angeles with 100,000 messages over 90 days (10,000 conversations of every origin, their answers,
turns, bookings of every status, deposits) and a second clinic with the same again, then measures in the same run:

1. ``reports.services.outcomes_compute`` for the last 30 days (the page's queries);
2. the whole page, rendered through Django's test client as a clinic's staff member, and its CSV export;
3. the baseline: the admin's list of the same clinic's texts (``/admin/messaging/message/``, a page staff already
   load), in the same database and process. The ratio page / baseline is the figure of merit.

Usage: ``.venv/bin/python bench/outcomes.py [--messages 100000] [--runs 7] [--database-url URL]``.
Target (issue 19): the page under 1 s at 100,000 messages.
"""

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(func, runs):
    func()  # warm: templates compiled, connections open
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        func()
        times.append(time.perf_counter() - began)
    return statistics.median(times), max(times)


def build(clinic, n_messages, rng, now):
    from bookings.models import Booking
    from conversation.models import Conversation, Turn
    from emr.models import Provider
    from medspa.models import Service
    from messaging.models import Message
    from payments.models import Payment

    for model in (Message, Conversation, Booking, Payment, Turn):
        for f in model._meta.fields:
            if getattr(f, "auto_now_add", False):
                f.auto_now_add = False  # the bench writes its own history
    services = [
        Service.objects.create(
            clinic=clinic,
            name="Botox",
            price_type="per_unit",
            price_cents=1400,
            unit_name="unit",
            typical_units_min=20,
            typical_units_max=40,
            deposit_cents=5000,
        ),
        Service.objects.create(clinic=clinic, name="Facial", price_type="fixed", price_cents=15000),
        Service.objects.create(
            clinic=clinic,
            name="Filler",
            price_type="range",
            price_cents=60000,
            price_max_cents=90000,
            deposit_cents=10000,
        ),
    ]
    provider = Provider.objects.create(clinic=clinic, name="Dr. Bench")
    n_conversations = n_messages // 10
    origins = ["missed_call", "web_lead", "inbound_text"]
    conversations = [
        Conversation(
            clinic=clinic,
            patient_phone=f"+1310{clinic.pk}{i:06d}"[:12],
            origin=rng.choice(origins),
            created_at=now - timedelta(days=90 * rng.random()),
        )
        for i in range(n_conversations)
    ]
    Conversation.objects.bulk_create(conversations, batch_size=2000)
    conversations = list(Conversation.objects.filter(clinic=clinic).order_by("pk"))
    messages, turns, bookings = [], [], []
    for c in conversations:
        at = c.created_at
        for k in range(10):
            inbound = k % 2 == 0
            at += timedelta(seconds=rng.randint(20, 3600))
            messages.append(
                Message(
                    clinic=clinic,
                    conversation=c,
                    direction="inbound" if inbound else "outbound",
                    kind="patient" if inbound else ("intro" if k == 1 else "reply"),
                    from_number=c.patient_phone if inbound else "+13105550100",
                    to_number="+13105550100" if inbound else c.patient_phone,
                    body="bench text",
                    provider="telnyx",
                    status="received" if inbound else rng.choice(["delivered", "sent", "failed"]),
                    sent_at=None if inbound else at,
                    created_at=at,
                )
            )
        if rng.random() < 0.5:
            turns.append(
                Turn(
                    clinic=clinic,
                    conversation=c,
                    engine="rules",
                    created_at=c.created_at,
                    tool_calls=[{"tool": "find_open_times", "arguments": {}, "outcome": "3 offered"}],
                )
            )
        if rng.random() < 0.3:
            start = c.created_at + timedelta(days=3, hours=len(bookings) % 5000)
            bookings.append(
                Booking(
                    clinic=clinic,
                    conversation=c,
                    patient_phone=c.patient_phone,
                    service=rng.choice(services),
                    provider=provider,
                    start=start,
                    end=start + timedelta(minutes=30),
                    status=rng.choice(["confirmed", "completed", "no_show", "cancelled", "awaiting_deposit"]),
                    created_at=c.created_at,
                )
            )
    Message.objects.bulk_create(messages, batch_size=5000)
    Turn.objects.bulk_create(turns, batch_size=5000)
    Booking.objects.bulk_create(bookings, batch_size=5000)
    payments = []
    for b in Booking.objects.filter(clinic=clinic).only("pk", "status", "created_at"):
        if rng.random() < 0.7:
            paid = b.status in ("confirmed", "completed", "no_show")
            payments.append(
                Payment(
                    clinic=clinic,
                    booking=b,
                    provider="square",
                    amount_cents=5000,
                    idempotency_key=f"bench-{b.pk}",
                    status="paid" if paid else "created",
                    paid_cents=5000 if paid else 0,
                    paid_at=b.created_at if paid else None,
                    created_at=b.created_at,
                )
            )
    Payment.objects.bulk_create(payments, batch_size=5000)
    return len(messages), len(conversations), len(bookings), len(payments)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="bench-outcomes-")
    os.environ["DATABASE_URL"] = args.database_url or f"sqlite:///{workdir}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from medspa.models import Clinic, ClinicMembership
    from reports.services import outcomes_compute
    from tests.conftest import make_staff

    setup_test_environment()  # the test client's host and a locmem mail outbox
    settings.ALLOWED_HOSTS = ["testserver"]
    call_command("migrate", verbosity=0)
    rng = random.Random(19)
    now = datetime.now(UTC)
    la = Clinic.objects.create(
        slug="bench-la", name="Bench LA", timezone="America/Los_Angeles", front_desk_phone="+13105550100"
    )
    other = Clinic.objects.create(slug="bench-ny", name="Bench NY", timezone="America/New_York")
    began = time.perf_counter()
    built = build(la, args.messages, rng, now)
    build(other, args.messages, rng, now)
    print(
        f"built {built[0]:,} messages, {built[1]:,} conversations, {built[2]:,} bookings, {built[3]:,} payments "
        f"per clinic (two clinics) in {time.perf_counter() - began:.0f} s on {connection.vendor}"
    )
    user = make_staff("bench-desk", la, role=ClinicMembership.Role.FRONT_DESK)
    client = Client()
    client.force_login(user)
    end = datetime.now(la.tz).date()
    start = end - timedelta(days=29)

    def compute():
        return outcomes_compute(clinic=la, start=start, end=end)

    def page():
        response = client.get("/admin/outcomes/")
        assert response.status_code == 200, response.status_code
        assert b"fd-funnel" in response.content

    def export():
        assert client.get("/admin/outcomes/", {"format": "csv"}).status_code == 200

    def baseline():
        assert client.get("/admin/messaging/message/").status_code == 200

    with CaptureQueriesContext(connection) as queries:
        page()
    o = compute()
    print(
        f"last 30 days: {o.opened:,} conversations opened, {o.stages['booked']:,} booked; page queries: {len(queries)}"
    )
    results = {
        "outcomes_compute": timed(compute, args.runs),
        "outcomes page": timed(page, args.runs),
        "outcomes CSV": timed(export, args.runs),
        "baseline: admin messages list": timed(baseline, args.runs),
    }
    base = results["baseline: admin messages list"][0]
    print(f"{'what':34} {'median':>9} {'max':>9} {'ratio':>6}")
    for name, (median, worst) in results.items():
        print(f"{name:34} {median * 1000:7.0f} ms {worst * 1000:7.0f} ms {median / base:6.2f}")
    print(f"target: page under 1 s -> {'met' if results['outcomes page'][0] < 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
