"""The assistant's tools: the only code that acts for it. Both engines call these, and these check every rule
whatever an engine asks: only catalogued services, only times that were offered and are still free, one held
booking per conversation, the patient's name before a hold turns into a deposit link, a deposit before
confirmation, cancellations within the clinic's policy. A refusal is a ``ToolRefused`` whose message the engine
may say to the patient.

Every call is recorded in ``Tools.calls`` (name, arguments, outcome) for the turn's record: ids and times, never
the patient's words.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from django.db import transaction
from django.utils import timezone

from bookings.models import Booking
from bookings.services import (
    AlreadyBooked,
    BookingStateError,
    CancellationTooLate,
    SlotUnavailable,
    booking_cancel,
    booking_confirm,
    booking_hold,
    booking_reschedule,
)
from emr.availability import availability_for_day
from emr.base import EmrError
from emr.models import Provider
from emr.services import EmrConfigError, emr_client
from knowledge.services import knowledge_search, knowledge_unknown_terms
from medspa.alerts import staff_alert
from medspa.models import Service, StaffAlert, format_cents
from medspa.timetext import when_label
from messaging.models import Message
from payments.services import PaymentConfigError, PaymentError, deposit_amount, deposit_request
from waitlist import services as waitlist

from . import i18n
from .answers import answers_version
from .models import Conversation, Turn

logger = logging.getLogger(__name__)

MAX_OFFERED = 3
SPREAD = timedelta(minutes=90)  # offered times are at least this far apart when the window allows


class ToolRefused(Exception):
    """The rules say no; the message is safe to tell the patient."""


@dataclass(frozen=True)
class Offered:
    index: int  # 1-based, as listed to the patient
    start: datetime
    end: datetime
    provider_id: int
    provider_name: str


class Tools:
    def __init__(self, conversation: Conversation, *, now=None, photo: bool = False):
        self.conversation = conversation
        self.clinic = conversation.clinic
        self.now = now or timezone.now()
        self.calls: list[dict] = []
        self.provider = None  # the provider the patient asked for in this turn ("with Dr. Johnson"), if any
        self.photo = photo  # whether the texts of this turn came with a photo (the engine says so)
        self._providers = None
        self._catalog = None

    def providers(self) -> list[Provider]:
        """The clinic's active providers with their services (read once a turn)."""
        if self._providers is None:
            self._providers = list(
                # One clinic's: by name, as the default ordering (clinic, name) gives, without its join.
                Provider.objects.for_clinic(self.clinic)
                .filter(active=True)
                .order_by("name")
                .prefetch_related("services")
            )
        return self._providers

    def provider_names(self) -> list[str]:
        """The active providers' names only: the cheap check before ``providers``."""
        if self._providers is not None:
            return [p.name for p in self._providers]
        rows = Provider.objects.for_clinic(self.clinic).filter(active=True).order_by("name")
        return list(rows.values_list("name", flat=True))

    def prefer_provider(self, provider: Provider | None) -> None:
        """Open times found in this turn are that provider's only."""
        self.provider = provider

    @cached_property
    def answers_version(self) -> str:
        """The version of everything the clinic's answers rest on (documents, catalog, profile), read once."""

        return answers_version(self.clinic)

    def _record(self, name, outcome, **arguments):
        self.calls.append({"tool": name, "arguments": arguments, "outcome": outcome})

    @property
    def language(self) -> str:
        """The language the booking or waitlist entry made now will be texted in later: the conversation's
        (``conversation.i18n``), English when the clinic has Spanish off."""
        return self.conversation.language if self.clinic.spanish else i18n.EN

    def follow_language(self, text: str) -> str:
        """The conversation's language after the patient's ``text`` (kept unless the text is clearly the other,
        ``i18n.conversation_language``; English when the clinic has Spanish off), saved on the conversation. Every
        engine calls it first: the rules engine answers in it, the openai engine tells the model to."""
        c = self.conversation
        language = i18n.conversation_language(c.language, text) if self.clinic.spanish else i18n.EN
        if language != c.language:
            Conversation.objects.filter(pk=c.pk).update(language=language)
            c.language = language
        return language

    def _save(self, **fields):
        for name, value in fields.items():
            setattr(self.conversation, name, value)
        Conversation.objects.filter(pk=self.conversation.pk).update(**fields, updated_at=timezone.now())

    # --- Knowledge and catalog ---------------------------------------------------------------------------------

    def search_knowledge(self, query: str, k: int = 3) -> list[dict]:
        results = knowledge_search(clinic=self.clinic, query=query, k=k)
        self._record("search_knowledge", f"{len(results)} results")
        return results

    def unknown_terms(self, text: str) -> set[str]:
        """The words of ``text`` none of the clinic's documents speaks of (``knowledge_unknown_terms``)."""
        return knowledge_unknown_terms(clinic=self.clinic, text=text)

    def catalog(self) -> list[Service]:
        """The clinic's active services by name (read once a turn)."""
        if self._catalog is None:
            self._catalog = list(Service.objects.for_clinic(self.clinic).filter(active=True).order_by("name"))
        return self._catalog

    def lookup_service(self, service_id: int) -> dict:
        """A catalogued service and its price, worded only by ``Service.price_text``."""
        service = self._catalogued(service_id)
        if service is None:
            self._record("lookup_service", "unknown", service_id=service_id)
            raise ToolRefused("That isn't a treatment we offer.")
        self._record("lookup_service", "ok", service_id=service.pk)
        deposit = service.deposit_cents
        return {
            "id": service.pk,
            "name": service.name,
            "price": service.price_text(),
            "duration_minutes": service.duration_minutes,
            "deposit": format_cents(deposit) if deposit else "",
        }

    def _catalogued(self, service_id) -> Service | None:
        """The active service of the clinic with this id, from the turn's ``catalog`` (None: not one)."""
        return next((service for service in self.catalog() if service.pk == service_id), None)

    def choose_service(self, service_id: int) -> Service:
        self.lookup_service(service_id)
        service = self._catalogued(service_id)
        if self.conversation.service_id != service.pk:
            state = self.conversation.state
            if state == Conversation.State.OFFERING:  # the times offered were for the other service
                state = Conversation.State.ENGAGED
            self._save(service=service, offered_slots=[], state=state)
        return service

    # --- Open times --------------------------------------------------------------------------------------------

    def find_open_times(self, *, start: datetime, end: datetime, label: str = "", day_start=None, day_end=None):
        """Up to three open times for the conversation's service in the window (clinic-local hours of day
        optionally limited), spread out; remembered as the offer the patient picks from."""
        service = self.conversation.service
        if service is None:
            raise ToolRefused("Which treatment would you like to book?")
        start = max(start, self.now)
        if end <= start:
            self._record("find_open_times", "empty window", service_id=service.pk)
            return []
        try:
            client = emr_client(clinic=self.clinic)
        except EmrConfigError:
            logger.warning("find_open_times: EMR not configured clinic=%s", self.clinic.pk)
            self._schedule_unreadable("the EMR is not configured")
        tz = self.clinic.tz
        provider = self.provider
        if provider is not None and not provider.services.filter(pk=service.pk).exists():
            provider = None  # the provider asked for does not do it: every provider who does
        candidates, day = [], start.astimezone(tz).date()
        while day <= end.astimezone(tz).date():
            try:
                slots = availability_for_day(
                    client=client, clinic=self.clinic, service=service, day=day, provider=provider
                )
            except EmrError:
                logger.warning("find_open_times: EMR error clinic=%s", self.clinic.pk, exc_info=True)
                self._schedule_unreadable("the EMR did not answer")
            for slot in slots:
                local = slot.start.astimezone(tz).time()
                if not (start <= slot.start and slot.start < end):
                    continue
                if (day_start and local < day_start) or (day_end and local >= day_end):
                    continue
                candidates.append(slot)
            day += timedelta(days=1)
        chosen = _spread(candidates, tz)
        providers = self._providers_for(client, chosen)
        offered = [
            {
                "start": slot.start.isoformat(),
                "end": slot.end.isoformat(),
                "provider_id": providers[slot.provider_ref].pk,
                "provider": providers[slot.provider_ref].name,
            }
            for slot in chosen
            if slot.provider_ref in providers
        ]
        state = Conversation.State.OFFERING if offered else Conversation.State.ENGAGED
        self._save(offered_slots=offered, time_preference=label[:80], state=state)
        self._record("find_open_times", f"{len(offered)} offered", service_id=service.pk, window=label)
        return self.offered()

    def _schedule_unreadable(self, reason):
        """The EMR cannot be read: staff hear of it (once an hour per clinic) and take the patient over."""
        hour = timezone.now().strftime("%Y%m%d%H")
        staff_alert(
            clinic=self.clinic,
            kind=StaffAlert.Kind.EMR_ERROR,
            text=f"Open times could not be read: {reason}. Check the EMR connection (Integrations, test connection).",
            obj=self.clinic,
            dedupe_key=f"emr-unreadable:{self.clinic.pk}:{hour}",
        )
        self.hand_off(f"open times could not be read ({reason})")
        raise ToolRefused("I can't see the schedule right now; our front desk will text you shortly with times.")

    def _providers_for(self, client, slots) -> dict:
        refs = {slot.provider_ref for slot in slots}
        providers = Provider.objects.for_clinic(self.clinic).filter(active=True)
        by_ref = {client.provider_ref(p): p for p in providers}
        return {ref: by_ref[ref] for ref in refs if ref in by_ref}

    def offered(self) -> list[Offered]:
        return [
            Offered(
                index=i,
                start=datetime.fromisoformat(o["start"]),
                end=datetime.fromisoformat(o["end"]),
                provider_id=o["provider_id"],
                provider_name=o["provider"],
            )
            for i, o in enumerate(self.conversation.offered_slots or [], start=1)
        ]

    # --- Holding, the patient's name, the deposit -------------------------------------------------------------

    def hold_time(self, index: int) -> Booking:
        """Hold the ``index``-th offered time (1-based): only a time we offered, and only if it is still free.
        One held booking per conversation: a previous hold is released first."""
        offered = self.offered()
        if not 1 <= index <= len(offered):
            self._record("hold_time", "not offered", index=index)
            raise ToolRefused("Please pick one of the times I listed.")
        choice = offered[index - 1]
        provider = Provider.objects.for_clinic(self.clinic).get(pk=choice.provider_id)
        self.release_hold()
        try:
            booking = booking_hold(
                clinic=self.clinic,
                service=self.conversation.service,
                provider=provider,
                start=choice.start,
                patient_phone=self.conversation.patient_phone,
                patient_name=self.conversation.patient_name,
                conversation=self.conversation,
                language=self.language,
                replacing=self.conversation.rescheduling,
                allow_another=self.conversation.another_booking_ok,
                now=self.now,
            )
        except SlotUnavailable:
            self._record("hold_time", "taken", index=index)
            raise ToolRefused("Sorry, that time was just taken.") from None
        except AlreadyBooked as already:
            self._save(pending_pick=index)
            self._record("hold_time", "already booked", index=index, booking_id=already.booking.pk)
            raise ToolRefused(self._already_booked_question(already.booking, choice)) from None
        self._save(booking=booking, state=Conversation.State.HOLDING, pending_pick=None, another_booking_ok=False)
        self._record("hold_time", "held", index=index, booking_id=booking.pk)
        return booking

    def _already_booked_question(self, existing: Booking, choice) -> str:
        when, new = when_label(existing.start, self.clinic.tz), when_label(choice.start, self.clinic.tz)
        overlapping = existing.start < choice.end and existing.end > choice.start
        movable = existing.service_id == self.conversation.service_id and existing.status in (
            Booking.Status.CONFIRMED,
            Booking.Status.AWAITING_STAFF,
        )
        if not movable:
            return f"That overlaps your {existing.service.name} on {when}. Please pick another time."
        if overlapping:
            return f"You already have {existing.service.name} on {when}. Reply MOVE to move it to {new}."
        return (
            f"You already have {existing.service.name} on {when}. Reply MOVE to move it to {new}, "
            "or ANOTHER to book a second appointment."
        )

    def allow_another_booking(self) -> None:
        """The patient said yes to a second appointment (never at an overlapping time)."""
        self._save(another_booking_ok=True)
        self._record("allow_another_booking", "ok")

    def release_hold(self) -> None:
        booking = self.conversation.booking
        if booking is not None and booking.status in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
            booking.refresh_from_db()
            if not hasattr(booking, "payment") or booking.payment.status == "created":
                booking_cancel(booking_id=booking.pk, by="patient", now=self.now)
                self._record("release_hold", "released", booking_id=booking.pk)
            self._save(booking=None)

    def hold_lapsed(self) -> bool:
        """True (and the conversation back to choosing a time) when the held time's deposit link has run out."""
        booking = self.conversation.booking
        if booking is None:
            return False
        booking.refresh_from_db()
        lapsed = booking.status == Booking.Status.EXPIRED or (
            booking.status in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT)
            and booking.hold_expires_at is not None
            and booking.hold_expires_at <= self.now
        )
        if lapsed:
            self.release_hold()
            self._save(state=Conversation.State.ENGAGED, offered_slots=[])
            self._record("hold_lapsed", "released", booking_id=booking.pk)
        return lapsed

    def set_name(self, first: str, last: str = "") -> None:
        name = f"{first} {last}".strip()[:120]
        self._save(patient_name=name)
        if self.conversation.booking_id:
            Booking.objects.filter(pk=self.conversation.booking_id).update(patient_name=name)
        waitlist.waitlist_name_set(clinic=self.clinic, patient_phone=self.conversation.patient_phone, name=name)
        self._record("set_name", "ok")

    def request_deposit(self) -> dict:
        """The deposit link for the held booking (the patient's name first). A service with no deposit for this
        patient is confirmed at once instead."""

        booking = self.conversation.booking
        if booking is None:
            raise ToolRefused("Let's pick a time first.")
        booking.refresh_from_db()
        if not self.conversation.patient_name:
            raise ToolRefused("What name should I put the appointment under?")
        if booking.status not in (Booking.Status.HELD, Booking.Status.AWAITING_DEPOSIT):
            self._record("request_deposit", f"booking {booking.status}", booking_id=booking.pk)
            raise ToolRefused("That hold has expired. Want me to find new times?")
        if deposit_amount(booking=booking) == 0:
            try:
                booking = booking_confirm(booking_id=booking.pk)
            except (SlotUnavailable, BookingStateError):
                raise ToolRefused("Sorry, that time was just taken.") from None
            except EmrError:
                self.hand_off("the EMR did not take a booking")
                raise ToolRefused("I couldn't finish booking that; our front desk will text you shortly.") from None
            if booking.status == Booking.Status.CONFIRMED:
                self._save(state=Conversation.State.CONFIRMED)
            self._record("request_deposit", "no deposit: confirmed", booking_id=booking.pk)
            return {"url": "", "amount": "", "status": booking.status}
        try:
            payment = deposit_request(booking_id=booking.pk, now=self.now)
        except (PaymentError, PaymentConfigError):
            logger.warning("deposit link failed booking=%s", booking.pk, exc_info=True)
            self.hand_off("the deposit link could not be created")
            raise ToolRefused("I couldn't create the payment link; our front desk will text you shortly.") from None
        self._save(state=Conversation.State.AWAITING_DEPOSIT)
        self._record("request_deposit", "link", booking_id=booking.pk, payment_id=payment.pk)
        held_until = timezone.localtime(payment.expires_at, self.clinic.tz) if payment.expires_at else None
        return {"url": payment.link_url, "amount": payment.amount_text, "held_until": held_until, "status": "link"}

    # --- Waitlist -------------------------------------------------------------------------------------------------

    def waitlist_worth_offering(self, *, start: datetime, end: datetime) -> bool:
        """Whether a time could open in the window for the conversation's service (the clinic has the waitlist on
        and someone holds a time there)."""
        service = self.conversation.service
        return service is not None and waitlist.waitlist_worth_offering(
            clinic=self.clinic, service=service, start=max(start, self.now), end=end
        )

    def propose_waitlist(self, *, start, end, label: str, day_start=None, day_end=None):
        """The assistant asks "want me to text you if something opens?": remembered until the patient answers."""
        entry = waitlist.waitlist_propose(
            conversation=self.conversation,
            service=self.conversation.service,
            start=start,
            end=end,
            label=label,
            day_start=day_start,
            day_end=day_end,
            patient_name=self.conversation.patient_name,
            language=self.language,
            now=self.now,
        )
        self._record("propose_waitlist", "asked", entry_id=entry.pk, window=label)
        return entry

    def waitlist_question(self):
        """The open "want me to text you?" question of this conversation, if any (a turn asks it: none before)."""
        if not self.conversation.turns_count:
            return None
        return waitlist.waitlist_proposal(conversation=self.conversation, now=self.now)

    def answer_waitlist(self, entry, *, join: bool):
        entry = waitlist.waitlist_answer(entry=entry, join=join, now=self.now)
        self._record("answer_waitlist", entry.state, entry_id=entry.pk)
        return entry

    def join_waitlist(self, *, start, end, label: str, day_start=None, day_end=None):
        """The patient said yes to being texted when a time opens in the window (the LLM engine's tool)."""
        if self.conversation.service is None:
            raise ToolRefused("Which treatment would you like to book?")
        if not waitlist.waitlist_settings(self.clinic).enabled:
            self._record("join_waitlist", "off")
            raise ToolRefused("I can't keep a waitlist here; tell me another day and I'll look.")
        if end <= max(start, self.now):
            self._record("join_waitlist", "window passed")
            raise ToolRefused("That time has already passed; which other day works?")
        entry = waitlist.waitlist_join(
            conversation=self.conversation,
            service=self.conversation.service,
            start=max(start, self.now),
            end=end,
            label=label,
            day_start=day_start,
            day_end=day_end,
            language=self.language,
            now=self.now,
        )
        self._record("join_waitlist", entry.state, entry_id=entry.pk, window=label)
        return entry

    def waitlist_offer(self):
        """The waitlist offer this conversation's held booking comes from, while it is open."""
        return waitlist.offer_for_booking(booking_id=self.conversation.booking_id)

    def decline_waitlist_offer(self) -> None:
        """The patient passed on a freed time: it is released (and goes to the next patient waiting)."""
        offer = self.waitlist_offer()
        self.release_hold()
        self._save(state=Conversation.State.ENGAGED, offered_slots=[])
        self._record("decline_waitlist_offer", "released", offer_id=offer.pk if offer else None)

    # --- Existing appointments -------------------------------------------------------------------------------------

    def upcoming_booking(self) -> Booking | None:
        return (
            Booking.objects.for_clinic(self.clinic)
            .filter(
                patient_phone=self.conversation.patient_phone,
                status__in=[Booking.Status.CONFIRMED, Booking.Status.AWAITING_STAFF],
                start__gt=self.now,
            )
            .select_related("service", "provider")
            .order_by("start")
            .first()
        )

    def recent_refund(self, *, days: int = 30):
        """The refund of the deposit of this patient's most recently cancelled appointment (cancelled in the last
        ``days``), as its payment, or None when there is none."""
        booking = (
            Booking.objects.for_clinic(self.clinic)
            .filter(
                patient_phone=self.conversation.patient_phone,
                status=Booking.Status.CANCELLED,
                updated_at__gte=self.now - timedelta(days=days),
                payment__status__in=["refund_pending", "partially_refunded", "refunded"],
            )
            .select_related("service", "payment")
            .order_by("-updated_at")
            .first()
        )
        return booking.payment if booking is not None else None

    def ask_cancel(self) -> Booking:
        """The patient asked to cancel their next appointment: nothing happens until they confirm (``cancel_booking``
        after a YES). Inside the clinic's notice staff decide, at once, as for the cancellation itself."""
        booking = self.upcoming_booking()
        if booking is None:
            raise ToolRefused("I don't see an upcoming appointment for this number.")
        hours = self.clinic.cancellation_notice_hours
        if booking.start - self.now < timedelta(hours=hours):
            return self.cancel_booking()  # refuses and hands off
        self.release_hold()
        self._save(confirming_cancel=booking, pending_pick=None, offered_slots=[], rescheduling=None)
        self._record("ask_cancel", "asked", booking_id=booking.pk)
        return booking

    def forget_offer(self) -> None:
        """The patient no longer wants the times on offer."""
        self._save(offered_slots=[], pending_pick=None, state=Conversation.State.ENGAGED)
        self._record("forget_offer", "ok")

    def keep_booking(self) -> None:
        """The patient did not confirm the cancellation: nothing changes."""
        if self.conversation.confirming_cancel_id:
            self._record("ask_cancel", "kept", booking_id=self.conversation.confirming_cancel_id)
        self._save(confirming_cancel=None)

    def cancel_booking(self) -> Booking:
        """Cancel the patient's next appointment, within the clinic's notice; later than that, staff decide."""
        booking = self.conversation.confirming_cancel or self.upcoming_booking()
        if booking is None:
            raise ToolRefused("I don't see an upcoming appointment for this number.")
        try:
            booking = booking_cancel(booking_id=booking.pk, by="patient", now=self.now)
        except CancellationTooLate:
            self._record("cancel_booking", "too late", booking_id=booking.pk)
            self.hand_off("a cancellation inside the notice window")
            hours = self.clinic.cancellation_notice_hours
            raise ToolRefused(
                f"Your appointment is less than {hours} hours away, so our front desk will take care of it. "
                "They'll text you shortly."
            ) from None
        except EmrError:
            self.hand_off("the EMR did not take a cancellation")
            raise ToolRefused("I couldn't cancel that myself; our front desk will text you shortly.") from None
        self._save(
            state=Conversation.State.ENGAGED, booking=None, rescheduling=None, offered_slots=[], confirming_cancel=None
        )
        self._record("cancel_booking", "cancelled", booking_id=booking.pk)
        return booking

    def start_reschedule(self, *, keep_offered: bool = False) -> Booking:
        """The patient wants to move their next appointment: remember it (the times offered next are for its
        service), or refuse when it is inside the clinic's notice, where staff decide. ``keep_offered``: the times
        already on offer are for its service and the patient picks among them."""
        booking = self.upcoming_booking()
        if booking is None:
            raise ToolRefused("I don't see an upcoming appointment for this number.")
        hours = self.clinic.cancellation_notice_hours
        if booking.start - self.now < timedelta(hours=hours):
            self._record("start_reschedule", "too late", booking_id=booking.pk)
            self.hand_off("a reschedule inside the notice window")
            raise ToolRefused(
                f"Your appointment is less than {hours} hours away, so our front desk will help you move it. "
                "They'll text you shortly."
            )
        fields = {"rescheduling": booking, "service": booking.service, "pending_pick": None}
        if keep_offered is False or booking.service_id != self.conversation.service_id:
            fields["offered_slots"] = []
        if not self.conversation.patient_name and booking.patient_name:
            fields["patient_name"] = booking.patient_name
        self._save(**fields)
        self._record("start_reschedule", "ok", booking_id=booking.pk)
        return booking

    def reschedule_to(self, index: int) -> Booking:
        """Move the appointment being rescheduled to the ``index``-th offered time (held first, so nobody takes
        it meanwhile); its deposit moves with it."""
        old = self.conversation.rescheduling
        if old is None:
            raise ToolRefused("Which appointment would you like to move?")
        new = self.hold_time(index)
        try:
            moved = booking_reschedule(booking_id=old.pk, new_booking_id=new.pk, now=self.now)
        except SlotUnavailable:
            self._save(booking=None, state=Conversation.State.ENGAGED, offered_slots=[])
            self._record("reschedule", "taken", booking_id=old.pk)
            raise ToolRefused("Sorry, that time was just taken. Want me to look for others?") from None
        except CancellationTooLate:
            self.release_hold()
            self.hand_off("a reschedule inside the notice window")
            raise ToolRefused("Our front desk will help you move it; they'll text you shortly.") from None
        except (EmrError, BookingStateError):
            logger.warning("reschedule failed booking=%s", old.pk, exc_info=True)
            self.release_hold()
            self.hand_off("the EMR did not take a reschedule")
            raise ToolRefused("I couldn't move it myself; our front desk will text you shortly.") from None
        state = Conversation.State.CONFIRMED
        self._save(booking=moved, rescheduling=None, offered_slots=[], state=state)
        self._record("reschedule", moved.status, booking_id=old.pk, new_booking_id=moved.pk)
        return moved

    # --- People --------------------------------------------------------------------------------------------------

    def flag_for_staff(self, reason: str) -> None:
        """A person should look (a photo, say) while the assistant goes on answering."""
        text = f"Conversation #{self.conversation.pk}: {reason}. Open it to see."
        self._tell_staff(StaffAlert.Kind.HANDOFF, text, key="flag", fields={"needs_staff": True})
        self._record("flag_for_staff", "flagged", reason=reason)

    def hand_off(self, reason: str, *, urgent: bool = False) -> None:
        """A person takes over: the assistant goes silent until staff hand the conversation back."""
        fields = {"owner": Conversation.Owner.STAFF, "state": Conversation.State.HANDED_OFF, "needs_staff": True}
        kind = StaffAlert.Kind.URGENT if urgent else StaffAlert.Kind.HANDOFF
        text = f"Conversation #{self.conversation.pk} needs a person: {reason}."
        self._tell_staff(kind, text, key="handoff", fields=fields)
        self._record("hand_off", "handed off", reason=reason)

    def answered_since_hand_off(self) -> bool:
        """Whether the patient has heard from the clinic since the assistant last handed the conversation off: a
        staff member's text, or the assistant's own "our team has your message". True when the last turn was not a
        hand-off (staff took the conversation themselves, or it was answered since)."""
        last = Turn.objects.filter(conversation=self.conversation).order_by("-pk").values("created_at", "tool_calls")
        last = last.first()
        if last is None or not any(call.get("tool") == "hand_off" for call in last["tool_calls"]):
            return True
        staff = Message.objects.filter(conversation=self.conversation, kind=Message.Kind.STAFF)
        return staff.filter(created_at__gte=last["created_at"]).exists()

    def _tell_staff(self, kind, text: str, *, key: str, fields: dict) -> None:
        """The conversation's fields and one staff alert per turn, together."""
        with transaction.atomic():
            self._save(**fields)
            staff_alert(
                clinic=self.clinic,
                kind=kind,
                text=text,
                obj=self.conversation,
                dedupe_key=f"{key}:{self.conversation.pk}:{self.conversation.turns_count}",
            )


def _spread(slots, tz) -> list:
    """Up to three distinct start times, earliest first. A window of several days offers several days (the first
    time of each of the first three days that have one, so "this week" or "soonest" shows a choice of days); a
    window of one day offers times at least SPREAD apart where it allows, filled with the remaining times."""
    first_per_start = {}
    for slot in sorted(slots, key=lambda s: s.start):
        first_per_start.setdefault(slot.start, slot)
    starts = sorted(first_per_start.items())
    first_per_day = {}
    for start, slot in starts:
        first_per_day.setdefault(start.astimezone(tz).date(), slot)
    if len(first_per_day) > 1:
        chosen = list(first_per_day.values())[:MAX_OFFERED]
        for _start, slot in starts:  # two days only: the first day's next time
            if len(chosen) == MAX_OFFERED:
                break
            if slot not in chosen and all(abs(slot.start - c.start) >= SPREAD for c in chosen):
                chosen.append(slot)
        return sorted(chosen, key=lambda s: s.start)
    chosen = []
    for start, slot in starts:
        if not chosen or start - chosen[-1].start >= SPREAD:
            chosen.append(slot)
        if len(chosen) == MAX_OFFERED:
            return chosen
    for _start, slot in starts:  # a narrow window: fill with the remaining times
        if slot not in chosen:
            chosen.append(slot)
        if len(chosen) == MAX_OFFERED:
            break
    return sorted(chosen, key=lambda s: s.start)
