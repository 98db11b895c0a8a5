"""The rules engine: deterministic, no network. The embedded default, the engine the tests script, and the fallback
whenever the LLM errs. It reads the patient's texts with ``conversation.parsing`` and acts only through the tools.

The order of what it looks at is the order of what matters: an urgent symptom, a question about someone else, a
request for a person, then cancellations, a name it asked for, a pick among the times it offered, the service and
the time wanted, prices, and finally the clinic's knowledge for any other question.
"""

import re
from dataclasses import dataclass, field
from datetime import tzinfo

from medspa.models import format_cents
from medspa.timetext import time_label, when_label, zone_label

from . import i18n, parsing
from .engines import Engine, EngineContext, EngineReply
from .models import Conversation
from .tools import ToolRefused

URGENT = re.compile(
    r"\b(can'?t breathe|cannot breathe|trouble breathing|hard to breathe|short(ness)? of breath|throat (is )?"
    r"(closing|swelling|swollen)|chest pain|faint(ed|ing)?|pass(ed|ing) out|severe (pain|swelling|headache)|"
    r"vision (loss|problems?|changes?)|can'?t see|blurr?y vision|(skin|lip|area) (is )?(turning )?(white|gr[ae]y|"
    r"blue|dusky)|blanch(ed|ing)|droop(y|ing)?|allergic reaction|hives|anaphyla\w*|infect(ed|ion)|pus|fever|"
    r"bleeding (a lot|heavily|won'?t stop)|emergency|dusky|gr[ae]yish|bluish|mottled|"
    r"(pain|swelling|redness) (is |keeps )?(getting |gets )?worse|worse and worse|worsening)\b"
)
OTHER_PATIENT = re.compile(
    r"\b(my (friend|sister|brother|mom|mother|dad|husband|wife|partner|daughter|son|coworker)'?s? "
    r"(appointment|booking|results?|records?|visit)|(did|has|when is|is) (\w+ )?(\w+ )?(come|came|been|booked)"
    r" (in|there)|who else|other (patients?|clients?)|patient list|(is|was) (my )?[a-z]+( [a-z]+){0,2} (a|one of your) "
    r"(patient|client|customer)s?|(everyone|everybody|anyone|who'?s|who is) (else )?(booked|coming|scheduled)|"
    r"(last|previous|other) (person|people|patient|caller))\b"
)
POSSESSIVE = re.compile(
    r"\b([a-z]+)['\u2019]s (appointment|booking|visit|records?|results?|phone|number|email|address)\b"
)
NOT_SOMEONE = {"today", "tomorrow", "yesterday", "tonight", "week", "month", "clinic", "spa", "office", "doctor"} | {
    f"{day}day" for day in ("mon", "tues", "wednes", "thurs", "fri", "satur", "sun")
}
MOVE = re.compile(r"\b(move|moving|reschedule|switch|swap|change it|instead)\b")
ANOTHER = re.compile(
    r"\b(another|second|2nd|additional|extra|both|keep (it|both|the other|my other)|new appointment|as well|also)\b"
)
PASS = re.compile(r"\b(pass|not interested|no thanks|cant make it|can't make it|dont want it|don't want it)\b")
YES_WORDS = re.compile(r"^\s*(yes|yeah|yep|yup|sure|ok|okay|please|1)\b[\s,.!:-]*", re.IGNORECASE)
MY_APPOINTMENT = re.compile(r"\b(my|our) (appointment|booking|visit|botox|filler|treatment)\b")
# A question about a treatment the patient had or has booked: no "find you a time?" after its answer.
OWN_TREATMENT = re.compile(
    r"\b(after|since|from) my\b|\bmy (\w+ )?(last|next|appointment|booking|visit|treatment|session)\b"
)
PAYING = re.compile(r"\b(pay|paid|paying|payment|link|deposit|card|checkout)\b")
NAME_PHRASE = re.compile(
    r"\b(?:my name is|my name's|name is|name's|i am|i'm|this is|it's|under)\s+([a-z][a-z'\-]+(?:\s+[a-z][a-z'\-]+)?)",
    re.IGNORECASE,
)
URGENT_SCRIPT = (
    "If this is an emergency or you have trouble breathing, call 911 now. For anything else after your treatment, "
    "please call us right away{phone}. I've alerted our team and someone will reach out to you."
)


@dataclass
class _Turn:
    """One turn as the steps of ``RulesEngine._respond`` read it: the conversation, the patient's texts joined, the
    tools, the text read once (normalised, its intents, the catalog), and what ``_read_service_and_time`` notes."""

    c: Conversation
    text: str
    tools: object
    tz: tzinfo
    lowered: str
    wants: set[str]
    catalog: list[parsing.ServiceName]
    mentioned: list[int] = field(default_factory=list)
    when: parsing.TimeWindow | None = None

    @property
    def clinic(self):
        return self.c.clinic

    @classmethod
    def read(cls, c, text, tools) -> "_Turn":
        tz, lowered, wants = c.clinic.tz, parsing.normalise(text), parsing.intents(text)
        catalog = [parsing.ServiceName(s.pk, s.name, tuple(s.aliases or ())) for s in tools.catalog()]
        return cls(c, text, tools, tz, lowered, wants, catalog)


class RulesEngine(Engine):
    name = "rules"
    guarded = False  # it has its own safety answers and cannot fail

    def respond(self, *, conversation, texts, tools, context: EngineContext | None = None) -> EngineReply:
        """Reads only the new texts and the conversation's state: ``context`` is not used."""
        text = " ".join(t.strip() for t in texts if t and t.strip())
        if tools.follow_language(text) == i18n.ES:
            return EngineReply(text=self._respond_es(conversation, text, tools), engine=self.name)
        reply = self._respond(conversation, text, tools)
        return EngineReply(text=reply, engine=self.name)

    # --- Spanish (conversation.i18n): the same steps, read and said in Spanish -------------------------------------

    def _respond_es(self, c, text, tools):
        """A Spanish text: read in the words the steps know, answered by the same steps, the reply said in
        Spanish (the clinic's documents quoted as they are)."""
        reply = self._respond(c, i18n.to_parser_text(text), tools)
        return i18n.reply_es(reply, tz=c.clinic.tz, now=tools.now)

    def _respond(self, c, text, tools):  # a dialogue is a sequence of checks, in order
        """Runs ``STEPS`` in order; the first that returns a reply (not None) answers. A refusal by a tool is the
        reply."""
        turn = _Turn.read(c, text, tools)
        try:
            for step in self.STEPS:
                reply = getattr(self, step)(turn)
                if reply is not None:
                    return reply
        except ToolRefused as refused:
            return str(refused)
        return None  # never reached: the last step always answers

    STEPS = (  # the priority order: what matters most first
        "_safety",
        "_photo",
        "_hold_lapsed_or_link_again",
        "_waitlist_offer_reply",
        "_pick_while_booked",
        "_cancel_confirmation",
        "_waitlist_question",
        "_cancel",
        "_reschedule",
        "_repick_while_holding",
        "_name_for_hold",
        "_pick_offered_time",
        "_read_service_and_time",
        "_prices",
        "_question",
        "_booking_talk",
        "_other_days",
        "_long_text",
        "_thanks",
        "_greeting",
        "_which_time",
        "_which_day",
        "_anything_else",
    )

    # --- The steps, in the order of STEPS: each returns a reply, or None to pass ---------------------------------

    def _safety(self, t):
        """Urgent symptoms, a question about someone else, a request for a person (``safety_reply``)."""
        return self.safety_reply(t.c, t.text, t.tools) or None

    def _photo(self, t):
        """A photo (or an empty text): a person looks at it; the assistant stays on."""
        if t.text.strip():
            return None
        t.tools.flag_for_staff("the patient sent a photo without text")
        phone = f" at {t.clinic.front_desk_phone}" if t.clinic.front_desk_phone else ""
        return (
            "Thanks for the photo! I've shared it with our team and someone will text you back. If it's about a "
            f"reaction after a treatment and it's urgent, please call us{phone}."
        )

    def _hold_lapsed_or_link_again(self, t):
        """A held time whose deposit link ran out (offer times again), or a request for the deposit link again."""
        c = t.c
        if c.state not in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) or not c.booking_id:
            return None
        held = c.booking
        if t.tools.hold_lapsed():
            if PAYING.search(t.lowered) or t.wants & {"book", "yes"}:
                return self._lapsed(c, t.tools, held, t.tz)
        elif c.state == Conversation.State.AWAITING_DEPOSIT and PAYING.search(t.lowered):
            return self._deposit(t.tools, t.tz)  # the same link again
        return None

    def _waitlist_offer_reply(self, t):
        """The answer to a freed time the waitlist holds for the patient: yes (or "1") books it through the usual
        name and deposit steps, no releases it for the next patient; anything else goes on as usual."""
        c, tools = t.c, t.tools
        if c.state not in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) or not c.booking_id:
            return None
        if tools.waitlist_offer() is None:
            return None
        picked = parsing.parse_choice(t.text, [o.start for o in tools.offered()], tz=t.tz) is not None
        yes = bool(t.wants & {"yes", "book"}) or picked
        if ("no" in t.wants or "cancel" in t.wants or PASS.search(t.lowered)) and not yes:
            tools.decline_waitlist_offer()
            return "No problem, I've let that time go. I'll keep you on the list in case another one opens."
        if not yes:
            return None
        if not c.patient_name:
            name = _name_in(t.text) or parsing.parse_name(YES_WORDS.sub("", t.text).strip(" ,.!"))
            if name is None:
                return "Great! What name should I put the appointment under?"
            tools.set_name(*name)
        return self._deposit(tools, t.tz)

    def _waitlist_question(self, t):
        """The answer to "Want me to text you if something opens?": yes joins the waitlist, no drops it; anything
        else lets the question lapse and goes on."""
        tools = t.tools
        entry = tools.waitlist_question()
        if entry is None:
            return None
        yes, no = "yes" in t.wants and "no" not in t.wants, "no" in t.wants
        if yes or "waitlist" in t.lowered:
            entry = tools.answer_waitlist(entry, join=True)
            label = _with_zone(entry.label, t.tz, tools.now)
            return (
                f"Done! I'll text you if a {entry.service.name} time opens {label}, and hold it for you for a few "
                "minutes. Or tell me another day that works."
            )
        tools.answer_waitlist(entry, join=False)
        if no:
            return "No problem. What day or time would work better for you?"
        return None

    def _pick_while_booked(self, t):
        """A pick of an offered time while already booked for the same treatment: move it, or book another."""
        if t.c.pending_pick and t.c.state == Conversation.State.OFFERING:
            return self._already_booked(t.c, t.tools, t.lowered, t.wants, t.tz) or None
        return None

    def _cancel_confirmation(self, t):
        """The answer to "Reply YES to cancel": cancel, keep, or (anything else) go on."""
        if t.c.confirming_cancel_id:
            return self._confirm_cancel(t.c, t.tools, t.lowered, t.wants, t.tz) or None
        return None

    def _cancel(self, t):
        """A cancellation, from any state (offering times included): ask once, then cancel."""
        return self._ask_cancel(t.c, t.tools, t.tz) if "cancel" in t.wants else None

    def _reschedule(self, t):
        """A request to move an upcoming appointment (unless already picking its new time)."""
        c, tools = t.c, t.tools
        picking_new_time = c.rescheduling_id and c.state == Conversation.State.OFFERING and c.offered_slots
        if "reschedule" not in t.wants or picking_new_time or tools.upcoming_booking() is None:
            return None
        booking = tools.start_reschedule()
        when = parsing.parse_when(t.text, now=tools.now, tz=t.tz)
        if when is None:
            return (
                f"Sure! Your {booking.service.name} is on {when_label(booking.start, t.tz)}. "
                "What day and time would work better?"
            )
        return self._offer(c, tools, when, t.tz)

    def _repick_while_holding(self, t):
        """Another of the offered times while one is held ("actually can i do 3 instead")."""
        c, tools = t.c, t.tools
        if c.state != Conversation.State.HOLDING or not c.offered_slots or c.rescheduling_id:
            return None
        offered = tools.offered()
        repick = parsing.parse_choice(t.text, [o.start for o in offered], tz=t.tz)
        if repick is None or offered[repick].start == c.booking.start:
            return None
        tools.hold_time(repick + 1)
        if not c.patient_name:
            return "No problem, I've switched it. What name should I put the appointment under?"
        return self._deposit(tools, t.tz)

    def _name_for_hold(self, t):
        """The name asked for once a time is held; then the deposit."""
        if t.c.state != Conversation.State.HOLDING or t.c.patient_name:
            return None
        name = parsing.parse_name(t.text)
        if not name:
            return None
        t.tools.set_name(*name)
        return self._deposit(t.tools, t.tz)

    def _pick_offered_time(self, t):
        """A pick among the times offered: hold it (or move the appointment there), then the name or the deposit."""
        c, tools = t.c, t.tools
        if c.state != Conversation.State.OFFERING or not c.offered_slots:
            return None
        offered = tools.offered()
        choice = parsing.parse_choice(t.text, [o.start for o in offered], tz=t.tz)
        if choice is None and t.lowered.isdigit() and int(t.lowered) > len(offered):  # "6" of three
            prompt = _pick_prompt(offered)
            return f"I offered {len(offered)} times: r{prompt[1:]}, or tell me another day."
        if choice is None:
            return None
        if c.rescheduling_id:
            return self._moved(tools.reschedule_to(choice + 1), t.tz)
        tools.hold_time(choice + 1)
        if not c.patient_name:
            name = _name_in(t.text)
            if name is None:
                return "Great choice! What name should I put the appointment under?"
            tools.set_name(*name)
        return self._deposit(tools, t.tz)

    def _read_service_and_time(self, t):
        """No reply: notes the service named (choosing it) and the time wanted, for the steps after."""
        c, tools = t.c, t.tools
        t.mentioned = parsing.find_services(t.text, t.catalog)
        offering, earlier = c.state == Conversation.State.OFFERING, c.service_id
        if t.mentioned:
            tools.choose_service(t.mentioned[0])
        t.when = parsing.parse_when(t.text, now=tools.now, tz=t.tz)
        if t.when is None and offering and earlier != c.service_id and c.time_preference:
            t.when = parsing.parse_when(c.time_preference, now=tools.now, tz=t.tz)  # another service, same time
        return None

    def _prices(self, t):
        """A question about prices."""
        return self._price(t.c, t.tools, t.mentioned, t.catalog) if "price" in t.wants else None

    def _question(self, t):
        """A question (not a booking request): answered first, whatever day or service it names."""
        if "question" not in t.wants or parsing.is_request(t.text):
            return None
        upcoming = t.tools.upcoming_booking() if MY_APPOINTMENT.search(t.lowered) else None
        if upcoming is not None:  # "what time is my appointment?", "is my appt still on?"
            return (
                f"Yes: your {upcoming.service.name} is on {when_label(upcoming.start, t.tz)} with "
                f"{upcoming.provider.name}. See you then!"
            )
        return self._answer(t.c, t.tools, t.text)

    def _booking_talk(self, t):
        """A wish to book, a time, or a service named: offer times (moving an appointment unless another)."""
        c = t.c
        booking_talk = "book" in t.wants or t.when is not None or (t.mentioned and c.state == Conversation.State.NEW)
        if c.state == Conversation.State.OFFERING and ("no" in t.wants or t.when is not None):
            booking_talk = True
        if not (booking_talk or (t.mentioned and "question" not in t.wants)):
            return None
        self._moving_unless_another(c, t.tools, t.lowered)
        return self._book(c, t.tools, t.when, t.wants, t.tz)

    def _other_days(self, t):
        """ "Yes" to "want me to check other days?": the next two weeks."""
        c = t.c
        if "yes" in t.wants and c.service_id and not c.offered_slots and c.time_preference:
            return self._offer(c, t.tools, _next_days(t.tools.now, t.tz), t.tz)
        return None

    def _long_text(self, t):
        """Any other question, or a text of more than three words: the clinic's knowledge."""
        if "question" in t.wants or len(t.lowered.split()) > 3:
            return self._answer(t.c, t.tools, t.text)
        return None

    def _thanks(self, t):
        """Thanks."""
        return "You're welcome! Anything else I can help with?" if "thanks" in t.wants else None

    def _greeting(self, t):
        """A greeting."""
        if "greeting" not in t.wants:
            return None
        return f"Hi! This is {t.clinic.name}. I can answer questions, share prices or book you in. What can I do?"

    def _which_time(self, t):
        """Times offered and none picked: ask which."""
        if t.c.state == Conversation.State.OFFERING and t.c.offered_slots:
            return f"Sorry, which time works? {_pick_prompt(t.tools.offered())}, or tell me another day."
        return None

    def _which_day(self, t):
        """A service chosen and no time yet: ask for a day and time."""
        if t.c.service_id and t.c.state == Conversation.State.ENGAGED:
            return f'What day and time work best for your {t.c.service.name}? (e.g. "Thursday afternoon")'
        return None

    def _anything_else(self, t):
        """Anything else: the clinic's knowledge (or a hand-off when it has no answer)."""
        return self._answer(t.c, t.tools, t.text)

    def safety_reply(self, c, text, tools) -> str:
        """The answers no engine improvises: urgent symptoms (the urgent script and an urgent alert), questions
        about someone else (nothing), a request for a person (a hand-off). Empty when none applies."""
        lowered = parsing.normalise(text)
        if URGENT.search(lowered):
            tools.hand_off("possible urgent symptoms", urgent=True)
            phone = f" at {c.clinic.front_desk_phone}" if c.clinic.front_desk_phone else ""
            return URGENT_SCRIPT.format(phone=phone)
        if OTHER_PATIENT.search(lowered) or _someone_elses(text):
            return "I'm sorry, I can only help with your own appointments and questions. How can I help you today?"
        if "human" in parsing.intents(text):
            tools.hand_off("the patient asked for a person")
            return "Of course! I've let our front desk know, and someone will text you back shortly."
        return ""

    # --- Pieces of the dialogue -----------------------------------------------------------------------------------

    def _moving_unless_another(self, c, tools, lowered):
        """A patient with an upcoming appointment who asks for a time for the same treatment is moving it, unless
        they say they want another one (then the next pick may be a second appointment)."""
        if c.rescheduling_id:
            return
        upcoming = tools.upcoming_booking()
        if upcoming is None or (c.service_id and c.service_id != upcoming.service_id):
            return
        if ANOTHER.search(lowered):
            tools.allow_another_booking()
            return
        tools.start_reschedule()

    def _already_booked(self, c, tools, lowered, wants, tz):
        """The patient picked a time while already booked for the same treatment: MOVE moves the appointment
        there, ANOTHER books it as a second one. Anything else goes on as usual."""
        index = c.pending_pick
        if MOVE.search(lowered) or wants & {"reschedule", "yes"}:
            tools.start_reschedule(keep_offered=True)
            return self._moved(tools.reschedule_to(index), tz)
        if ANOTHER.search(lowered):
            tools.allow_another_booking()
            tools.hold_time(index)
            if not c.patient_name:
                return "Great choice! What name should I put the appointment under?"
            return self._deposit(tools, tz)
        return ""

    def _ask_cancel(self, c, tools, tz):
        if tools.upcoming_booking() is None:
            held = c.booking if c.booking is not None and c.booking.status in ("held", "awaiting_deposit") else None
            if held is not None:  # nothing is booked yet: "cancel" lets go of the time held for the deposit
                tools.release_hold()
                tools.forget_offer()
                return (
                    f"No problem: I've let go of the {held.service.name} time on {when_label(held.start, tz)}. "
                    "Nothing is booked and the deposit link no longer works. Text me any time to find another time."
                )
            if c.state == Conversation.State.OFFERING:
                tools.release_hold()
                tools.forget_offer()
                return "No problem, I won't book anything. Text me any time you'd like to find a time."
        booking = tools.ask_cancel()
        deposit = _deposit_cents(booking)
        refund = f"; your {format_cents(deposit)} deposit will be refunded" if deposit else ""
        return (
            f"Reply YES to cancel your {booking.service.name} on {when_label(booking.start, tz)}{refund}. "
            "Or reply NO to keep it."
        )

    def _confirm_cancel(self, c, tools, lowered, wants, tz):
        """The answer to "Reply YES to cancel": YES cancels, NO (or "don't cancel") keeps it, anything else goes on
        as a new text (the question lapses)."""
        if ("yes" in wants or "cancel" in wants) and not re.search(r"\b(dont|do not|no|not)\b", lowered):
            return self._cancelled(tools.cancel_booking(), tz)
        booking = c.confirming_cancel
        tools.keep_booking()
        if "no" in wants or re.search(r"\b(dont|do not) cancel|keep (it|my)\b", lowered):
            return f"No problem: your {booking.service.name} on {when_label(booking.start, tz)} stays booked."
        return ""

    def _cancelled(self, booking, tz):
        deposit = _deposit_cents(booking)
        refund = f" Your {format_cents(deposit)} deposit will be refunded." if deposit else ""
        return (
            f"Done: your {booking.service.name} on {when_label(booking.start, tz)} is cancelled.{refund} "
            "Want to pick another time?"
        )

    def _price(self, c, tools, mentioned, catalog):
        if not mentioned and c.service_id is None:
            names = ", ".join(s.name for s in catalog[:6])
            return f"Happy to help with prices! Which treatment? We offer {names}, and more."
        ids = mentioned or [c.service_id]
        lines = []
        for service_id in ids[:3]:
            info = tools.lookup_service(service_id)
            lines.append(f"{info['name']} is {info['price']}.")
        return " ".join(lines) + " Would you like me to find you a time?"

    def _book(self, c, tools, when, wants, tz):
        if c.service_id is None:
            names = ", ".join(s.name for s in tools.catalog()[:6])
            return f"I'd love to get you booked! Which treatment are you interested in? For example: {names}."
        if when is None:
            if c.state == Conversation.State.OFFERING and "no" in wants:
                return "No problem. What day or time would work better for you?"
            return self._offer_soonest(c, tools, tz)
        return self._offer(c, tools, when, tz)

    def _offer_soonest(self, c, tools, tz):
        """ "I want Botox": its price (unless already given) and the soonest open times, in one reply."""
        from datetime import timedelta

        window = parsing.TimeWindow(start=tools.now, end=tools.now + timedelta(days=7), label="soonest", asap=True)
        offered = tools.find_open_times(start=window.start, end=window.end, label=window.label)
        if not offered:
            return f'Great, {c.service.name}! What day and time work best for you? (e.g. "Thursday afternoon")'
        price = tools.lookup_service(c.service_id)["price"]
        said = c.messages.filter(direction="outbound", body__contains=price).exists()
        lead = "" if said else f"{c.service.name} is {price}. "
        return f"{lead}{_offer_text(c.service.name, offered, tz)[:-1]}, or tell me a day that suits you."

    def _offer(self, c, tools, when, tz):
        offered = tools.find_open_times(
            start=when.start,
            end=when.end,
            label=when.label,
            day_start=getattr(when, "day_start", None),
            day_end=getattr(when, "day_end", None),
        )
        if not offered:
            if not c.rescheduling_id and tools.waitlist_worth_offering(start=when.start, end=when.end):
                tools.propose_waitlist(
                    start=when.start,
                    end=when.end,
                    label=when.label,
                    day_start=getattr(when, "day_start", None),
                    day_end=getattr(when, "day_end", None),
                )
                return (
                    f"I don't see any {c.service.name} openings {when.label}. Want me to text you if something opens "
                    f"{_with_zone(when.label, tz, tools.now)}? Reply YES, or tell me another day."
                )
            return f"I don't see any {c.service.name} openings {when.label}. Want me to check other days?"
        return _offer_text(c.service.name, offered, tz)

    def _lapsed(self, c, tools, held, tz):
        """The deposit link ran out before it was paid: say so, and offer times again for the same wish."""
        sorry = f"Sorry, the hold on {when_label(held.start, tz)} has expired."
        when = parsing.parse_when(c.time_preference, now=tools.now, tz=tz) if c.time_preference else None
        if when is None:
            return f"{sorry} What day and time would work for you?"
        offered = tools.find_open_times(
            start=when.start, end=when.end, label=when.label, day_start=when.day_start, day_end=when.day_end
        )
        if not offered:
            return f"{sorry} I don't see other {c.service.name} openings {when.label}. Want me to check other days?"
        return f"{sorry} {_offer_text(c.service.name, offered, tz)}"

    def _moved(self, booking, tz):
        deposit = " Your deposit carries over." if booking.deposit_cents else ""
        if booking.status != "confirmed":
            return (
                f"Thanks! I've sent the move to {when_label(booking.start, tz)} to our front desk to confirm; "
                f"they'll text you shortly.{deposit}"
            )
        return (
            f"Done! Your {booking.service.name} is now {when_label(booking.start, tz)} with "
            f"{booking.provider.name}.{deposit} See you then!"
        )

    def state_reply(self, c, tools) -> str:
        """Where the conversation stands, said plainly: the answer when another engine acted through the tools
        and then failed to say so (the times it offered, the deposit link, the confirmation). Empty when there is
        nothing in progress to report."""
        tz = c.clinic.tz
        try:
            if c.state == Conversation.State.OFFERING and c.offered_slots:
                return _offer_text(c.service.name, tools.offered(), tz)
            if c.state == Conversation.State.HOLDING and not c.patient_name:
                return "Great choice! What name should I put the appointment under?"
            if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT) and c.booking_id:
                return self._deposit(tools, tz)
            if c.state == Conversation.State.CONFIRMED and c.booking_id:
                return self._moved(c.booking, tz) if c.booking.rescheduled_from_id else self._booked(c.booking, tz)
            if c.state == Conversation.State.HANDED_OFF:
                return "Thanks! One of our team will text you shortly."
        except ToolRefused as refused:
            return str(refused)
        return ""

    def _booked(self, booking, tz):
        return (
            f"You're all set: {booking.service.name} on {when_label(booking.start, tz)} with "
            f"{booking.provider.name}. See you then!"
        )

    def _deposit(self, tools, tz):
        result = tools.request_deposit()
        booking = tools.conversation.booking
        when = when_label(booking.start, tz)
        if result["status"] == "confirmed":
            return self._booked(booking, tz)
        if result["status"] != "link":
            return (
                f"Thanks! I've sent your {booking.service.name} on {when} to our front desk to confirm; "
                "they'll text you shortly."
            )
        held = f" until {time_label(result['held_until'], tz)}" if result.get("held_until") else ""
        return (
            f"Thanks, {tools.conversation.patient_name.split()[0]}! I'm holding {booking.service.name} on {when} with "
            f"{booking.provider.name}{held}. To confirm, please pay the {result['amount']} deposit here: "
            f"{result['url']}"
        )

    def _answer(self, c, tools, text):
        results = [r for r in tools.search_knowledge(text) if r.get("snippet")]
        if not results:
            tools.hand_off("a question the clinic's information does not answer")
            return "Good question! I don't have that information, so I've asked our team to get back to you shortly."
        steer = ""
        if c.state == Conversation.State.OFFERING and c.offered_slots:
            steer = f" {_pick_prompt(tools.offered())} for one of the times above."
        elif self._offer_fits(c, tools, text, results):
            steer = " Would you like me to find you a time?"
        # The sentences of the best passage that answer the question, whole, within two SMS segments (knowledge).
        return (results[0].get("answer") or results[0]["snippet"]) + steer

    def _offer_fits(self, c, tools, text, results) -> bool:
        """ "Find you a time?" after an answer only when booking is the natural next step: nothing in progress, a
        treatment the clinic books is what the question is about (search names it from the catalog), and not after
        a health or safety answer (it may well be "not for you right now"), a question about one's own past or
        booked treatment, or for a patient who already has an appointment coming."""
        if c.state not in (Conversation.State.NEW, Conversation.State.ENGAGED) or parsing.is_health_question(text):
            return False
        if not any(r["kind"] == "catalog" for r in results) or OWN_TREATMENT.search(parsing.normalise(text)):
            return False
        return tools.upcoming_booking() is None


def _with_zone(label: str, tz, now) -> str:
    """A window as said back, with the clinic's zone when it names a clock time ("after 3 (EST)")."""
    if not re.search(r"\d", label):
        return label
    return f"{label} ({zone_label(now, tz)})"


def _deposit_cents(booking) -> int:
    """The deposit paid for this booking (refunded on a cancellation within the notice), 0 when none was paid."""
    payment = getattr(booking, "payment", None)  # hasattr/getattr: a reverse one-to-one raises when absent
    return payment.paid_cents if payment is not None and payment.status == "paid" else 0


def _someone_elses(text: str) -> bool:
    """ "sarah's appointment", "my friend's results": a possessive that is not a day or the clinic."""
    return any(m.group(1) not in NOT_SOMEONE for m in POSSESSIVE.finditer(text.lower()))


def _pick_prompt(offered) -> str:
    numbers = [str(o.index) for o in offered]
    return "Reply " + (" or ".join([", ".join(numbers[:-1]), numbers[-1]]) if len(numbers) > 1 else "1")


def _offer_text(service: str, offered, tz) -> str:
    lines = [f"{o.index}. {when_label(o.start, tz)} with {o.provider_name}" for o in offered]
    return f"Here are open times for {service}:\n" + "\n".join(lines) + f"\n{_pick_prompt(offered)} to pick one."


def _name_in(text: str):
    """A name stated inside a longer text ("the first one, my name is Maria Garcia")."""
    match = NAME_PHRASE.search(text)
    return parsing.parse_name(match.group(1)) if match else None


def _next_days(now, tz):
    """The next two weeks, as a window ("other days")."""
    from datetime import timedelta

    return parsing.TimeWindow(start=now, end=now + timedelta(days=14), label="in the next two weeks", asap=True)
