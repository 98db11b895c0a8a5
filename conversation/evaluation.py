"""The assistant measured on patient texts nobody here wrote (conversation/eval/corpus/, by outside authors).

Each item names a context (a new patient after a missed call, three Botox times on offer, a confirmed paid Botox
booking), the patient's text (or a conversation of several, with payments), and the outcome a good receptionist
reaches: an action, checked on what happened (rows and states), plus facts the reply must or must not contain.
Never wording.

The corpus is split by a hash of each item's id: the dev half may be read while fixing; the test half is only run
to report its figure (``conversation_eval`` prints no detail for it). The whole run happens inside one
transaction that is rolled back, on the clinic file of the demo clinic, with the clock at Monday 2026-12-07 10:00
in Boston, texts in the locmem backend and tasks eager: it changes nothing in the database it runs on.
"""

import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.test import TestCase
from django.test.utils import override_settings

from bookings.models import Booking
from conversation import i18n
from conversation.corpus import half_of
from conversation.models import Conversation
from conversation.tools import Tools
from medspa.celery import app
from medspa.models import Clinic, Service, StaffAlert
from messaging.backends import locmem
from messaging.models import OptOut
from messaging.services import inbound_receive, missed_call_receive
from payments.models import Payment
from payments.services import sandbox_pay

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)  # Monday 10:00 in Boston
CLINIC_SLUG = "demo-clinic-001"
# Words that tell a Spanish reply from an English one (the check is on the reply's language, not its wording).
SPANISH = frozenset(
    [
        "el",
        "la",
        "los",
        "las",
        "de",
        "que",
        "para",
        "su",
        "sus",
        "cita",
        "hola",
        "gracias",
        "usted",
        "puede",
        "precio",
        "con",
        "por",
        "es",
        "una",
        "un",
        "más",
        "hora",
        "día",
        "tiene",
        "tenemos",
        "quiere",
        "desea",
        "sí",
        "le",
        "lo",
        "del",
        "al",
        "está",
        "están",
        "pago",
        "depósito",
        "y",
        "ya",
        "claro",
        "alguien",
        "pronto",
        "nuestra",
        "nuestro",
    ]
)
ENGLISH = frozenset(["the", "your", "you", "for", "and", "is", "to", "are", "we", "our", "would", "like"])


@dataclass
class Outcome:
    item_id: str
    kind: str
    half: str
    passed: bool
    problems: list = field(default_factory=list)
    replies: list = field(default_factory=list)


@dataclass
class Report:
    outcomes: list = field(default_factory=list)

    def figure(self, half: str, kind: str) -> tuple[int, int]:
        chosen = [o for o in self.outcomes if o.half == half and o.kind == kind]
        return sum(o.passed for o in chosen), len(chosen)


# --- Running -----------------------------------------------------------------------------------------------------


def evaluate(*, items: list[dict]) -> Report:
    import time_machine

    report = Report()
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with (
            override_settings(
                SMS_BACKEND="locmem",
                PAYMENTS_SANDBOX_ENABLED=True,
                CONVERSATION_ENGINE="rules",
                # A cache of its own: what a rolled-back item cached (availability, context) must not leak.
                CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "eval"}},
            ),
            time_machine.travel(NOW, tick=False),
            transaction.atomic(),
        ):
            clinic = _demo_clinic()
            for item in items:
                report.outcomes.append(_run_item(clinic, item))
            transaction.set_rollback(True)
    finally:
        app.conf.task_always_eager = eager
    return report


def _demo_clinic():
    from django.core.management import call_command

    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("seed_knowledge", verbosity=0)
    return Clinic.objects.get(slug=CLINIC_SLUG)


def _run_item(clinic, item) -> Outcome:
    from django.core.cache import cache

    outcome = Outcome(item["id"], item["_kind"], half_of(item["id"]), True)
    cache.clear()
    sid = transaction.savepoint()
    try:
        patient = _Patient(clinic)
        patient.start(item.get("context", "new"))
        turns = item["turns"] if item["_kind"] == "conversation" else [item]
        for number, turn in enumerate(turns, start=1):
            if turn.get("pay"):
                patient.give_name_if_asked()
                patient.pay()
                continue
            text = turn.get("patient", turn.get("text", ""))
            before = patient.snapshot()
            replies = patient.say(text, media=turn.get("media", False))
            outcome.replies.append((text, replies))
            for problem in _check_turn(patient, before, replies, turn.get("expect") or {}, item.get("language")):
                outcome.problems.append(f"turn {number}: {problem}")
        if item["_kind"] == "conversation":
            patient.give_name_if_asked()
            outcome.problems += [f"final: {p}" for p in _check_final(patient, item.get("final") or {})]
    except Exception as exc:  # an item that crashes the engine fails; the run goes on
        outcome.problems.append(f"crashed: {type(exc).__name__}: {exc}"[:300])
    finally:
        transaction.savepoint_rollback(sid)
    outcome.passed = not outcome.problems
    return outcome


class _Patient:
    """One patient of the demo clinic, with a number of their own, texting through the real pipeline."""

    count = 0

    def __init__(self, clinic):
        _Patient.count += 1
        self.clinic = clinic
        self.phone = f"+1617{200 + _Patient.count // 10000:03d}{_Patient.count % 10000:04d}"  # valid, distinct
        self.number = clinic.phone_numbers.filter(status="active").first().number
        self.original = None

    def _outbox(self):

        return [m.body for m in locmem.outbox if m.to_number == self.phone]

    def start(self, context):

        with TestCase.captureOnCommitCallbacks(execute=True):
            missed_call_receive(to_number=self.number, from_number=self.phone)
        if context == "offering_botox":
            self._offer_botox(days=(2, 3, 4))
        elif context == "booked_botox":
            self.original = self._book_botox()
        self.seen = len(self._outbox())

    def _tools(self):

        return Tools(self.conversation, now=NOW)

    def _offer_botox(self, days, hour=None):

        tools = self._tools()
        tools.choose_service(Service.objects.get(clinic=self.clinic, name="Botox").pk)
        tz = self.clinic.tz
        local = NOW.astimezone(tz)
        start = (local + timedelta(days=days[0])).replace(hour=hour or 9, minute=0, second=0, microsecond=0)
        end = (local + timedelta(days=days[-1])).replace(hour=18, minute=0, second=0, microsecond=0)
        if hour is not None:
            end = start + timedelta(minutes=30)
        return tools.find_open_times(start=start, end=end, label="later this week")

    def _book_botox(self):
        """A confirmed, deposit-paid Botox appointment on Thursday Dec 10 at 2:00 PM with Dr. Sarah Smith."""

        offered = self._offer_botox(days=(3,), hour=14)
        smith = next(o for o in offered if o.provider_name == "Dr. Sarah Smith")
        tools = self._tools()
        with TestCase.captureOnCommitCallbacks(execute=True):
            tools.hold_time(smith.index)
            tools.set_name("Jordan", "Lee")
            tools.request_deposit()
        self.pay()
        booking = Booking.objects.get(patient_phone=self.phone, status="confirmed")

        Conversation.objects.filter(pk=self.conversation.pk).update(state="confirmed", offered_slots=[])
        return booking

    @property
    def conversation(self):

        return Conversation.objects.get(clinic=self.clinic, patient_phone=self.phone)

    def say(self, text, *, media=False):

        photo = [{"url": "https://media.example.com/photo.jpg", "content_type": "image/jpeg"}] if media else []
        with TestCase.captureOnCommitCallbacks(execute=True):
            inbound_receive(
                provider="telnyx",
                provider_message_id=str(uuid.uuid4()),
                from_number=self.phone,
                to_number=self.number,
                body=text,
                media=photo,
            )
        mine = self._outbox()
        new, self.seen = mine[self.seen :], len(mine)
        return new

    def give_name_if_asked(self):
        """The name the assistant asks for once a time is held. The corpus's authors were not told of that step
        (they wrote the pick, then the payment), so the patient answers it as anyone would, before paying or at
        the end; nothing is checked on it."""
        c = self.conversation
        if c.state == Conversation.State.HOLDING and not c.patient_name:
            self.say("Alex Rivera")

    def pay(self):

        payment = Payment.objects.filter(booking__patient_phone=self.phone, status="created").order_by("-pk").first()
        if payment is None:
            return
        with TestCase.captureOnCommitCallbacks(execute=True):
            sandbox_pay(payment=payment)
        self.seen = len(self._outbox())

    def bookings(self):

        return Booking.objects.filter(patient_phone=self.phone)

    def snapshot(self):
        c = self.conversation
        return {
            "state": c.state,
            "active": set(self.bookings().active().values_list("pk", flat=True)),
            "owner": c.owner,
        }


# --- Checking ----------------------------------------------------------------------------------------------------

NO_INFO = "i don't have that information"
ASKS_WHEN = re.compile(r"day|time|\bdia\b|\bhora")  # "what day or time", in English or Spanish
NO_INFO_ES = "no tengo esa informacion"  # conversation.i18n's Spanish of the same hand-off


def _services(clinic):

    return {s.name: s for s in Service.objects.filter(clinic=clinic, active=True)}


def _check_turn(patient, before, replies, expect, language=None) -> list[str]:

    problems = []
    reply = "\n".join(replies)
    low = reply.lower()
    c = patient.conversation
    active = set(patient.bookings().active().values_list("pk", flat=True))
    action = expect.get("action")
    handed = c.owner == "staff" or c.needs_staff
    if not replies and action not in ("opt_out",):
        problems.append("no reply")
    checks = {
        "answer": lambda: (
            (c.state != "offering" or before["state"] == "offering")
            and not (active - before["active"])
            and not handed
            and NO_INFO not in low
            and NO_INFO_ES not in low
        ),
        "offer_times": lambda: c.state == "offering" and bool(c.offered_slots) and re.search(r"\b1\.", reply),
        "ask_which_service": lambda: (
            not c.offered_slots and sum(name.lower() in low for name in _services(patient.clinic)) >= 2
        ),
        "hold": lambda: (
            c.booking_id is not None and c.booking.status in ("held", "awaiting_deposit", "confirmed", "awaiting_staff")
        ),
        "cancel_confirm": lambda: (
            before["active"] and before["active"] <= active and ("yes" in low or "responda si" in low)
        ),
        "reschedule": lambda: (
            len(active) <= max(1, len(before["active"]))
            and (c.rescheduling_id is not None or c.state == "offering" or bool(ASKS_WHEN.search(low)))
        ),
        "handoff": lambda: handed,
        "urgent": lambda: StaffAlert.objects.filter(
            kind=StaffAlert.Kind.URGENT, object_id=str(c.pk), object_type="conversation.conversation"
        ).exists(),
        "opt_out": lambda: OptOut.objects.filter(clinic=patient.clinic, phone=patient.phone, active=True).exists(),
        "help": lambda: patient.clinic.name.lower() in low and not handed,
        "refuse_other_patient": lambda: not (active - before["active"]) and "you're booked" not in low,
        "acknowledge_photo": lambda: bool(replies) and NO_INFO not in low and NO_INFO_ES not in low,
    }
    if action and not checks[action]():
        problems.append(f"expected {action}; state {c.state}, staff {handed}, bookings {len(active)}")
    services = _services(patient.clinic)
    name = expect.get("service")
    if name and action in ("offer_times", "answer") and name.lower() not in low:
        problems.append(f"reply does not name {name}")
    if expect.get("price_shown") and name in services:
        price = services[name].price_text()  # as quoted in English, or as conversation.i18n says it in Spanish
        spanish = "es" in (expect.get("reply_language"), language)  # a Spanish conversation quotes it in Spanish
        if price not in reply and (not spanish or i18n.price_es(price) not in reply):
            problems.append(f"reply lacks the price {price!r}")
    for fact in expect.get("facts") or []:
        if fact.lower() not in low:
            problems.append(f"reply lacks {fact!r}")
    for bad in expect.get("not") or []:
        if bad.lower() in low:
            problems.append(f"reply contains {bad!r}")
    if expect.get("reply_language") == "es" and not _spanish(reply):
        problems.append("reply is not in Spanish")
    return problems


def _spanish(text: str) -> bool:
    """Whether the reply speaks Spanish; what it quotes between double quotes (the clinic's documents, which have
    no Spanish version and are quoted as they are: conversation.i18n) is not counted either way."""
    words = re.findall(r"[a-záéíóúñü]+", re.sub(r'"[^"]*"', " ", text).lower())
    return sum(w in SPANISH for w in words) >= 2 and sum(w in SPANISH for w in words) > sum(w in ENGLISH for w in words)


def _check_final(patient, final) -> list[str]:

    problems = []
    c = patient.conversation
    upcoming = patient.bookings().filter(status__in=["confirmed", "awaiting_staff"], start__gt=NOW)
    if "confirmed_bookings" in final and upcoming.count() != final["confirmed_bookings"]:
        problems.append(f"{upcoming.count()} confirmed bookings, expected {final['confirmed_bookings']}")
    if (
        final.get("service")
        and final.get("confirmed_bookings")
        and not upcoming.filter(service__name=final["service"]).exists()
    ):
        problems.append(f"no confirmed {final['service']}")
    opted = OptOut.objects.filter(clinic=patient.clinic, phone=patient.phone, active=True).exists()
    if "opted_out" in final and opted != final["opted_out"]:
        problems.append(f"opted out {opted}, expected {final['opted_out']}")
    handed = c.owner == "staff" or c.needs_staff
    if "handed_off" in final and handed != final["handed_off"]:
        problems.append(f"handed off {handed}, expected {final['handed_off']}")
    if patient.original is not None:
        patient.original.refresh_from_db()
        if final.get("cancelled") and patient.original.status != "cancelled":
            problems.append(f"the booking is {patient.original.status}, expected cancelled")
        if final.get("moved"):
            moved = upcoming.filter(rescheduled_from=patient.original).exists()
            if patient.original.status != "cancelled" or not moved:
                problems.append("the booking was not moved")
    return problems
