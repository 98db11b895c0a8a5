"""The waitlist: the assistant offers it when no time fits, a freed time is held and texted to the waiting patients
one at a time in order of joining, and the patient's "yes" or payment books it through the usual flow. The clock is
pinned (Monday 10:15 in Boston unless a test says otherwise), since quiet hours and "today" depend on it."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.management import call_command
from django.db import connection

from bookings.models import Booking
from bookings.services import booking_cancel, bookings_expire_holds
from conversation.models import Conversation
from conversation.services import conversation_for
from emr.models import Provider
from medspa.models import Clinic, Service
from messaging.models import Message
from waitlist.models import FreedTime, WaitlistEntry, WaitlistOffer, WaitlistSettings
from waitlist.services import freed_time_offer, offer_send, waitlist_join, waitlist_sweep

from .fakes.openai import text, tool, tool_result
from .test_assistant import Patient

pytest_plugins = ["tests.fakes.nextech"]

NOW = datetime(2026, 11, 23, 15, 15, tzinfo=UTC)  # Monday 10:15 in Boston
P1, P2, OTHER, BLOCK = "+16175550123", "+16175550124", "+16175550901", "+16175550902"


def thursday(clinic, hour, minute=0):
    return datetime(2026, 11, 26, hour, minute, tzinfo=clinic.tz)


def fill_thursday(clinic):
    """Thursday has no Botox time left: Dr. Smith is booked 9:00-9:30 (another patient's, the booking the tests
    free) and 9:30-5:00, Dr. Johnson 10:00-6:00. Returns the 9:00 booking."""
    botox = Service.objects.get(clinic=clinic, name="Botox")
    smith = Provider.objects.get(clinic=clinic, name="Dr. Sarah Smith")
    johnson = Provider.objects.get(clinic=clinic, name="Dr. Emily Johnson")
    rows = [(smith, 9, 0, 9, 30), (smith, 9, 30, 17, 0), (johnson, 10, 0, 18, 0)]
    made = [
        Booking.objects.create(
            clinic=clinic,
            patient_phone=OTHER if (h1, m1) == (9, 0) else BLOCK,
            service=botox,
            provider=provider,
            start=thursday(clinic, h1, m1),
            end=thursday(clinic, h2, m2),
            status=Booking.Status.CONFIRMED,
        )
        for provider, h1, m1, h2, m2 in rows
    ]
    return made[0]


@pytest.fixture
def clock():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def patients(demo, clock, django_capture_on_commit_callbacks, sms_outbox):
    return [Patient(django_capture_on_commit_callbacks, sms_outbox, phone=p) for p in (P1, P2)]


def join(patient, text="can i get botox on thursday"):
    """The patient asks for a full day, is offered the waitlist and says yes."""
    question = patient.reply(text)
    assert "don't see any Botox openings" in question and "Want me to text you if something opens" in question
    done = patient.reply("yes")
    assert done.startswith("Done! I'll text you if a Botox time opens")
    return WaitlistEntry.objects.get(patient_phone=patient.phone, state="waiting")


def cancel(capture, booking):
    with capture(execute=True):
        booking_cancel(booking_id=booking.pk, by="staff")


def active_at(clinic, start):
    return Booking.objects.filter(clinic=clinic, start=start).exclude(status__in=["cancelled", "expired", "failed"])


# --- Joining -------------------------------------------------------------------------------------------------------


def test_a_day_with_nothing_open_offers_the_waitlist_and_yes_joins_it(demo, patients):
    fill_thursday(demo)
    entry = join(patients[0])
    assert entry.service.name == "Botox" and entry.provider is None and entry.joined_at == NOW
    assert entry.window_start <= thursday(demo, 9) < entry.window_end


def test_no_to_the_waitlist_question_asks_for_another_day(demo, patients):
    fill_thursday(demo)
    patients[0].reply("can i get botox on thursday")
    assert "What day or time would work better" in patients[0].reply("no")
    assert not WaitlistEntry.objects.filter(state="waiting").exists()


def test_a_day_nobody_works_still_asks_about_other_days(demo, patients):
    text = patients[0].reply("can i get botox on sunday")
    assert "The nearest open times: 1." in text and "text you if something opens" not in text
    assert not WaitlistEntry.objects.exists()


def test_the_waitlist_is_not_offered_when_the_clinic_turned_it_off(demo, patients):
    fill_thursday(demo)
    WaitlistSettings.objects.create(clinic=demo, enabled=False)
    text = patients[0].reply("can i get botox on thursday")
    assert "The nearest open times: 1." in text and "text you if something opens" not in text


# --- A freed time, one patient at a time ---------------------------------------------------------------------------


def test_a_cancelled_time_is_held_for_the_first_patient_who_joined_and_books_through_the_usual_flow(
    demo, patients, django_capture_on_commit_callbacks
):
    first_booking = fill_thursday(demo)
    first, second = patients
    join(first)
    join(second)

    cancel(django_capture_on_commit_callbacks, first_booking)

    (offer_text,) = first._new()
    assert "a Botox time opened up, Thu Nov 26, 9:00 AM ET with Dr. Sarah Smith" in offer_text
    assert "held for you until 10:30 AM ET" in offer_text and "Reply YES with the name" in offer_text
    assert second._new() == []
    offer = WaitlistOffer.objects.get()
    assert offer.patient_phone == P1 and offer.booking.status == "held"
    assert offer.expires_at == NOW + timedelta(minutes=15)
    assert first.conversation.booking_id == offer.booking_id and first.conversation.state == "holding"
    assert [datetime.fromisoformat(s["start"]) for s in first.conversation.offered_slots] == [thursday(demo, 9)]

    assert "What name" in first.reply("yes")
    link = first.reply("jane doe")
    assert "$50 deposit" in link and "/pay/" in link
    (confirmation,) = first.pay()
    assert (
        confirmation.startswith("You're booked: Botox with Dr. Sarah Smith")
        and "Thu Nov 26, 9:00 AM ET" in confirmation
    )
    offer.refresh_from_db()
    assert offer.state == "taken" and offer.booking.status == "confirmed"
    assert WaitlistEntry.objects.get(patient_phone=P1).state == "booked"
    assert active_at(demo, thursday(demo, 9)).count() == 1


def test_a_named_patient_gets_the_deposit_link_in_the_offer_and_1_books_it(
    demo, patients, django_capture_on_commit_callbacks
):
    first_booking = fill_thursday(demo)
    first = patients[0]
    first.reply("hi")
    Conversation.objects.filter(patient_phone=P1).update(patient_name="Maria Garcia")
    join(first)
    cancel(django_capture_on_commit_callbacks, first_booking)
    (offer_text,) = first._new()
    assert "pay the $50 deposit here:" in offer_text and "/pay/" in offer_text and "until 10:30 AM ET" in offer_text
    assert first.conversation.state == "awaiting_deposit"
    booking = WaitlistOffer.objects.get().booking
    booking.refresh_from_db()
    assert booking.status == "awaiting_deposit" and booking.hold_expires_at == NOW + timedelta(minutes=15)
    again = first.reply("1")
    assert "Thanks, Maria!" in again and "/pay/" in again
    (confirmation,) = first.pay()
    assert confirmation.startswith("You're booked")


def test_an_offer_not_taken_in_time_goes_to_the_next_patient(demo, patients, django_capture_on_commit_callbacks, clock):
    first_booking = fill_thursday(demo)
    first, second = patients
    join(first)
    join(second)
    cancel(django_capture_on_commit_callbacks, first_booking)
    assert len(first._new()) == 1

    clock.shift(timedelta(minutes=16))
    with django_capture_on_commit_callbacks(execute=True):
        bookings_expire_holds()

    (offer_text,) = second._new()
    assert "Thu Nov 26, 9:00 AM ET" in offer_text and "until 10:46 AM ET" in offer_text
    assert first._new() == []
    first_offer, second_offer = WaitlistOffer.objects.order_by("pk")
    assert (first_offer.state, second_offer.state) == ("expired", "offered")
    assert second_offer.patient_phone == P2 and active_at(demo, thursday(demo, 9)).count() == 1
    assert "has expired" in first.reply("yes")  # too late: the usual lapsed-hold answer


def test_no_to_an_offer_releases_it_to_the_next_patient_at_once(demo, patients, django_capture_on_commit_callbacks):
    first_booking = fill_thursday(demo)
    first, second = patients
    join(first)
    join(second)
    cancel(django_capture_on_commit_callbacks, first_booking)
    first._new()
    assert "let that time go" in first.reply("no thanks")
    (offer_text,) = second._new()
    assert "Thu Nov 26, 9:00 AM ET" in offer_text
    assert list(WaitlistOffer.objects.order_by("pk").values_list("state", flat=True)) == ["declined", "offered"]
    assert WaitlistEntry.objects.get(patient_phone=P1).state == "waiting"  # still waiting for other times


def test_a_time_freed_by_another_patients_reschedule_is_offered(demo, patients, django_capture_on_commit_callbacks):
    fill_thursday(demo)
    join(patients[0])
    mover = Patient(django_capture_on_commit_callbacks, patients[0].outbox, phone=OTHER)
    assert "Here are open times for Botox" in mover.reply("can i move my botox appointment to friday")
    assert "is now Fri Nov 27" in mover.reply("1")
    (offer_text,) = patients[0]._new()
    assert "Thu Nov 26, 9:00 AM ET with Dr. Sarah Smith" in offer_text
    assert WaitlistOffer.objects.get().freed.source_booking.status == "cancelled"


def test_a_patient_holding_an_offer_is_not_offered_a_second_time_at_once(
    demo, patients, django_capture_on_commit_callbacks
):
    first_booking = fill_thursday(demo)
    ten = Booking.objects.get(provider__name="Dr. Emily Johnson")
    first, second = patients
    join(first)
    join(second)
    cancel(django_capture_on_commit_callbacks, first_booking)
    cancel(django_capture_on_commit_callbacks, ten)
    offers = WaitlistOffer.objects.order_by("pk")
    assert [(o.patient_phone, o.start) for o in offers] == [(P1, thursday(demo, 9)), (P2, thursday(demo, 10))]


def test_a_patient_is_offered_at_most_the_daily_limit(demo, patients, django_capture_on_commit_callbacks):
    WaitlistSettings.objects.create(clinic=demo, max_offers_per_day=1)
    first_booking = fill_thursday(demo)
    ten = Booking.objects.get(provider__name="Dr. Emily Johnson")
    first, second = patients
    join(first)
    join(second)
    cancel(django_capture_on_commit_callbacks, first_booking)
    first._new()
    first.reply("no")  # the 9:00 goes to the second patient
    second._new()
    second.reply("no")
    cancel(django_capture_on_commit_callbacks, ten)  # the first patient had their one offer today
    assert first._new() == [] and len(second._new()) == 0  # second: declined 9:00, has had one offer too
    assert FreedTime.objects.filter(state="unmatched").exists()


def test_an_opted_out_patient_is_skipped_and_leaves_the_waitlist(demo, patients, django_capture_on_commit_callbacks):
    first_booking = fill_thursday(demo)
    first, second = patients
    join(first)
    join(second)
    first.say("STOP")
    cancel(django_capture_on_commit_callbacks, first_booking)
    assert WaitlistOffer.objects.get().patient_phone == P2
    assert WaitlistEntry.objects.get(patient_phone=P1).state == "cancelled"
    assert not Message.objects.filter(to_number=P1, idempotency_key__startswith="waitlist-offer").exists()


def test_in_quiet_hours_the_patient_is_skipped_rather_than_held(demo, django_capture_on_commit_callbacks, sms_outbox):
    first_booking = fill_thursday(demo)
    botox = Service.objects.get(clinic=demo, name="Botox")
    late = datetime(2026, 11, 24, 2, 30, tzinfo=UTC)  # Monday 9:30 pm in Boston, 6:30 pm in San Francisco
    with time_machine.travel(late, tick=False):
        for phone in (P1, "+14155550123"):
            conversation = conversation_for(clinic=demo, patient_phone=phone, origin="inbound_text")
            Conversation.objects.filter(pk=conversation.pk).update(service=botox, state="engaged")
            conversation.refresh_from_db()
            waitlist_join(
                conversation=conversation, service=botox, start=late, end=late + timedelta(days=5), label="this week"
            )
        cancel(django_capture_on_commit_callbacks, first_booking)
    offer = WaitlistOffer.objects.get()
    assert offer.patient_phone == "+14155550123"  # Boston is in quiet hours, San Francisco is not
    (text,) = [m for m in sms_outbox if m.to_number == "+14155550123"]
    assert "9:00 AM ET" in text.body
    assert not [m for m in sms_outbox if m.to_number == P1]


def test_an_offer_is_texted_once_and_the_sweep_finishes_what_a_lost_task_left(demo, patients, clock):
    fill_thursday(demo)
    first = patients[0]
    join(first)
    smith = Provider.objects.get(clinic=demo, name="Dr. Sarah Smith")
    Booking.objects.filter(start=thursday(demo, 9)).update(status="cancelled")  # freed, and its task was lost
    freed = FreedTime.objects.create(
        clinic=demo, provider=smith, start=thursday(demo, 9), end=thursday(demo, 9, 30), reason="cancelled"
    )
    FreedTime.objects.filter(pk=freed.pk).update(created_at=NOW - timedelta(minutes=1))
    done = waitlist_sweep()
    assert done["freed"] == [freed.pk]
    offer = WaitlistOffer.objects.get()
    assert offer_send(offer_id=offer.pk) == []
    assert freed_time_offer(freed_id=freed.pk) is None
    waitlist_sweep()
    assert Message.objects.filter(idempotency_key__startswith=f"waitlist-offer-{offer.pk}#").count() == 1


def test_with_the_emr_down_the_freed_time_is_retried_with_backoff_and_staff_are_told(demo, clock, fake_nextech):
    from medspa.models import StaffAlert

    from .test_bookings import nextech_clinic

    nextech_clinic(demo, fake_nextech)
    fake_nextech.fail(503, times=100)
    botox = Service.objects.get(clinic=demo, name="Botox")
    smith = Provider.objects.get(clinic=demo, name="Dr. Sarah Smith")
    conversation = conversation_for(clinic=demo, patient_phone=P1, origin="inbound_text")
    waitlist_join(conversation=conversation, service=botox, start=NOW, end=NOW + timedelta(days=5), label="this week")
    freed = FreedTime.objects.create(
        clinic=demo, provider=smith, start=thursday(demo, 9), end=thursday(demo, 9, 30), reason="cancelled"
    )
    assert freed_time_offer(freed_id=freed.pk) is None
    freed.refresh_from_db()
    assert (freed.state, freed.attempts, freed.next_attempt_at) == ("pending", 1, NOW + timedelta(seconds=30))
    assert StaffAlert.objects.filter(clinic=demo, kind="emr_error", text__contains=f"Freed time #{freed.pk}").exists()
    assert waitlist_sweep()["freed"] == []  # not due yet
    clock.shift(timedelta(seconds=31))
    assert waitlist_sweep()["freed"] == [freed.pk]
    freed.refresh_from_db()
    assert (freed.state, freed.attempts) == ("pending", 2) and not WaitlistOffer.objects.exists()


def test_entries_expire_when_their_window_has_passed(demo, patients, clock):
    fill_thursday(demo)
    entry = join(patients[0])
    clock.move_to(entry.expires_at + timedelta(seconds=1))
    assert waitlist_sweep()["expired"] == 1
    entry.refresh_from_db()
    assert entry.state == "expired"


def test_the_openai_engine_is_told_to_offer_the_waitlist_and_joins_it_after_a_yes(
    demo, llm, clock, django_capture_on_commit_callbacks, sms_outbox
):
    first_booking = fill_thursday(demo)
    botox = Service.objects.get(clinic=demo, name="Botox")
    patient = Patient(django_capture_on_commit_callbacks, sms_outbox, phone=P1)
    llm.script(
        tool("find_open_times", {"service_id": botox.pk, "when": "thursday"}),
        text("Thursday is full. Want me to text you if something opens?"),
    )
    patient.reply("any botox thursday?")
    assert "text them if something opens" in tool_result(llm.calls[-1])["note"]
    llm.script(tool("join_waitlist", {"when": "thursday"}), text("Done! I'll text you if a Thursday time opens."))
    patient.reply("yes please")
    assert tool_result(llm.calls[-1])["joined"]
    entry = WaitlistEntry.objects.get(patient_phone=P1)
    assert (entry.state, entry.service) == ("waiting", botox)

    cancel(django_capture_on_commit_callbacks, first_booking)
    (offer_text,) = patient._new()
    assert "Thu Nov 26, 9:00 AM ET" in offer_text and patient.conversation.state == "holding"


# --- Two waitlisted patients racing for one freed time (PostgreSQL) -------------------------------------------------


@pytest.mark.skipif(connection.vendor != "postgresql", reason="real concurrent connections: PostgreSQL")
@pytest.mark.django_db(transaction=True)
def test_two_waitlisted_patients_racing_for_one_freed_time_one_gets_it_the_other_the_next_or_nothing(sms_outbox):
    with time_machine.travel(NOW, tick=False) as clock:
        call_command("seed_knowledge", verbosity=0)
        clinic = Clinic.objects.get(slug="demo-clinic-001")
        botox = Service.objects.get(clinic=clinic, name="Botox")
        smith = Provider.objects.get(clinic=clinic, name="Dr. Sarah Smith")
        nine = fill_thursday(clinic)
        for phone in (P1, P2):
            conversation = conversation_for(clinic=clinic, patient_phone=phone, origin="inbound_text")
            waitlist_join(
                conversation=conversation,
                service=botox,
                start=NOW,
                end=thursday(clinic, 23),
                label="this week",
            )
            clock.shift(timedelta(seconds=1))
        Booking.objects.filter(pk=nine.pk).update(status="cancelled")
        # The same freed time recorded twice (the cancellation's task and a sweep), each processed by two workers.
        freed = [
            FreedTime.objects.create(clinic=clinic, provider=smith, start=nine.start, end=nine.end, reason="cancelled")
            for _ in range(2)
        ]
        barrier, errors = threading.Barrier(4), []

        def offer(freed_id):
            try:
                barrier.wait()
                freed_time_offer(freed_id=freed_id)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=offer, args=(f.pk,)) for f in freed for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert errors == []
        (won,) = WaitlistOffer.objects.all()
        assert won.patient_phone == P1  # first to join
        assert active_at(clinic, nine.start).count() == 1
        assert sorted(FreedTime.objects.values_list("state", flat=True)) == ["gone", "offered"]
        assert [m.to_number for m in sms_outbox] == [P1]

        clock.shift(timedelta(minutes=16))  # the first patient lets it go: the other is offered it next
        bookings_expire_holds()
        first, second = WaitlistOffer.objects.order_by("pk")
        assert (first.state, second.state, second.patient_phone) == ("expired", "offered", P2)
        assert active_at(clinic, nine.start).count() == 1
        assert [m.to_number for m in sms_outbox] == [P1, P2]


def test_the_admins_waitlist_lists_entries_with_their_offers_in_clinic_time(
    demo, patients, django_capture_on_commit_callbacks, admin_client
):
    from django.urls import reverse

    first_booking = fill_thursday(demo)
    entry = join(patients[0])
    cancel(django_capture_on_commit_callbacks, first_booking)
    listing = admin_client.get(reverse("admin:waitlist_waitlistentry_changelist"))
    assert listing.status_code == 200 and f"Waitlist entry #{entry.pk}" in listing.content.decode()
    page = admin_client.get(reverse("admin:waitlist_waitlistentry_change", args=[entry.pk])).content.decode()
    assert "Thu Nov 26, 9:00 AM ET" in page and "Offered (held)" in page
    admin_client.post(
        reverse("admin:waitlist_waitlistentry_changelist"),
        {"action": "cancel_entries", "_selected_action": [entry.pk]},
    )
    entry.refresh_from_db()
    assert entry.state == "cancelled"


# --- Spanish: an entry made in a Spanish conversation is offered in Spanish ---------------------------------------


def test_a_spanish_patient_joins_in_spanish_and_gets_the_offer_in_spanish(
    demo, patients, django_capture_on_commit_callbacks
):
    first_booking = fill_thursday(demo)
    first, english = patients
    question = first.reply("quiero botox el jueves")
    assert question.startswith("No veo horarios de Botox disponibles") and "Responda SI" in question
    assert first.reply("si").startswith("Listo. Le escribiré si se abre un horario de Botox")
    entry = WaitlistEntry.objects.get(patient_phone=P1, state="waiting")
    assert entry.language == "es"
    join(english)  # behind the Spanish patient: gets nothing yet

    cancel(django_capture_on_commit_callbacks, first_booking)
    (offer_text,) = first._new()
    assert offer_text == (
        "Buenas noticias de Glow Demo Med Spa: se abrio un horario de Botox, jue 26 nov, 9:00 AM ET con Dr. Sarah "
        "Smith. Se lo apartamos hasta las 10:30 AM ET. Le interesa? Responda SI y el nombre para la cita, o NO si no "
        "lo quiere."
    )
    assert not set("áíóú¿¡") & set(offer_text)
    offer = WaitlistOffer.objects.get()
    assert offer.booking.language == "es"
    assert "A nombre de quién" in first.reply("si")
    link = first.reply("Maria Garcia")
    assert link.startswith("Gracias, Maria. Le aparto Botox el jue 26 nov, 9:00 AM ET") and "/pay/" in link
    (confirmation,) = first.pay()
    assert confirmation.startswith("Su cita esta confirmada: Botox con Dr. Sarah Smith")


def test_a_spanish_offer_with_the_deposit_link_and_no_to_it(demo, patients, django_capture_on_commit_callbacks):
    first_booking = fill_thursday(demo)
    first = patients[0]
    first.reply("hola")
    Conversation.objects.filter(patient_phone=P1).update(patient_name="Maria Garcia")
    first.reply("quiero botox el jueves")
    first.reply("si")
    cancel(django_capture_on_commit_callbacks, first_booking)
    (offer_text,) = first._new()
    assert offer_text.startswith("Buenas noticias de Glow Demo Med Spa: se abrio un horario de Botox, jue 26 nov")
    assert " Para reservarlo, pague el deposito de $50 aqui: " in offer_text and offer_text.endswith("(o responda NO)")
    no = first.reply("no")
    assert no == "Perfecto, ya liberé ese horario. Lo mantengo en la lista por si se abre otro."
    assert WaitlistOffer.objects.get().state == "declined"


def test_an_english_entry_is_offered_in_english_even_at_a_clinic_with_spanish_on(demo, patients):
    fill_thursday(demo)
    entry = join(patients[0])
    assert entry.language == "en" and demo.spanish
