"""Checking a reply the LLM wrote before it is sent (docs/COMPLIANCE.md, "The assistant").

A reply fails when it quotes a price, percentage or amount that the clinic's catalog, policies or documents do not
contain (or that a tool did not return this turn), names a clock time that was not offered, held, booked or written
in the clinic's documents, says an appointment is booked when none is, gives medical advice the clinic's own
documents do not give (both also in Spanish), carries a link or a phone number that is not the clinic's, or
repeats the assistant's instructions. The engine regenerates a failing reply once, then sends a safe answer and
hands off.

What is allowed is read from the database per clinic and cached until the clinic's knowledge or catalog changes.
"""

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.utils import timezone

from knowledge.models import KnowledgeDocument
from medspa.models import Service, format_cents
from messaging.models import PhoneNumber

MAX_REPLY_CHARS = 640  # four SMS segments

MONEY = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?")
PERCENT = re.compile(r"\b(\d{1,3})(?:\.\d+)?\s?(?:%|percent\b)")
CLOCK = re.compile(r"\b(\d{1,2})(?::([0-5]\d))?\s?(a\.?m\.?|p\.?m\.?)(?![a-z])|\b(\d{1,2}):([0-5]\d)\b", re.IGNORECASE)
PHONE = re.compile(r"(?<!\d)(?:\+?1[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}(?!\d)")
URL = re.compile(r"\bhttps?://[^\s<>\"')]+", re.IGNORECASE)
BOOKED_CLAIM = re.compile(
    r"\b(you'?re (all )?(set|booked|confirmed)|(is|are|has been|have been) (booked|confirmed|scheduled)|"
    r"i'?ve (booked|scheduled|confirmed)|see you (then|on))\b",
    re.IGNORECASE,
)
# The same claims and advice written in Spanish (a Spanish conversation's replies, conversation.i18n), matched on the
# reply without accents (``_folded``): the model may write them or not, and gsm7 takes some out.
BOOKED_CLAIM_ES = re.compile(
    r"\b((su cita )?(ya )?(esta|queda|quedo) (confirmad[ao]|reservad[ao]|agendad[ao]|programad[ao])|"
    r"le (reserve|agende|confirme|programe) (la|su) cita|lo esperamos|la esperamos|nos vemos (el|entonces|pronto))\b",
    re.IGNORECASE,
)
ADVICE_ES = re.compile(
    r"\b(ibuprofeno|paracetamol|acetaminofen|aspirina|antihistaminicos?|antibioticos?|esteroides?|prednisona|"
    r"arnica|\d+\s?mg|dosis|(va|vas) a estar bien|no hay (nada )?(de )?que preocuparse|"
    r"(es|eso es|esto es) (totalmente |completamente |perfectamente )?normal\b|"
    r"parece (una |un )?(infeccion|alergia|reaccion|moreton)|"
    r"(probablemente|seguramente) (sea |es )?(solo )?(una |un )?(moreton|hinchazon|infeccion|alergia|reaccion)|"
    r"diagnostic\w*|recet\w*|aplique (hielo|calor|compresas?)|(dese|haga) (un )?masaje)\b",
    re.IGNORECASE,
)
# Medical advice: dosing, drugs, reassurance about symptoms, diagnosis. A phrase the clinic's own documents use
# (their aftercare sheet) may be repeated.
ADVICE = re.compile(
    r"\b(ibuprofen|advil|motrin|aspirin|tylenol|acetaminophen|benadryl|antihistamines?|antibiotics?|"
    r"steroids?|prednisone|arnica|\d+\s?mg|dosage|dose of|(you should|you'?ll) (be fine|be okay|not worry)|"
    r"nothing to worry about|(it'?s|that'?s|this is) (totally |completely |perfectly )?(normal|safe)\b"
    r"|(safe|okay|ok) (to|for you to) (take|use|get|have|do)|"
    r"sounds like (an? )?(infection|allergic|allergy|reaction|bruis\w*|swelling|migration|ptosis)|"
    r"(probably|likely) (just )?(an? )?(bruise|bruising|swelling|infection|allergy|reaction)|diagnos\w*|"
    r"prescri\w*|apply (ice|heat|a cold|a warm)|massage (it|the area))\b",
    re.IGNORECASE,
)


@dataclass
class Allowed:
    """What a reply may say this turn, beyond the clinic's standing facts."""

    amounts: set = field(default_factory=set)  # cents
    times: set = field(default_factory=set)  # (hour, minute), clinic-local
    urls: set = field(default_factory=set)
    booked: bool = False  # an appointment exists or was just made: "you're all set" is true

    def add_time(self, value: datetime, tz) -> None:
        local = timezone.localtime(value, tz)
        self.times.add((local.hour, local.minute))

    def add_amount_text(self, text: str) -> None:
        self.amounts |= amounts_in(text)


def _folded(text: str) -> str:
    """Lower case without accents: "Está confirmada" -> "esta confirmada"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")


def amounts_in(text: str) -> set[int]:
    found = set()
    for match in MONEY.finditer(text or ""):
        dollars = int(match.group(1).replace(",", ""))
        cents = int((match.group(2) or "0").ljust(2, "0"))
        found.add(dollars * 100 + cents)
    return found


def percents_in(text: str) -> set[int]:
    return {int(m.group(1)) for m in PERCENT.finditer(text or "")}


def times_in(text: str) -> set[tuple[int, int]]:
    found = set()
    for m in CLOCK.finditer(text or ""):
        if m.group(1):
            hour, minute, half = int(m.group(1)), int(m.group(2) or 0), m.group(3).lower()[0]
            if not 1 <= hour <= 12:
                continue
            hour = hour % 12 + (12 if half == "p" else 0)
        else:
            hour, minute = int(m.group(4)), int(m.group(5))
            if hour > 23:
                continue
        found.add((hour, minute))
    return found


def _with_12h_twins(times):
    """ "3:00" in a document may mean 3 PM: a 24-hour reading and its 12-hour twin both count."""
    out = set(times)
    for hour, minute in times:
        out.add(((hour + 12) % 24, minute))
    return out


@dataclass
class ClinicFacts:
    amounts: set
    percents: set
    times: set
    text: str  # the clinic's documents and policies, lower case, for advice phrases
    urls: set
    phones: set  # the clinic's own numbers, as their last ten digits


def _digits(phone: str) -> str:
    return re.sub(r"\D", "", phone)[-10:]


def _clinic_numbers(clinic) -> list[str]:

    return list(PhoneNumber.objects.filter(clinic=clinic).values_list("number", flat=True))


def clinic_facts(clinic, version: str) -> ClinicFacts:
    """Every amount, percentage and clock time the clinic's catalog, policies and documents state."""
    key = f"conversation:facts:{clinic.pk}:{hashlib.sha256(version.encode()).hexdigest()}"
    facts = cache.get(key)
    if facts is not None:
        return facts
    texts = [clinic.deposit_policy, clinic.cancellation_policy, clinic.help_message]
    for service in Service.objects.for_clinic(clinic).filter(active=True):
        texts.append(service.price_text())
        texts.append(service.description)
        if service.deposit_cents:
            texts.append(format_cents(service.deposit_cents))
    texts += list(KnowledgeDocument.objects.for_clinic(clinic).active().values_list("body", flat=True))
    joined = "\n".join(t for t in texts if t)
    window = {(t.hour, t.minute) for t in (clinic.sending_window_start, clinic.sending_window_end) if t}
    facts = ClinicFacts(
        amounts=amounts_in(joined),
        percents=percents_in(joined),
        times=_with_12h_twins(times_in(joined)) | window,
        text=" ".join(joined.lower().split()),
        urls={u.rstrip("/") for u in [clinic.website] if u},
        phones={_digits(p) for p in [clinic.front_desk_phone, *_clinic_numbers(clinic)] if p},
    )
    cache.set(key, facts, 3600)
    return facts


def reply_problems(reply: str, *, facts: ClinicFacts, allowed: Allowed, secrets=()) -> list[str]:
    """Why this reply must not be sent (empty when it may be). The reasons are for the model's second try and the
    turn record: they name the kind of problem and the offending figure, never patient text."""
    problems = []
    text = (reply or "").strip()
    if not text:
        return ["the reply is empty"]
    if len(text) > MAX_REPLY_CHARS:
        problems.append(f"the reply is longer than {MAX_REPLY_CHARS} characters")
    for cents in sorted(amounts_in(text) - facts.amounts - allowed.amounts):
        problems.append(f"the amount {format_cents(cents)} is not in the clinic's prices or documents")
    for percent in sorted(percents_in(text) - facts.percents):
        problems.append(f"{percent}% is not in the clinic's documents")
    for hour, minute in sorted(times_in(text) - facts.times - allowed.times):
        problems.append(f"the time {hour:02d}:{minute:02d} was not offered to the patient")
    ours = {u.rstrip("/") for u in allowed.urls | facts.urls}
    for url in URL.findall(text):
        if url.rstrip("/.,!?") not in ours:
            problems.append("the reply links somewhere that is not this clinic's payment or website link")
    for phone in PHONE.findall(text):
        if _digits(phone) not in facts.phones:
            problems.append("the reply gives a phone number that is not the clinic's")
            break
    flat = " ".join(text.lower().split())
    if any(secret in flat for secret in secrets):
        problems.append("the reply repeats the assistant's instructions")
    folded = _folded(text)
    if (BOOKED_CLAIM.search(text) or BOOKED_CLAIM_ES.search(folded)) and not allowed.booked:
        problems.append("the reply says an appointment is booked, but none is")
    advice = [m.group(0).lower() for m in ADVICE.finditer(text)] + [m.group(0) for m in ADVICE_ES.finditer(folded)]
    if any(phrase not in facts.text for phrase in advice):
        problems.append("the reply gives medical advice; symptoms and medicine questions go to staff")
    return problems
