"""What an end-to-end scenario is made of: a fresh clinic (number, catalog, provider, EMR, Square account), a patient
who calls, texts and pays the way the providers deliver those events to us (signed webhooks posted over HTTP to the
web process), and the clinic's texts as the patient receives them (read back from the fake Telnyx API).

Texts are the demo patients' (fake names, 555 numbers). The wording the patient must receive is written here, in
one place (``Expected``), from the product's templates and the rules engine's dialogue.
"""

import base64
import itertools
import json
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import httpx
from django.utils import timezone

from emr.models import EmrConfig, Provider, WorkingHours
from medspa.models import Clinic, Service
from medspa.timetext import time_label, when_es, when_label
from messaging.models import Message, PhoneNumber
from payments.backends.square import sign as square_sign
from payments.models import OutboxItem, Payment, PaymentConfig
from tests.messaging_helpers import TELNYX_KEY

from .stack import SQUARE_SIGNATURE_KEY

_numbers = itertools.count()
EMR_FAKES = ("nextech", "boulevard", "zenoti", "square")  # the EMR kinds whose fake offers 13:00, 14:00 and 15:00
CONSENT = (
    "By checking this box I agree to receive appointment texts from {clinic}. "
    "Msg & data rates may apply. Reply STOP to opt out."
)


def sending_zone(now=None) -> str:
    """A time zone in which it is now about noon (Etc/GMT-12 .. Etc/GMT+11).

    Why: intros and staff notices wait for the recipient's sending window (8:00-21:00 federal, stricter in some
    states; messaging/compliance.py), in the zone of the patient's area code, or the clinic's when the area code spans
    several zones. The web process and the workers run on the real clock (they cannot be time-travelled), so the
    scenarios use patients on area code 208 (Idaho: Boise and Los Angeles zones, no state rule) and give the clinic
    this zone: whenever the suite runs, it is mid-day for the clinic and the patient, texts go out at once, and
    "tomorrow afternoon" is a day away on the clinic's calendar."""
    now = now or datetime.now(UTC)
    east = 12 - now.hour  # hours east of UTC that make it 12:xx now: +12 .. -11, all of them Etc zones
    return "Etc/GMT" if east == 0 else f"Etc/GMT{-east:+d}"  # the Etc zones' signs are POSIX's: inverted


@dataclass
class Setup:
    clinic: Clinic
    number: str  # the clinic's texting number
    patient_phone: str
    service: Service
    provider: Provider
    emr: str  # builtin, nextech, boulevard, zenoti, square (Appointments), manual

    @property
    def tz(self) -> ZoneInfo:
        return self.clinic.tz


def make_clinic(stack, *, emr="nextech", label="") -> Setup:
    """A fresh clinic on a fresh number, with its own Square account (at the fake) and the given EMR."""
    # Imported here: other test modules load these as pytest plugins, which must import them first.
    from tests.fakes import boulevard as boulevard_fake
    from tests.fakes import nextech as nextech_fake
    from tests.fakes import square as square_fake
    from tests.fakes import square_appointments as appointments_fake
    from tests.fakes import zenoti as zenoti_fake

    n = 10 + next(_numbers) % 40  # clinic numbers 555-0110.., patients 555-0160..: fictional 555-01xx numbers
    name = f"Lumen Aesthetics {label or n}".strip()
    clinic = Clinic.objects.create(
        name=name,
        slug=f"e2e-{n}-{uuid.uuid4().hex[:6]}",
        timezone=sending_zone(),
        street="12 Harbor Way",
        city="Boise",
        state="ID",
        postal_code="83702",
        front_desk_phone="+12085550100",
        website=f"https://lumen-{n}.example.com",
    )
    number = f"+120855501{n:02d}"
    PhoneNumber.objects.create(clinic=clinic, number=number, provider="telnyx", messaging_profile_id=f"e2e-profile-{n}")
    PaymentConfig.objects.create(
        clinic=clinic,
        provider="square",
        square_access_token=square_fake.TOKEN,
        square_location_id=square_fake.LOCATION_ID,
    )
    botox = Service.objects.create(
        clinic=clinic,
        name="Botox",
        aliases=["tox", "botulinum"],
        price_type=Service.PriceType.PER_UNIT,
        price_cents=1200,
        unit_name="unit",
        typical_units_min=20,
        typical_units_max=30,
        duration_minutes=30,
        deposit_cents=5000,
        # the EMR's service (Boulevard's item, Zenoti's service, Square's service variation) or appointment type
        emr_service_id={
            "boulevard": boulevard_fake.ITEM_ID,
            "zenoti": zenoti_fake.SERVICE_ID,
            "square": appointments_fake.VARIATION_ID,
        }.get(emr, "12"),
    )
    Service.objects.create(
        clinic=clinic, name="HydraFacial", price_type=Service.PriceType.FIXED, price_cents=19900, duration_minutes=60
    )
    provider_ref = {
        "boulevard": boulevard_fake.STAFF_ID,
        "zenoti": zenoti_fake.THERAPIST_ID,
        "square": appointments_fake.TEAM_A,
    }.get(emr, "9")
    provider = Provider.objects.create(clinic=clinic, name="Dr. Maya Chen", title="MD", emr_ref=provider_ref)
    provider.services.set([botox])
    WorkingHours.objects.bulk_create(
        WorkingHours(clinic=clinic, provider=provider, weekday=day, start=clock(9), end=clock(17)) for day in range(7)
    )
    config = {"clinic": clinic, "kind": emr}
    if emr == "nextech":
        config["credentials"] = json.dumps(
            {
                "client_id": nextech_fake.CLIENT_ID,
                "username": nextech_fake.USERNAME,
                "password": nextech_fake.PASSWORD,
                "practice_id": nextech_fake.PRACTICE_ID,
                "base_url": f"{stack.nextech.root}/api",
                "token_url": f"{stack.nextech.root}/token",
            }
        )
        config["location_ref"] = nextech_fake.LOCATION_ID
        # The practice's free slots: 13:00-16:00 on the clinic's clock (the fake's default is 9:00-12:00 EST).
        offset = timezone.localtime(timezone.now(), clinic.tz).utcoffset()
        # Nextech requires an email for a new patient (issue 18): the SMS flow collects none yet, so the fake is
        # told to let that one requirement go here (tests/test_nextech.py shows the refusal).
        stack.nextech.config(
            utc_offset_minutes=int(offset.total_seconds() // 60), first_hour=13, prospect_email_required=False
        )
    if emr == "boulevard":
        config["credentials"] = json.dumps(
            {
                "business_id": boulevard_fake.BUSINESS_ID,
                "api_key": boulevard_fake.API_KEY,
                "api_secret": boulevard_fake.API_SECRET,  # signs the client token that reads and cancels
                "base_url": f"{stack.boulevard.root}/api/2020-01/{boulevard_fake.BUSINESS_ID}/client",
            }
        )
        config["location_ref"] = boulevard_fake.LOCATION_ID
        stack.boulevard.schedule(emr_open_times(clinic.tz))
    if emr == "zenoti":
        config["credentials"] = json.dumps(
            {"api_key": zenoti_fake.API_KEY, "base_url": stack.zenoti.root, "duration_minutes": 30}
        )
        config["location_ref"] = zenoti_fake.CENTER_ID
        stack.zenoti.schedule(emr_open_times(clinic.tz))  # on the clinic's clock, the center's
    if emr == "square":
        # Square Appointments: its own token and URL here (the Bookings fake is another process than the deposits'
        # Square fake); without them the client takes the deposit settings' Square account.
        config["credentials"] = json.dumps(
            {"access_token": appointments_fake.TOKEN, "base_url": stack.square_appointments.root}
        )
        config["location_ref"] = appointments_fake.LOCATION_ID
        stack.square_appointments.schedule(emr_open_times(clinic.tz))
    EmrConfig.objects.create(**config)
    return Setup(
        clinic=clinic,
        number=number,
        patient_phone=f"+120855501{50 + n:02d}",
        service=botox,
        provider=provider,
        emr=emr,
    )


def emr_open_times(tz, days=(1, 2, 3)) -> list[datetime]:
    """An EMR fake's free times: 13:00, 14:00 and 15:00 on the clinic's clock, tomorrow and the next days (what
    Nextech's fake practice offers when told its first hour is 13)."""
    today = timezone.localtime(timezone.now(), tz).date()
    return [datetime.combine(today + timedelta(days=d), clock(hour), tzinfo=tz) for d in days for hour in (13, 14, 15)]


# --- What the patient must receive ------------------------------------------------------------------------------


def when_short(value, tz) -> str:
    return when_label(value, tz)  # "Thu Dec 3, 1:30 PM ET"


def when_long(value, tz) -> str:
    return when_label(value, tz)  # the confirmation uses the same label as every other text


class Expected:
    """The clinic's texts in the booking dialogue, worded exactly as the patient gets them."""

    def __init__(self, setup: Setup):
        self.setup = setup
        self.name = setup.clinic.name
        self.doctor = setup.provider.name

    def intro(self):
        return (
            f"Hi, this is {self.name}. Sorry we missed you! How can we help? "
            "Ask about treatments, prices or open times. Reply STOP to opt out."
        )

    def lead_intro(self):
        return (
            f"Hi, this is {self.name}. Thanks for your message on our website! How can we help? "
            "Ask about treatments, prices or open times. Reply STOP to opt out."
        )

    def price(self):
        return (
            "Botox is $12 per unit (most treatments use 20-30 units, about $240-$360). "
            "Would you like me to find you a time?"
        )

    def tomorrow_afternoon(self) -> list[datetime]:
        """The three times the clinic's calendar has tomorrow afternoon (12:00-17:00, spread 90 minutes apart when
        it can): the built-in calendar from the provider's 9-17 hours on a 15-minute grid; the EMR fakes (Nextech's
        practice, Boulevard's business) from their 13:00-16:00 hourly slots."""
        tz = self.setup.tz
        tomorrow = timezone.localtime(timezone.now(), tz).date() + timedelta(days=1)
        hours = [(13, 0), (14, 0), (15, 0)] if self.setup.emr in EMR_FAKES else [(12, 0), (13, 30), (15, 0)]
        return [datetime.combine(tomorrow, clock(h, m), tzinfo=tz) for h, m in hours]

    def offer(self, times=None):
        times = self.times() if times is None else times
        lines = [f"{i}. {when_short(t, self.setup.tz)} with {self.doctor}" for i, t in enumerate(times, 1)]
        return "Here are open times for Botox:\n" + "\n".join(lines) + "\nReply 1, 2 or 3 to pick one."

    def ask_new_time(self, start):
        return f"Sure! Your Botox is on {when_short(start, self.setup.tz)}. What day and time would work better?"

    def moved(self, start):
        return (
            f"Done! Your Botox is now {when_short(start, self.setup.tz)} with {self.doctor}. Your deposit carries "
            "over. See you then!"
        )

    def ask_cancel(self, start):
        return (
            f"Reply YES to cancel your Botox on {when_short(start, self.setup.tz)}; your $50 deposit will be refunded. "
            "Or reply NO to keep it."
        )

    def cancelled(self, start):
        return (
            f"Done: your Botox on {when_short(start, self.setup.tz)} is cancelled. Your $50 deposit will be refunded. "
            "Want to pick another time?"
        )

    def times(self):
        return self.tomorrow_afternoon()

    def ask_name(self, start=None):
        """The pick said back, then the name asked for; by default the second time offered (every scenario picks
        "2")."""
        start = self.times()[1] if start is None else start
        return (
            f"Great choice: {when_short(start, self.setup.tz)} with {self.doctor}. What name should I put the "
            "appointment under?"
        )

    def deposit_link(self, first_name, start, payment):
        held = time_label(payment.expires_at, self.setup.tz)
        return (
            f"Thanks, {first_name}! I'm holding Botox on {when_short(start, self.setup.tz)} with {self.doctor} "
            f"until {held}. To confirm, please pay the $50 deposit here: {payment.link_url}"
        )

    def confirmation(self, start):
        return (
            f"You're booked: Botox with {self.doctor}, {when_long(start, self.setup.tz)} at 12 Harbor Way. "
            f"To cancel or reschedule, reply here at least 24 hours before. - {self.name}"
        )

    def received_for_staff(self, start):
        return (
            f"Thanks, your $50 deposit is received. Our front desk is confirming your Botox on "
            f"{when_long(start, self.setup.tz)} and will text you shortly. - {self.name}"
        )

    def opted_out(self):
        return f"{self.name}: You're unsubscribed and will get no more texts. Reply START to resubscribe."


class ExpectedEs(Expected):
    """The same dialogue when the patient writes in Spanish (conversation/i18n.py's ``TEMPLATES``, the booking
    confirmation of bookings/services.py, messaging/compliance.py's ALTO confirmation), worded exactly as the
    patient gets them: GSM-7-safe (no á í ó ú ¿ ¡; é and ñ stay), dates as "jue 3 dic, 1:30 PM ET". The missed-call
    intro is English: nobody has written yet, so no language is known."""

    def greeting(self):
        return (
            f"Hola, le escribe {self.name}. Puedo responder sus preguntas, darle precios o hacerle una cita. En qué "
            "le puedo ayudar?"
        )

    def price(self):
        return (
            "Botox cuesta $12 por unidad (la mayoria usa 20-30 unidades, unos $240-$360). "
            "Quiere que le busque un horario?"
        )

    def offer(self):
        lines = [f"{i}. {when_es(t, self.setup.tz)} con {self.doctor}" for i, t in enumerate(self.times(), 1)]
        return (
            "Estos son los horarios disponibles para Botox:\n"
            + "\n".join(lines)
            + "\nResponda 1, 2 o 3 para elegir uno."
        )

    def ask_name(self, start=None):
        start = self.times()[1] if start is None else start
        return f"Excelente: {when_es(start, self.setup.tz)} con {self.doctor}. A nombre de quién hago la cita?"

    def deposit_link(self, first_name, start, payment):
        held = time_label(payment.expires_at, self.setup.tz)
        return (
            f"Gracias, {first_name}. Le aparto Botox el {when_es(start, self.setup.tz)} con {self.doctor} hasta las "
            f"{held}. Para confirmar, pague el deposito de $50 aqui: {payment.link_url}"
        )

    def confirmation(self, start):
        return (
            f"Su cita esta confirmada: Botox con {self.doctor}, {when_es(start, self.setup.tz)} en 12 Harbor Way. "
            f"Para cancelar o cambiarla, responda aqui al menos 24 horas antes. - {self.name}"
        )

    def opted_out(self):
        return f"{self.name}: Se ha dado de baja y no recibira mas mensajes. Responda INICIO para volver a suscribirse."


# --- The patient, through the providers' webhooks ----------------------------------------------------------------


def telnyx_signed(raw: bytes) -> dict:
    """Telnyx's headers for a webhook body: Ed25519 over ``timestamp|body`` (the test key pair)."""
    timestamp = str(int(time.time()))
    signature = TELNYX_KEY.sign(timestamp.encode() + b"|" + raw).signature
    return {
        "telnyx-signature-ed25519": base64.b64encode(signature).decode(),
        "telnyx-timestamp": timestamp,
        "Content-Type": "application/json",
    }


def telnyx_event(event_type, payload, *, event_id=None, attempt=1, delivered_to=""):
    return {
        "data": {
            "record_type": "event",
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "payload": payload,
        },
        "meta": {"attempt": attempt, "delivered_to": delivered_to},
    }


@dataclass
class Step:
    actor: str  # patient, event (a call, a payment, staff), note, replies (the later answer to an earlier step)
    text: str
    replies: list = field(default_factory=list)
    seconds: float = 0.0
    started: float = 0.0
    who: str = ""  # which patient, when a scenario has more than one ("A", "B")


class Patient:
    """A patient of ``setup``'s clinic. Every action posts what the provider would (signed, over HTTP, to the web
    process) and waits for the clinic's texts at the fake Telnyx, answering each with its delivery receipts
    (``message.sent``, then ``message.finalized`` delivered), as Telnyx does. ``duplicates``: every webhook is
    delivered twice at the same moment (same event id), as providers sometimes do. ``receipts=False``: no delivery
    receipts (a scenario about texts whose fate only the provider's API can tell)."""

    def __init__(self, stack, setup: Setup, transcript, *, duplicates=False, name="Jane Doe", receipts=True, label=""):
        self.stack, self.setup, self.transcript = stack, setup, transcript
        self.label = label  # shown in the transcript when a scenario has several patients
        self.phone, self.name, self.duplicates = setup.patient_phone, name, duplicates
        self.receipts = receipts
        self.http = httpx.Client(base_url=stack.base_url, timeout=15)
        self.seen = 0
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.webhook_ids = {"telnyx": [], "square": []}

    def close(self):
        self.http.close()
        self.pool.shutdown(wait=True)

    # --- posting ---

    def _post(self, path, raw: bytes, headers_for):
        """Post once, or twice at the same moment (each delivery signed on its own, as the provider would)."""
        copies = 2 if self.duplicates else 1
        futures = [self.pool.submit(self.http.post, path, content=raw, headers=headers_for(raw)) for _ in range(copies)]
        for future in futures:
            response = future.result()
            assert response.status_code == 200, (path, response.status_code, response.text[:300])

    def post_telnyx(self, path, event):
        self.webhook_ids["telnyx"].append(event["data"]["id"])
        event["meta"]["delivered_to"] = f"{self.stack.base_url}{path}"
        self._post(path, json.dumps(event).encode(), telnyx_signed)

    def post_square(self, event):
        self.webhook_ids["square"].append(event["event_id"])
        url = f"{self.stack.base_url}/webhooks/square"

        def headers(raw):
            return {
                "x-square-hmacsha256-signature": square_sign(
                    body=raw, signature_key=SQUARE_SIGNATURE_KEY, notification_url=url
                ),
                "square-environment": "Sandbox",
                "square-retry-number": "0",
                "Content-Type": "application/json",
            }

        self._post("/webhooks/square", json.dumps(event).encode(), headers)

    # --- what the patient receives ---

    def sends(self) -> list[dict]:
        """Every request to send a text to this patient that reached the fake Telnyx API, in order."""
        return [c for c in self.stack.telnyx.calls() if (c.get("json") or {}).get("to") == self.phone]

    def received(self) -> list[str]:
        return [c["json"]["text"] for c in self.sends() if c.get("status") == 200]

    def _await(self, count, timeout):
        deadline = time.monotonic() + timeout
        while True:
            sends = self.sends()
            if len(sends) >= self.seen + count:
                break
            if time.monotonic() > deadline:
                got = [s["json"]["text"] for s in sends[self.seen :]]
                raise AssertionError(
                    f"expected {count} new text(s) for the patient within {timeout} s, got {len(got)}: {got}\n\n"
                    f"{self.stack.logs(15)}"
                )
            time.sleep(0.05)
        new = sends[self.seen : self.seen + count]
        self.seen += count
        for send in new:
            self._receipts(send)
        return [s["json"]["text"] for s in new]

    def _receipts(self, send):
        """Telnyx's delivery receipts for a text it accepted: after its answer reached our worker (the message row
        carries the id), message.sent then message.finalized (delivered)."""
        if send.get("status") != 200 or not self.receipts:
            return
        provider_id = send["response"]["data"]["id"]
        deadline = time.monotonic() + 10
        while not Message.objects.filter(provider_message_id=provider_id).exists():
            assert time.monotonic() < deadline, f"no message row got the provider id {provider_id}"
            time.sleep(0.05)
        body = send["json"]
        for event_type, status in (("message.sent", "sent"), ("message.finalized", "delivered")):
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            payload = {
                "id": provider_id,
                "record_type": "message",
                "direction": "outbound",
                "type": "SMS",
                "from": {"phone_number": body["from"]},
                "to": [{"phone_number": body["to"], "status": status}],
                "text": body["text"],
                "messaging_profile_id": body.get("messaging_profile_id"),
                "sent_at": now,
                "completed_at": now if status == "delivered" else None,
                "parts": 1,
                "errors": [],
            }
            self.post_telnyx("/webhooks/telnyx/messages", telnyx_event(event_type, payload))

    def step(self, actor, text, action, expect=1, timeout=30, wait=True):
        """Do ``action`` and wait for the ``expect`` texts it brings (recorded with the time they took). With
        ``wait=False`` the step is returned, to be finished by ``replies_to`` later."""
        record = Step(actor, text, who=self.label)
        record.started = time.monotonic()
        action()
        self.transcript.add(record)
        if not wait:
            return record
        return self.replies_to(record, expect, timeout)

    def replies_to(self, record: Step, expect=1, timeout=30) -> list[str]:
        replies = self._await(expect, timeout) if expect else []
        seconds = time.monotonic() - record.started
        # Notes came between, or the texts went to another patient than the step's: shown as a row of their own.
        if (self.transcript.steps and self.transcript.steps[-1] is not record) or record.who != self.label:
            self.transcript.add(Step("replies", record.text, replies, seconds, who=self.label))
        else:
            record.replies += replies
            record.seconds = seconds
        return replies

    # --- what the patient does ---

    def miss_call(self, expect=1) -> list[str]:
        """The patient calls the clinic's number and nobody answers (Telnyx Call Control: call.initiated, then
        call.hangup with cause timeout and no call.answered)."""
        session, leg = str(uuid.uuid4()), str(uuid.uuid4())
        common = {
            "call_control_id": f"v3:{uuid.uuid4().hex}",
            "call_session_id": session,
            "call_leg_id": leg,
            "connection_id": "e2e-connection",
            "direction": "incoming",
            "from": self.phone,
            "to": self.setup.number,
            "start_time": datetime.now(UTC).isoformat(),
        }

        def call():
            self.post_telnyx("/webhooks/telnyx/voice", telnyx_event("call.initiated", {**common, "state": "parked"}))
            hangup = {**common, "state": "hangup", "hangup_cause": "timeout", "hangup_source": "callee"}
            self.post_telnyx("/webhooks/telnyx/voice", telnyx_event("call.hangup", hangup))

        return self.step(
            "event", f"Calls {self.setup.number}; nobody answers (Telnyx call.hangup: timeout)", call, expect
        )

    def say(self, text, expect=1, timeout=30, wait=True):
        """The patient texts the clinic (Telnyx message.received)."""

        def send():
            payload = {
                "id": str(uuid.uuid4()),
                "record_type": "message",
                "direction": "inbound",
                "type": "SMS",
                "from": {"phone_number": self.phone, "carrier": "T-Mobile USA", "line_type": "Wireless"},
                "to": [{"phone_number": self.setup.number, "status": "webhook_delivered"}],
                "text": text,
                "media": [],
                "messaging_profile_id": "e2e-profile",
                "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "encoding": "GSM-7",
                "parts": 1,
                "errors": [],
            }
            self.post_telnyx("/webhooks/telnyx/messages", telnyx_event("message.received", payload))

        return self.step("patient", text, send, expect, timeout, wait)

    def submit_lead(self, message, expect=1) -> list[str]:
        """The clinic's web form: POST /api/leads with consent to texts (from the clinic's own website)."""
        clinic = self.setup.clinic
        body = {
            "clinic": clinic.slug,
            "name": self.name,
            "phone": self.phone,
            "email": "jane.doe@example.com",
            "service_of_interest": "Botox",
            "message": message,
            "sms_consent": True,
            "consent_text": CONSENT.format(clinic=clinic.name),
            "source_url": f"{clinic.website}/book",
        }

        def post():
            for _ in range(2 if self.duplicates else 1):  # a double click on the form's button
                response = self.http.post("/api/leads", json=body, headers={"Origin": clinic.website})
                assert response.status_code in (200, 201), (response.status_code, response.text[:300])

        summary = f'Web form on {clinic.website}: "{message}" (Botox, consent to texts)'
        return self.step("event", summary, post, expect)

    def pay_deposit(self, link_url, expect=1, wait=True):
        """The patient pays the Square link; Square delivers payment.created (APPROVED), then payment.updated
        (COMPLETED)."""
        paid = self.stack.square.pay(link_url)
        self.paid = paid

        def deliver():
            for event in paid["events"]:
                self.post_square(event)

        text = "Pays the $50 deposit on Square (payment.created, payment.updated COMPLETED)"
        return self.step("event", text, deliver, expect, wait=wait)

    def note(self, text):
        self.transcript.add(Step("note", text))

    def assert_no_more_texts(self, seconds=1.0):
        """Nothing else reaches the patient for a while (no double, no late text)."""
        time.sleep(seconds)
        extra = [s["json"]["text"] for s in self.sends()[self.seen :]]
        assert not extra, f"unexpected texts to the patient: {extra}"


class FrontDesk:
    """A member of the clinic's front desk in the Django admin, over HTTP (session login, CSRF tokens)."""

    PASSWORD = "front-desk-password-1"

    def __init__(self, stack, setup: Setup, transcript):
        from django.contrib.auth.models import Permission, User

        from medspa.models import ClinicMembership

        self.transcript = transcript
        self.username = f"frontdesk-{setup.clinic.slug}"
        user = User.objects.create_user(username=self.username, password=self.PASSWORD, is_staff=True)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="bookings"))
        ClinicMembership.objects.create(user=user, clinic=setup.clinic, role=ClinicMembership.Role.FRONT_DESK)
        self.http = httpx.Client(base_url=stack.base_url, timeout=15, follow_redirects=False)

    def close(self):
        self.http.close()

    @staticmethod
    def _csrf(page) -> str:
        match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert match, page.text[:500]
        return match.group(1)

    def log_in(self):
        page = self.http.get("/admin/login/")
        response = self.http.post(
            "/admin/login/",
            data={"username": self.username, "password": self.PASSWORD, "csrfmiddlewaretoken": self._csrf(page)},
            params={"next": "/admin/"},
        )
        assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text[:500]

    def mark_confirmed(self, booking_id, patient: Patient, expect=1) -> list[str]:
        """The admin's manual-EMR queue: the booking is listed; "Mark confirmed" on it."""
        path = "/admin/bookings/manualbookingrequest/"

        def confirm():
            page = self.http.get(path)
            assert page.status_code == 200 and f'value="{booking_id}"' in page.text, page.status_code
            data = {
                "action": "mark_confirmed",
                "_selected_action": str(booking_id),
                "index": "0",
                "csrfmiddlewaretoken": self._csrf(page),
            }
            response = self.http.post(path, data=data)
            assert response.status_code == 302, response.text[:500]

        text = "Front desk: enters it in their EMR, then \u201cMark confirmed\u201d in the admin's manual-EMR queue"
        return patient.step("event", text, confirm, expect)


# --- Waiting on the back end ------------------------------------------------------------------------------------


def wait_for(predicate, what, timeout=30, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def outbox_settled(payment: Payment) -> bool:
    """The payment's outbox steps were written and are all done."""
    steps = OutboxItem.objects.filter(payment=payment)
    return steps.exists() and not steps.exclude(status=OutboxItem.Status.DONE).exists()
