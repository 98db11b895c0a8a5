"""Text a clinic from the terminal through the real pipeline: inbound webhook handling (compliance first), the
assistant, tools, bookings, deposits and outbound texts, with tasks run in this process and texts captured
instead of sent. Type as a patient would; ``/pay`` pays the latest test deposit link (the sandbox checkout's own
code path), ``/quit`` leaves.

    python manage.py chat --clinic demo-clinic-001 --phone +16175550123 [--missed-call]
"""

import uuid

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from medspa.celery import app as celery_app
from medspa.models import Clinic
from medspa.phones import normalize_phone
from messaging.models import Message
from messaging.services import clinic_sender, inbound_receive, missed_call_receive
from payments.models import Payment, Provider
from payments.services import sandbox_pay


class Command(BaseCommand):
    help = "Text a clinic from the terminal, as a patient, through the same pipeline as real texts."

    def add_arguments(self, parser):
        parser.add_argument("--clinic", default="demo-clinic-001", help="Clinic slug (default: the demo clinic).")
        parser.add_argument("--phone", default="+16175550123", help="The patient's phone number.")
        parser.add_argument("--missed-call", action="store_true", help="Start with a missed call (the intro text).")

    def handle(self, *args, **options):
        clinic = Clinic.objects.filter(slug=options["clinic"]).first()
        if clinic is None:
            raise CommandError(f"No clinic {options['clinic']!r}: run `make seed` or pass --clinic.")
        sender = clinic_sender(clinic=clinic)
        if sender is None:
            raise CommandError(f"{clinic} has no phone number; add one in the admin.")
        try:
            phone = normalize_phone(options["phone"])
        except Exception as exc:
            raise CommandError(f"--phone: {exc}") from None
        settings.SMS_BACKEND = "locmem"  # capture texts; nothing leaves this machine
        settings.CONVERSATION_DEBOUNCE_SECONDS = 0
        celery_app.conf.task_always_eager = True  # tasks run here, in order, as if a worker took them at once
        self.phone, self.seen, self.clinic_tz = phone, self._last_pk(), clinic.tz
        self.stdout.write(f"Texting {clinic.name} ({sender.number}) as {phone}. /pay pays a deposit link, /quit.")
        if options["missed_call"]:
            self.stdout.write(self.style.WARNING("* you call the clinic; nobody answers *"))
            missed_call_receive(to_number=sender.number, from_number=phone)
            self._show()
        while True:
            try:
                text = input("you> ").strip()
            except (EOFError, KeyboardInterrupt):
                self.stdout.write("")
                return
            if not text:
                continue
            if text in ("/quit", "/exit"):
                return
            if text == "/pay":
                self._pay(clinic)
            else:
                inbound_receive(
                    provider="console",
                    provider_message_id=f"chat-{uuid.uuid4()}",
                    from_number=phone,
                    to_number=sender.number,
                    body=text,
                )
            self._show()

    def _last_pk(self):
        last = Message.objects.order_by("-pk").values_list("pk", flat=True).first()
        return last or 0

    def _show(self):
        texts = Message.objects.filter(
            to_number=self.phone, direction=Message.Direction.OUTBOUND, pk__gt=self.seen
        ).order_by("pk")
        for message in texts:
            self.seen = max(self.seen, message.pk)
            if message.status == Message.Status.SCHEDULED:
                due = timezone.localtime(message.due_at, self.clinic_tz).strftime("%a %-I:%M %p %Z")
                self.stdout.write(self.style.WARNING(f"(held for quiet hours until {due})"))
            elif message.status == Message.Status.DROPPED:
                self.stdout.write(self.style.WARNING("(not sent: this number opted out)"))
                continue
            self.stdout.write(self.style.SUCCESS("clinic> ") + message.body)

    def _pay(self, clinic):

        payment = (
            Payment.objects.for_clinic(clinic)
            .filter(booking__patient_phone=self.phone, status=Payment.Status.CREATED)
            .order_by("-pk")
            .first()
        )
        if payment is None:
            self.stdout.write(self.style.WARNING("(no unpaid deposit link for this number)"))
        elif payment.provider != Provider.SANDBOX:
            self.stdout.write(self.style.WARNING(f"(a real Square link: open {payment.link_url} to pay)"))
        else:
            self.stdout.write(self.style.WARNING(f"* you open {payment.link_url} and pay {payment.amount_text} *"))
            sandbox_pay(payment=payment)
