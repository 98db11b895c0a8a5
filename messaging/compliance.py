"""SMS compliance decided by our code, before the engine or a provider sees a message.

- ``classify(text)``: is an inbound text an opt-out, an opt-in, a HELP request, or none of these?
  Rules: ../shared/reference/COMPLIANCE.md (TCPA, FCC 24-24 "any reasonable means", CTIA). When unsure whether
  a patient wants texts to stop, we fail closed: treat it as an opt-out and tell staff.
- ``send_window`` / ``next_send_time``: when a message that is not a direct reply may go out, in the recipient's
  local time, under the strictest of the federal window, the recipient's state window and the clinic's own.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone


class Intent(StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"
    NONE = "none"


@dataclass(frozen=True)
class Classification:
    intent: Intent
    # True when the text was taken as an opt-out without being a clear one: staff should look (it may have been
    # about an appointment), but texting stops all the same.
    alert_staff: bool = False
    reason: str = ""
    # "es" when the keyword or phrase is Spanish (ALTO, PARAR, AYUDA, "no me manden mensajes"): the confirmation
    # goes out in Spanish when the clinic answers in Spanish. The decision itself never depends on it.
    language: str = "en"


# CTIA / carrier keywords and the FCC's per-se list, after normalise() (so OPT-OUT is "opt out").
OPT_OUT_KEYWORDS = {
    "stop",
    "stopall",
    "stop all",
    "unsubscribe",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
    "remove",
    "stop please",
    "please stop",
    "stop now",
    "stop texting",
    "stop messaging",
    "stop texts",
    "unsub",
    # Spanish (about 13% of US residents speak it at home) and the French ARRET carriers list beside STOP. ALTO is
    # the carriers' Spanish STOP (Twilio, "requirements for a Spanish-language short code": AYUDA and ALTO must get
    # Spanish answers); the others are the plain verbs a patient writes (docs/COMPLIANCE.md, Spanish keywords).
    "alto",
    "parar",
    "para",
    "detener",
    "baja",
    "darme de baja",
    "arret",
}
# Alone, "cancel" is an opt-out keyword; in a sentence ("cancel my appointment") it is a booking request.
CANCEL = {"cancel", "cancelar"}
OPT_IN_KEYWORDS = {"start", "unstop", "subscribe", "resubscribe", "inicio", "iniciar", "reanudar"}
YES_WORDS = {"yes", "y", "yes please", "yeah", "yep", "si"}
HELP_KEYWORDS = {"help", "info", "information", "ayuda", "auxilio"}
# The keywords above that are Spanish: their confirmation is said in Spanish (``Classification.language``).
SPANISH_KEYWORDS = {
    "alto",
    "parar",
    "para",
    "detener",
    "baja",
    "darme de baja",
    "cancelar",
    "inicio",
    "iniciar",
    "reanudar",
    "si",
    "ayuda",
    "auxilio",
}

# "Any reasonable means" (FCC 24-24): revocations in plain words, English and Spanish.
REVOCATION_PATTERNS = [
    r"\b(stop|quit|cease)\b.{0,20}\b(text|texting|texts|message|messages|messaging|msg|msgs|sms|contact|contacting|"
    r"sending|send|calling|call)\b",
    r"\b(dont|do not|never|no longer)\b.{0,15}\b(text|message|contact|sms|msg|send)\b",
    r"\bno more\b.{0,12}\b(texts?|messages?|sms|msgs?|contact)\b",
    r"\b(remove|take|delete|drop)\b.{0,12}\b(me|my number|this number)\b.{0,25}\b(list|texts?|messages?|contact|"
    r"database|system)\b",
    r"\b(remove me|take me off|delete my number|lose my number)\b",
    r"\b(remove|delete|erase|take off) (my|this) (number|phone|cell)\b",
    r"\bnever (signed up|subscribed|opted in|agreed)\b",
    r"\b(unsubscribe|opt me out|opt out|optout|revoke|i revoke)\b",
    r"\bleave me alone\b",
    r"\bwrong number\b",
    r"\b(not interested|no interest)\b.{0,20}\b(texts?|messages?|stop)\b",
]
SPANISH_REVOCATION_PATTERNS = [
    r"\bno mas\b",
    r"\b(deja|dejen|dejar) de (escribir|mandar|enviar|textear)",
    r"\bno (me )?(manden|envien|escriban|mande|envie|escriba)\b",
    r"\b(darme|dame|denme|me doy) de baja\b",
]
REVOCATION_PATTERNS += SPANISH_REVOCATION_PATTERNS
REVOCATION_RE = re.compile("|".join(f"(?:{p})" for p in REVOCATION_PATTERNS))
SPANISH_REVOCATION_RE = re.compile("|".join(f"(?:{p})" for p in SPANISH_REVOCATION_PATTERNS))
# A short text carrying one of these words is taken as an opt-out (fail closed) unless it is clearly about booking.
STRONG_WORDS = {"stop", "unsubscribe", "optout", "revoke", "stopall", "quit"}
SHORT_TEXT_WORDS = 4
# "please don't call me, just text": texts asked for, calls refused; never an opt-out from texts.
TEXTS_WANTED = re.compile(
    r"\b(dont|do not|never|no) (call|phone|ring)\b.{0,25}\b(just|only|please|rather) (text|message|sms)|"
    r"\b(text|texting|message) (me )?(instead|only|is (fine|better|best|ok|easier))\b"
)
# "closest T stop?", "can i stop by": "stop" as a place or a visit, not a request to stop texting.
PLACE_STOP = re.compile(
    r"\b(t|bus|train|subway|metro|red line|green line|orange line|next|last) stop\b|\bstop (by|in)\b"
)


def normalise(text: str) -> str:
    """Case-folded words only: accents, punctuation and emoji dropped, hyphens and spaces folded to one space."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    kept = []
    for char in decomposed:
        category = unicodedata.category(char)
        if category == "Mn":  # combining accents: "más" -> "mas"
            continue
        if char.isalnum():
            kept.append(char)
        elif char == "'" or char == "\u2019":  # "don't" -> "dont"
            continue
        else:
            kept.append(" ")
    return " ".join("".join(kept).casefold().split())


def classify(text: str, *, opted_out: bool = False) -> Classification:
    """What an inbound text means for compliance. ``opted_out``: the sender is currently opted out of this clinic
    (only then does a plain YES opt back in)."""
    words = normalise(text)
    if not words:
        return Classification(Intent.NONE)
    language = "es" if words in SPANISH_KEYWORDS else "en"
    if words in OPT_OUT_KEYWORDS:
        return Classification(Intent.OPT_OUT, reason="keyword", language=language)
    if words in CANCEL:
        return Classification(
            Intent.OPT_OUT, alert_staff=True, reason="cancel alone: may have meant the appointment", language=language
        )
    if words in OPT_IN_KEYWORDS or (opted_out and words in YES_WORDS):
        return Classification(Intent.OPT_IN, reason="keyword", language=language)
    if words in HELP_KEYWORDS:
        return Classification(Intent.HELP, reason="keyword", language=language)
    if REVOCATION_RE.search(words) and not TEXTS_WANTED.search(words):
        spanish = "es" if SPANISH_REVOCATION_RE.search(words) else "en"
        return Classification(Intent.OPT_OUT, reason="revocation phrase", language=spanish)
    tokens = words.split()
    if len(tokens) <= SHORT_TEXT_WORDS and STRONG_WORDS & set(tokens) and not PLACE_STOP.search(words):
        return Classification(Intent.OPT_OUT, alert_staff=True, reason="short text with an opt-out word")
    return Classification(Intent.NONE)


# --- Quiet hours ------------------------------------------------------------------------------------------------

FEDERAL_WINDOW = (time(8, 0), time(21, 0))  # 47 CFR 64.1200(c)(1)
# Stricter state windows for the recipient's state (COMPLIANCE.md; marked "verify" there).
STATE_WINDOWS = {
    "FL": (time(8, 0), time(20, 0)),
    "OK": (time(8, 0), time(20, 0)),
    "WA": (time(8, 0), time(20, 0)),
    "MD": (time(8, 0), time(20, 0)),
    "CT": (time(9, 0), time(20, 0)),
}
STATE_NAMES = {
    "florida": "FL",
    "oklahoma": "OK",
    "washington state": "WA",
    "washington": "WA",
    "maryland": "MD",
    "connecticut": "CT",
}


def _parse(phone: str):
    try:
        return phonenumbers.parse(phone, "US")
    except phonenumbers.NumberParseException:
        return None


def phone_state(phone: str) -> str | None:
    """The US state a number's area code belongs to (libphonenumber's geocoder), as a two-letter code."""
    number = _parse(phone)
    if number is None or number.country_code != 1:
        return None
    description = geocoder.description_for_number(number, "en")
    if not description:
        return None
    if "," in description:  # "New York, NY"
        code = description.rsplit(",", 1)[1].strip()
        return code if len(code) == 2 else None
    return STATE_NAMES.get(description.lower())


def recipient_timezone(phone: str, *, clinic_timezone: str, patient_timezone: str | None = None) -> ZoneInfo:
    """The patient's known zone, else the one zone of the number's area code, else the clinic's."""
    if patient_timezone:
        return ZoneInfo(patient_timezone)
    number = _parse(phone)
    if number is not None:
        zones = phone_timezone.time_zones_for_number(number)
        if len(zones) == 1 and zones[0] != phone_timezone.UNKNOWN_TIMEZONE:
            return ZoneInfo(zones[0])
    return ZoneInfo(clinic_timezone)


def send_window(*, phone: str, clinic_window=FEDERAL_WINDOW, patient_state: str | None = None) -> tuple[time, time]:
    """The strictest window (local start, local end) among federal, the recipient's state and the clinic's."""
    windows = [FEDERAL_WINDOW, clinic_window]
    state = patient_state or phone_state(phone)
    if state in STATE_WINDOWS:
        windows.append(STATE_WINDOWS[state])
    return max(w[0] for w in windows), min(w[1] for w in windows)


def next_send_time(now: datetime, *, phone: str, clinic, patient_timezone=None, patient_state=None) -> datetime:
    """``now`` when a non-reply message may go out now, else the next opening of the window (aware, UTC-safe).

    Computed on local wall-clock dates in the recipient's zone, so a DST change or a UTC server does not shift it.
    """
    zone = recipient_timezone(phone, clinic_timezone=clinic.timezone, patient_timezone=patient_timezone)
    start, end = send_window(
        phone=phone,
        clinic_window=(clinic.sending_window_start, clinic.sending_window_end),
        patient_state=patient_state,
    )
    local = now.astimezone(zone)
    if start <= local.time() < end:
        return now
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=zone)


# --- Consent ----------------------------------------------------------------------------------------------------------


# The consent wording's line for texts about a treatment coming due again (rebooking at the treatment interval):
# marketing under the TCPA, so it needs this prior express written consent (docs/COMPLIANCE.md).
MARKETING_CONSENT_LINE = "including reminders when a treatment is due again"


def consent_wording(clinic) -> str:
    """The words next to the SMS checkbox, and exactly what is stored as the lead's ``consent_text``.

    CTIA and carrier 10DLC reviews look for: the sender's name, what the texts are about, message frequency,
    "Msg & data rates may apply", STOP and HELP, and that consent is not a condition of purchase.
    """
    return (
        f"I agree to receive appointment texts from {clinic.name} at the mobile number above, "
        f"{MARKETING_CONSENT_LINE}, sent by automated means. Message frequency varies. Msg & data rates may apply. "
        "Reply STOP to opt out, HELP for help. "
        "Consent is not a condition of purchase."
    )


# --- Spanish confirmations ----------------------------------------------------------------------------------------
# Modelled on the carriers' Spanish wording (Twilio, "requirements for a Spanish-language short code": ALTO gets
# "Su subscripcion ... ha sido cancelada", AYUDA gets who to contact, the rates and ALTO). Written GSM-7-safe (no
# a/i/o/u with accents, no inverted marks): medspa/spanish.py.


def confirmation_texts_es(clinic) -> dict:
    """The opt-out and opt-in confirmations in Spanish."""
    return {
        "opt_out": f"{clinic.name}: Se ha dado de baja y no recibira mas mensajes. Responda INICIO para volver a "
        "suscribirse.",
        "opt_in": f"{clinic.name}: Volvera a recibir nuestros mensajes. Responda AYUDA para ayuda, ALTO para darse "
        "de baja.",
    }


def help_text_es(clinic) -> str:
    """The answer to AYUDA: who sends, how to reach a person, the rates, how to stop (CTIA's HELP contents)."""
    phone = f" Llame al {clinic.front_desk_phone}" if clinic.front_desk_phone else ""
    website = f" o visite {clinic.website}" if clinic.website else ""
    reach = f"{phone}{website}." if phone or website else ""
    return (
        f"{clinic.name}: mensajes sobre sus citas.{reach} Pueden aplicar cargos por mensajes y datos. Responda ALTO "
        "o STOP para darse de baja."
    )
