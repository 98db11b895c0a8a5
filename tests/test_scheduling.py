"""The built-in calendar's open times and holds that can never double-book a provider."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from bookings.models import Booking
from bookings.services import SlotUnavailable, booking_hold, bookings_expire_holds
from emr.calendar import BuiltinCalendarClient
from emr.models import EmrConfig, Provider, TimeOff
from medspa.models import Clinic, Service

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # Monday 07:00 in Boston


def slots(clinic, service_name, day_start, day_end, provider=None, now=NOW):
    service = Service.objects.get(clinic=clinic, name=service_name)
    client = BuiltinCalendarClient(clinic=clinic, config=EmrConfig.objects.get(clinic=clinic), now=now)
    return client.availability(
        service_ref=service.pk, start=day_start, end=day_end, provider_ref=provider.pk if provider else ""
    )


def local(clinic, *args):
    return datetime(*args, tzinfo=clinic.tz)


def test_demo_providers_and_hours_are_seeded(demo):
    smith = Provider.objects.get(clinic=demo, name="Dr. Sarah Smith")
    johnson = Provider.objects.get(clinic=demo, name="Dr. Emily Johnson")
    assert sorted(smith.hours.values_list("weekday", flat=True)) == [0, 1, 2, 3, 4]
    assert sorted(johnson.hours.values_list("weekday", flat=True)) == [1, 2, 3]
    assert set(johnson.services.values_list("name", flat=True)) >= {"Botox", "Lip Filler"}
    assert not johnson.services.filter(name="Laser Hair Removal").exists()


def test_open_times_follow_hours_and_services(demo):
    tuesday = slots(demo, "Botox", local(demo, 2026, 11, 24, 0), local(demo, 2026, 11, 25, 0))
    smith = [s for s in tuesday if Provider.objects.get(pk=s.provider_ref).name == "Dr. Sarah Smith"]
    johnson = [s for s in tuesday if Provider.objects.get(pk=s.provider_ref).name == "Dr. Emily Johnson"]
    assert smith[0].start == local(demo, 2026, 11, 24, 9) and smith[-1].end == local(demo, 2026, 11, 24, 17)
    assert johnson[0].start == local(demo, 2026, 11, 24, 10) and johnson[-1].end == local(demo, 2026, 11, 24, 18)
    assert len(smith) == (8 * 60 - 30) // 15 + 1  # a 30-minute service on a 15-minute grid
    monday_laser = slots(demo, "Laser Hair Removal", local(demo, 2026, 11, 30, 0), local(demo, 2026, 12, 1, 0))
    assert {Provider.objects.get(pk=s.provider_ref).name for s in monday_laser} == {"Dr. Sarah Smith"}


def test_slots_keep_local_hours_across_the_dst_change(demo):
    # Clocks go back on Sunday 2026-11-01: Friday 9:00 is EDT (13:00 UTC), Monday 9:00 is EST (14:00 UTC).
    now = datetime(2026, 10, 29, 12, tzinfo=UTC)
    week = slots(demo, "Botox", local(demo, 2026, 10, 30, 0), local(demo, 2026, 11, 3, 0), now=now)
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    firsts = {}
    for s in week:
        if s.provider_ref == str(smith.pk):
            firsts.setdefault(s.start.astimezone(demo.tz).date(), s.start)
    assert firsts[datetime(2026, 10, 30).date()].astimezone(UTC).hour == 13
    assert firsts[datetime(2026, 11, 2).date()].astimezone(UTC).hour == 14
    assert all(s.start.astimezone(demo.tz).hour >= 9 for s in week)


def test_bookings_time_off_notice_and_horizon_remove_times(demo):
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    botox = Service.objects.get(clinic=demo, name="Botox")
    booking_hold(
        clinic=demo,
        service=botox,
        provider=smith,
        start=local(demo, 2026, 11, 24, 10),
        patient_phone="+16175550123",
        now=NOW,
    )
    TimeOff.objects.create(
        clinic=demo,
        provider=smith,
        start=local(demo, 2026, 11, 24, 13),
        end=local(demo, 2026, 11, 24, 14),
        reason="lunch",
    )
    times = {
        s.start
        for s in slots(demo, "Botox", local(demo, 2026, 11, 24, 0), local(demo, 2026, 11, 25, 0), provider=smith)
    }
    assert local(demo, 2026, 11, 24, 10) not in times and local(demo, 2026, 11, 24, 9, 45) not in times
    assert local(demo, 2026, 11, 24, 9, 30) in times and local(demo, 2026, 11, 24, 10, 30) in times
    assert local(demo, 2026, 11, 24, 13, 15) not in times and local(demo, 2026, 11, 24, 14) in times
    # Minimum notice (2 h) from 09:30 local, and nothing past the horizon.
    soon = slots(
        demo,
        "Botox",
        local(demo, 2026, 11, 24, 0),
        local(demo, 2026, 11, 25, 0),
        provider=smith,
        now=local(demo, 2026, 11, 24, 9, 30),
    )
    assert min(s.start for s in soon) == local(demo, 2026, 11, 24, 11, 30)
    assert slots(demo, "Botox", NOW + timedelta(days=61), NOW + timedelta(days=62)) == []


def test_overlapping_hold_is_refused_and_adjacent_is_fine(demo):
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    consult = Service.objects.get(clinic=demo, name="Consultation")
    Service.objects.filter(pk=consult.pk).update(duration_minutes=60)
    consult.refresh_from_db()
    booking_hold(
        clinic=demo,
        service=consult,
        provider=smith,
        start=local(demo, 2026, 11, 24, 14),
        patient_phone="+16175550123",
        now=NOW,
    )
    peel = Service.objects.get(clinic=demo, name="Chemical Peel")  # 45 minutes: 2:30-3:15 over 2:00-3:00
    with pytest.raises(SlotUnavailable):
        booking_hold(
            clinic=demo,
            service=peel,
            provider=smith,
            start=local(demo, 2026, 11, 24, 14, 30),
            patient_phone="+16175550124",
            now=NOW,
        )
    booking_hold(
        clinic=demo,
        service=peel,
        provider=smith,
        start=local(demo, 2026, 11, 24, 15),
        patient_phone="+16175550124",
        now=NOW,
    )
    assert Booking.objects.count() == 2


def test_expired_hold_frees_its_slot(demo):
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    botox = Service.objects.get(clinic=demo, name="Botox")
    start = local(demo, 2026, 11, 24, 11)
    booking_hold(clinic=demo, service=botox, provider=smith, start=start, patient_phone="+16175550123", now=NOW)
    with pytest.raises(SlotUnavailable):
        booking_hold(clinic=demo, service=botox, provider=smith, start=start, patient_phone="+16175550124", now=NOW)
    assert bookings_expire_holds(now=NOW + timedelta(minutes=16)) == 1
    booking_hold(
        clinic=demo,
        service=botox,
        provider=smith,
        start=start,
        patient_phone="+16175550124",
        now=NOW + timedelta(minutes=16),
    )
    assert Booking.objects.filter(status="held").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="real concurrent connections: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_holds_on_one_slot_exactly_one_wins():
    call_command("seed_knowledge", verbosity=0)
    clinic = Clinic.objects.get(slug="demo-clinic-001")
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    botox = Service.objects.get(clinic=clinic, name="Botox")
    start = local(clinic, 2026, 11, 24, 15)
    barrier, outcomes = threading.Barrier(20), []

    def attempt(n):
        try:
            barrier.wait()
            booking_hold(
                clinic=clinic,
                service=botox,
                provider=smith,
                start=start + timedelta(minutes=n % 3 * 5),
                patient_phone=f"+161755501{n:02d}",
                now=NOW,
            )
            outcomes.append("won")
        except SlotUnavailable:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused"] * 19 + ["won"]
    assert Booking.objects.filter(provider=smith, status="held").count() == 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the exclusion constraint is PostgreSQL's")
def test_database_refuses_an_overlap_even_past_the_service(demo):
    from django.db import IntegrityError, transaction

    smith = Provider.objects.get(name="Dr. Sarah Smith")
    botox = Service.objects.get(clinic=demo, name="Botox")
    start = local(demo, 2026, 11, 24, 16)
    Booking.objects.create(
        clinic=demo,
        patient_phone="+16175550123",
        service=botox,
        provider=smith,
        start=start,
        end=start + timedelta(minutes=30),
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        Booking.objects.create(
            clinic=demo,
            patient_phone="+16175550124",
            service=botox,
            provider=smith,
            start=start + timedelta(minutes=15),
            end=start + timedelta(minutes=45),
        )


def test_emr_client_follows_the_clinic_configuration(demo):
    import json

    from emr.boulevard import BoulevardClient
    from emr.nextech import NextechClient
    from emr.services import EmrConfigError, emr_client

    assert isinstance(emr_client(clinic=demo), BuiltinCalendarClient)
    config = EmrConfig.objects.get(clinic=demo)
    config.kind, config.location_ref = "nextech", "1"
    config.credentials = json.dumps({"client_id": "c", "username": "u", "password": "p", "practice_id": "9"})
    config.save()
    assert isinstance(emr_client(clinic=demo), NextechClient)
    config.refresh_from_db()
    assert config.credentials.startswith("{")  # decrypted on read...
    from django.db import connection as conn

    with conn.cursor() as cursor:
        cursor.execute("SELECT credentials FROM emr_emrconfig WHERE id = %s", [config.pk])
        assert "password" not in cursor.fetchone()[0]  # ...and never stored in clear
    config.kind, config.credentials = "boulevard", json.dumps({"business_id": "b", "api_key": "k"})
    config.save()
    assert isinstance(emr_client(clinic=demo), BoulevardClient)
    config.credentials = json.dumps({"nope": 1})
    config.save()
    with pytest.raises(EmrConfigError, match="do not fit"):
        emr_client(clinic=demo)


class SlowRemoteEmr:
    """Stands in for a remote EMR: each availability call takes 200 ms and is counted."""

    def __init__(self, clinic):
        self.clinic, self.calls = clinic, 0

    def service_ref(self, service):
        return service.emr_service_id

    def provider_ref(self, provider):
        return provider.emr_ref

    def availability(self, *, service_ref, start, end, provider_ref=""):
        import time

        from emr.base import Slot

        self.calls += 1
        time.sleep(0.2)
        return [
            Slot(
                start=start + timedelta(hours=h),
                end=start + timedelta(hours=h, minutes=30),
                provider_ref="9",
                service_ref=service_ref,
            )
            for h in (10, 11, 14)
        ]


def test_concurrent_misses_make_one_emr_call_and_holds_invalidate(demo, django_capture_on_commit_callbacks):
    from datetime import date

    from django.core.cache import cache

    from emr.availability import availability_for_day

    cache.clear()
    emr = SlowRemoteEmr(demo)
    botox = Service.objects.get(clinic=demo, name="Botox")
    day, results = date(2026, 11, 24), []

    def ask():
        results.append(availability_for_day(client=emr, clinic=demo, service=botox, day=day))

    threads = [threading.Thread(target=ask) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert emr.calls == 1 and len(results) == 20 and all(r == results[0] for r in results) and results[0]
    # Later requests within 5 minutes are served from the cache...
    availability_for_day(client=emr, clinic=demo, service=botox, day=day)
    assert emr.calls == 1
    # ...until one of our own holds changes the clinic's free times (the hold invalidates on commit).
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    with django_capture_on_commit_callbacks(execute=True):  # the hold commits: its hook invalidates
        booking_hold(
            clinic=demo,
            service=botox,
            provider=smith,
            start=local(demo, 2026, 11, 24, 10),
            patient_phone="+16175550123",
            now=NOW,
        )
    availability_for_day(client=emr, clinic=demo, service=botox, day=day)
    assert emr.calls == 2


class MemoryEmr:
    """An EMR in memory: records appointments, can lose a time, or time out after writing."""

    capabilities = frozenset({"write"})

    def __init__(self):
        self.appointments, self.creates, self.taken, self.timeout_after_write = {}, 0, False, False

    def service_ref(self, service):
        return "svc"

    def provider_ref(self, provider):
        return "prac"

    def is_time_free(self, slot):
        return not self.taken

    def find_or_create_patient(self, patient):
        return "pat-1"

    def find_appointment(self, *, booking_id, patient_id, start):
        return self.appointments.get(booking_id)

    def create_appointment(self, request):
        from emr.base import Appointment, EmrError

        self.creates += 1
        self.appointments[request.booking_id] = Appointment(f"appt-{request.booking_id}", "booked", request.slot.start)
        if self.timeout_after_write:
            self.timeout_after_write = False
            raise EmrError("read timeout", transient=True)
        return self.appointments[request.booking_id]


def _held(demo, hour=11):
    smith = Provider.objects.get(name="Dr. Sarah Smith")
    botox = Service.objects.get(clinic=demo, name="Botox")
    return booking_hold(
        clinic=demo,
        service=botox,
        provider=smith,
        start=local(demo, 2026, 11, 24, hour),
        patient_phone="+16175550123",
        patient_name="Jane Doe",
        now=NOW,
    )


def test_confirm_on_the_builtin_calendar_is_idempotent(demo):
    from bookings.services import booking_confirm

    booking = _held(demo)
    confirmed = booking_confirm(booking_id=booking.pk)
    assert confirmed.status == "confirmed" and confirmed.emr_appointment_id == f"builtin-{booking.pk}"
    assert booking_confirm(booking_id=booking.pk).emr_appointment_id == confirmed.emr_appointment_id


def test_confirm_after_a_timed_out_write_finds_it_instead_of_writing_twice(demo):
    from bookings.services import booking_confirm
    from emr.base import EmrError

    emr, booking = MemoryEmr(), _held(demo)
    emr.timeout_after_write = True
    with pytest.raises(EmrError):
        booking_confirm(booking_id=booking.pk, client=emr)
    assert Booking.objects.get(pk=booking.pk).status == "held"
    confirmed = booking_confirm(booking_id=booking.pk, client=emr)  # the retry
    assert confirmed.status == "confirmed" and confirmed.emr_appointment_id == f"appt-{booking.pk}"
    assert emr.creates == 1


def test_time_taken_in_the_emr_fails_the_booking(demo):
    from bookings.services import BookingStateError, booking_confirm

    emr, booking = MemoryEmr(), _held(demo)
    emr.taken = True
    with pytest.raises(SlotUnavailable):
        booking_confirm(booking_id=booking.pk, client=emr)
    assert Booking.objects.get(pk=booking.pk).status == "failed" and emr.creates == 0
    with pytest.raises(BookingStateError):
        booking_confirm(booking_id=booking.pk, client=emr)
