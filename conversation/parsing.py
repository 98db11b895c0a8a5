"""What a patient's text says, for the offline "rules" engine: pure functions over plain data, no I/O, no logging.

Patients text in lower case, with typos and shorthand, in short bursts. Every reader here starts from ``normalise``
(lower case, accents stripped, texting shorthand expanded, punctuation reduced to the few marks that carry meaning)
and reads the text with small regular expressions applied in a fixed order, the more specific phrase first. Typos are
forgiven by a bounded edit distance (Levenshtein plus swapped neighbours): only on words of four letters or more, only
when the first letter agrees, one edit below eight letters, and on words of five letters or fewer no substituted
letter except sound-alikes (s/z, c/k, i/y), so "botx", "fillr", "lazer", "thrusday" and "tommorow" are read while
"later" never becomes "laser" nor "feel" "peel".

Dates and times are read by hand rather than with ``dateparser``: the forms texted to a front desk are few, hand rules
are deterministic for a given ``now``, never touch the network, take tens of microseconds, and build every local time
with ``datetime.combine(day, clock, tzinfo=tz)``, so DST weeks come out right. ``parse_when`` blanks out each phrase
once read (so no word counts twice), collects days, a span ("next week"), daily constraints ("afternoon", "after 3")
and "asap", then resolves them against ``now`` into one ``TimeWindow``.
"""

import re
import unicodedata
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import NamedTuple


def _words(text: str) -> list[str]:
    return text.split()


_SHORTHAND = {
    **dict.fromkeys(_words("tmrw tmr tmw tmrow tmrrw tomm tomo tomoro tomorow 2morrow 2moro 2mrw 2mro"), "tomorrow"),
    **dict.fromkeys(_words("tonite 2nite 2night"), "tonight"), **dict.fromkeys(_words("2day tdy"), "today"),
    **dict.fromkeys(_words("tue tues"), "tuesday"), **dict.fromkeys(_words("wed weds wensday"), "wednesday"),
    **dict.fromkeys(_words("thu thur thurs thrs thrus thersday thrusday thurday thursay"), "thursday"),
    **dict.fromkeys(_words("cansel cancle cancell cancl cansell"), "cancel"), "hrs": "hours",
    **dict.fromkeys(_words("botocks botoks botux boatox botx btox"), "botox"),
    **dict.fromkeys(_words("mch mich mutch"), "much"),
    **dict.fromkeys(_words("filer fillr"), "filler"), **dict.fromkeys(_words("insted instad"), "instead"),
    **dict.fromkeys(_words("acshully actualy acually"), "actually"),
    **dict.fromkeys(_words("apoinment apointment appoinment appointmnt apointmnet appoitment"), "appointment"),
    "mon": "monday", "fri": "friday", "sat": "saturday",
    **dict.fromkeys(_words("pls plz plse pleez"), "please"), **dict.fromkeys(_words("appt apt"), "appointment"),
    **dict.fromkeys(_words("appts apts"), "appointments"), **dict.fromkeys(_words("thx thnx thanx thks"), "thanks"),
    **dict.fromkeys(_words("k kk okey okie"), "ok"), **dict.fromkeys(_words("wknd wkend"), "weekend"),
    **dict.fromkeys(_words("bc cuz bcuz"), "because"), **dict.fromkeys(_words("wat wut wht"), "what"),
    **dict.fromkeys(_words("yea ya yah"), "yeah"), **dict.fromkeys(_words("aft aftn arvo"), "afternoon"),
    "u": "you", "ur": "your", "r": "are", "ty": "thank you", "tysm": "thank you so much", "b4": "before",
    "abt": "about", "avail": "available", "nxt": "next", "wk": "week", "morn": "morning", "eve": "evening",
    "idk": "i dont know", "rn": "right now", "np": "no problem", "lmk": "let me know", "wanna": "want to",
    "gonna": "going to", "thru": "through", "til": "until", "till": "until", "ppl": "people", "sry": "sorry",
}  # fmt: skip
_QUOTES = str.maketrans("\u2019\u2018`\u02bc", "''''")


def _strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# The few emoji that stand for a word a question needs ("botox 💰?", "🅿️ where??"); the rest are dropped.
_EMOJI = {"💰": "price", "💵": "price", "💲": "price", "🤑": "price", "🅿️": "parking", "🅿": "parking", "📅": "book",
          "🗓️": "book", "🗓": "book", "📍": "where"}  # fmt: skip
_EMOJI_WORDS = re.compile("|".join(sorted(map(re.escape, _EMOJI), key=len, reverse=True)))


def emoji_words(text: str) -> str:
    """The text with the few emoji that stand for a word written as that word ("botox 💰?" -> "botox price ?")."""
    return _EMOJI_WORDS.sub(lambda m: f" {_EMOJI[m[0]]} ", text)


_CANCER = re.compile(r"\bcancer (?=(my|our|this|that|it|the (appointment|appt|booking|visit))\b)")


# "md or np?", "is she an rn": a nurse practitioner or a registered nurse, not "no problem" or "right now"
_VOICE_BOTOX = re.compile(r"\b(bow|bo|boe|beau) ?(talks|tox|tocks|tax)\b")
_NURSE = re.compile(r"\b((?:an?|the|or|and|by|md|doctor|pa|is|a real|real) )(?:np|rn)\b|\bnp(?= or\b| and\b)")


@lru_cache(maxsize=1024)  # a turn reads the same texts and clauses again and again (a dozen times and more)
def normalise(text: str) -> str:
    """Lower case, accents stripped, whitespace collapsed, texting shorthand expanded ("tmrw" -> "tomorrow", "thurs"
    -> "thursday", "pls" -> "please", "u" -> "you", "appt" -> "appointment", "w/" -> "with"); keeps letters, digits,
    ``$``, ``?``, and ``:``/``/`` between digits ("3:30", "12/3"); "1-3" becomes "1 to 3". Apostrophes go after the
    shorthand is expanded ("can't" -> "cant"), so "we'd" never becomes Wednesday."""
    text = _strip_accents(text.translate(_QUOTES)).lower().replace("&", " and ").replace("b/c", "bc")
    text = re.sub(r"(\d)\s*([ap])\.\s?m\b\.?", r"\1\2m", re.sub(r"\ba\.s\.a\.p\b\.?", "asap", text))
    text = re.sub(r"\bw/", " with ", re.sub(r"\bw/o\b", " without ", text))
    text = re.sub(r"(\d)\s*-\s*(\d)", r"\1 to \2", text)
    text = _CANCER.sub("cancel ", text)  # autocorrect's "please cancer my appointment"
    text = _VOICE_BOTOX.sub("botox", text)  # voice-to-text's "a bow talks appointment"
    text = _NURSE.sub(r"\1nurse", text)
    text = re.sub(r"[^a-z0-9:/$?'\s]|(?<!\d)[:/]|[:/](?!\d)", " ", text)
    words = []
    for token in text.split():
        core = token.strip("'?")
        if token := (token.replace(core, _SHORTHAND.get(core, core), 1) if core else token).replace("'", ""):
            words.append(token)
    return " ".join(words)


@lru_cache(maxsize=65536)
def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and swaps of neighbours."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


_SOUNDALIKE = {frozenset("sz"), frozenset("ck"), frozenset("iy"), frozenset("cs")} | {
    frozenset(pair)
    for pair in ("ao", "ae", "ai", "au", "ei", "eo", "eu", "io", "iu", "ou")  # a vowel for another: "botax"
}


def _close(word: str, target: str) -> bool:
    """Whether ``word`` is a plausible typo of ``target`` (see the module docstring for the rules)."""
    if min(len(word), len(target)) < 4 or word[0] != target[0] or not word.isalpha():
        return False
    allowed = 2 if len(target) >= 8 and len(word) >= 8 else 1
    if abs(len(word) - len(target)) > allowed or _distance(word, target) > allowed:
        return False
    if len(target) > 5 or len(word) != len(target):
        return True
    diff = [(a, b) for a, b in zip(word, target, strict=True) if a != b]
    return len(diff) == 2 or frozenset(diff[0]) in _SOUNDALIKE  # two differences at distance 1: a swap


def _stem(word: str) -> str:
    """Plurals and "-ed" off: "facials" -> "facial", "botoxes"/"botoxed" -> "botox", "therapies" -> "therapy"."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("es") and word[-3] in "sxz":
        return word[:-2]
    if len(word) > 5 and word.endswith("ed"):
        return word[:-2]
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us")) else word


# ----------------------------------------------------------------------------------------------------------- services
@dataclass(frozen=True)
class ServiceName:
    """One catalog service as the caller passes it in: its id, its name and what patients also call it."""

    key: int
    name: str
    aliases: tuple[str, ...] = ()


@lru_cache(maxsize=4096)
def _phrases(service: ServiceName) -> tuple[tuple[str, ...], ...]:
    spoken = (tuple(re.findall(r"[a-z0-9]+", normalise(p))) for p in (service.name, *service.aliases))
    return tuple(words for words in spoken if words)


class _Said(NamedTuple):
    """How a service's phrase is said at a place in the text: the words it takes and the typos in them."""

    words: int
    typos: int

    def beats(self, other: "_Said | None") -> bool:
        """More words first, then fewer typos."""
        return other is None or (self.words, -self.typos) > (other.words, -other.typos)


@lru_cache(maxsize=65536)
def _word_match(word: str, target: str) -> int | None:
    """0 for the same word (or stem), 1 for a plausible typo, None otherwise."""
    if word == target or _stem(word) == _stem(target):
        return 0
    return 1 if _close(_stem(word), _stem(target)) else None


def _match_at(words: list[str], i: int, phrase: tuple[str, ...]) -> _Said | None:
    """How ``phrase`` is said at ``words[i]``, word by word or run together ("hydra facial"); None if it is not."""
    best = None
    if i + len(phrase) <= len(words):
        scores = [_word_match(w, t) for w, t in zip(words[i : i + len(phrase)], phrase, strict=True)]
        best = None if None in scores else _Said(len(phrase), sum(scores))
    for n in range(2 if len(phrase) == 1 else 1, min(3, len(words) - i) + 1):
        score = _word_match("".join(words[i : i + n]), "".join(phrase))
        if score is not None and _Said(n, score).beats(best):
            best = _Said(n, score)
    return best


def find_services(text: str, catalog: list[ServiceName]) -> list[int]:
    """Ids of the catalog services the text names (name or alias; whole words; plurals, "-ed" and small typos
    forgiven; one- and two-letter words only exactly), in order of appearance, without duplicates. Where names
    overlap the longest wins ("lip filler" over "filler"), then the one with fewer typos, then catalog order."""
    words = re.findall(r"[a-z0-9]+", normalise(text))
    by_letter: dict[str, list[tuple[int, tuple[str, ...]]]] = {}  # every match keeps the first letter
    for service in catalog:
        for phrase in _phrases(service):
            by_letter.setdefault(phrase[0][0], []).append((service.key, phrase))
    found: list[int] = []
    i = 0
    while i < len(words):
        best, best_key = None, None
        for key, phrase in by_letter.get(words[i][0], ()):
            hit = _match_at(words, i, phrase)
            if hit and hit.beats(best):
                best, best_key = hit, key
        if best and best_key not in found:
            found.append(best_key)
        i += best.words if best else 1
    return found


# ------------------------------------------------------------------------------------------------------------ intents
def find_provider(text: str, providers: list) -> object | None:
    """The provider a text names ("with Dr. Johnson", "can emily do it"): by last name, by first name when only one
    provider has it, or None."""
    words = set(_words(normalise(text)))
    found = []
    for provider in providers:
        names = [w for w in _words(normalise(provider.name)) if w not in ("dr", "doctor", "np", "md", "rn", "pa")]
        if not names:
            continue
        first, last = names[0], names[-1]
        if last in words or (first in words and sum(first in _words(normalise(p.name)) for p in providers) == 1):
            found.append(provider)
    return found[0] if len(found) == 1 else None


INTENTS = ("book", "price", "cancel", "reschedule", "human", "yes", "no", "greeting", "thanks", "question")

# "nah im good with the botox": content with it, not a no.
_FINE_WITH = r"(?!,? (im|i am) (good|fine|happy|ok|okay) (with|w|con)\b)"
_INTENT_PATTERNS = {name: re.compile(pattern) for name, pattern in {
    "book": r"\b(book|booking|come (in|by)|coming in|available|availability|openings?|slots?|lets do|let us do|"
    r"ill (do|take|go with)|go with|sign me up for|"
    r"(?<!dark )(?<!brown )(?<!age )(?<!sun )(?<!red )spots?|"
    r"(can|could) i (come|get|do|have)|get in|fit me in|reserve|sign me up)\b",
    "price": r"\$|\b(how much(?! (time|longer|downtime|notice))|cuanto|quanto|prices?|pricing|priced|costs?|"
    r"what do you charge|charges?|"
    r"what (does|do|would|will) (a |an |the )?[a-z ]{2,30} (run|go for|set me back)|"
    r"rates?|fees?|expensive|cheap(er|est)?|specials?|deals?(?! with)|discounts?|promos?|per unit|quote)\b",
    "cancel": r"\b(cancel(l?ed|l?ing|lation)?|cx|cxl|(cant|cannot|can not|wont|unable to) make it|"
    r"not (going to|able to) make it|call it off)\b",
    "reschedule": r"\b(re ?schedul(e|ed|ing)|(move|switch|shift) (my|it|the|our|that|this)|"
    r"push (it|my appointment|this|that|the appointment)( back)? (to|till|until|into)|"
    r"(isnt|is not|wont|will not|doesnt|does not|aint) (gonna |going to )?work (anymore|for me anymore)|"
    r"(need|have|want|got) to (move|switch|shift) (mon|tue|tues|wed|thu|thur|thurs|fri|sat|monday|tuesday|"
    r"wednesday|thursday|friday|saturday)|"
    r"change (my|the) (appointment|time|day|"
    r"date|booking)|(a )?(different|another|other) (time|day|date)|push (it|my appointment) back|postpone|instead)\b",
    "human": r"\b((?<!should i )(?<!should i just )(?<!come in and )(?<!where i can )(?<!where i can just )"
    r"(talk|speak|chat|connect me|transfer me|put me through) (to|with) (a |an |the |your |some )?(real |"
    r"actual |live )?(person|human|someone|somebody|staff|manager|receptionist|nurse|doctor|provider|rep)|"
    r"(discuss|go over|talk (it|this|that) over)( (it|this|that|things|my history))? (with|w) "
    r"(dr \w+|the doctor|a doctor|the nurse|a nurse|the provider|a provider|the injector|someone|somebody)\b"
    r"(?! (at|during|in) (my|the) (appointment|consult\w*|visit))|"
    r"(real|live|actual|a) person|human|(?<!dont )(?<!do not )(?<!not )(?<!never )call me|give me a call|"
    r"(?<!dont )(?<!do not )phone me|front desk|agent|representative|operator|"
    r"receptionist|(are you|is this) a (bot|robot)|robot)\b",
    "yes": r"(?<!\bnot )(?<!\bdont )(?<!\bdoesnt )(?<!\bisnt )(?<!\bmake )\b(yes|yeah|yep|yup|sure|ok|okay|alright|"
    r"sounds (good|great)|perfect|works|confirm(ed)?|absolutely|definitely|of course|correct|go ahead|please do|"
    r"lets do it|book it)\b|^y$",
    "no": r"\b((no|nah)(?! (problem|worries|rush))" + _FINE_WITH + r"|"
    r"nope|none|neither|not (those|that|these|really|interested)|"
    r"(doesnt|dont|wont|does not|do not|will not) work|nothing works)\b",
    "greeting": r"\b(hi|hello|hey|hiya|heya|howdy|good (morning|afternoon|evening)|greetings)\b",
    "thanks": r"\b(thanks|thank you|thankyou|appreciate (it|that|you)|much appreciated|cheers)\b",
}.items()}  # fmt: skip
# "i want my skin glowing", "i want make my lips bigger": an outcome wished for, not an appointment.
_WANT = re.compile(
    r"\b(want(?! (my|her|his) (skin|lips?|face|forehead|wrinkles|lines|hair|body|cheeks|jawline|neck)\b)"
    r"(?! (to )?(make|look|feel|get rid)\b)|would like|id like|appointments?|schedul(e|ing)|any ?time)\b"
)
_QUESTION_START = re.compile(
    r"^((um+|uh+|so|ok|okay|hey|hi|hello|oh|well|lol|hmm+|sorry|also|and|but|quick question|real quick|quick|qq|"
    r"real talk|honestly|tbh|ngl|omg|serious question|genuine question|"
    r"wait|btw|one more thing|question)\s+)*"
    r"(what|whats|how|hows|do|does|is|are|can|could|would|will|when|whens|where|wheres|why|which|who|whos|should)\b"
)
# A question that asks for a booking ("do you have anything thursday?", "can i come in at 3?", "when can i come in")
# rather than for information ("what time do you close on wednesdays?", "do i need to bring anything thursday?").
_REQUEST = re.compile(
    r"\b(book|booking|schedule me|sign me up|fit me in|reserve|squeeze me in|"
    r"(can|could|may) i (possibly |maybe |please )?(come|get|book|schedule|make|have|do) (in|by|an? |a time|a spot|"
    r"an appointment|appointment)|"
    r"(can|could|may) i (also |still |just |possibly |maybe |please )?(book|schedule|come|get in|get(?! (it|that|this|"
    r"them|my \w+|the \w+) "
    r"back)|have|do)|"
    r"(can|could|may) i (see|get in with|book with|go with)|"
    r"available|availability|"
    r"(a )?(different|another|other) (time|day|date)|(?<!my )(earliest|soonest|next) (you|one|time|thing)|"
    r"(?<!my )first (you|one|thing)|"
    r"(do|does) (you|she|he|dr \w+) have (any(?! ((kind|sort|type)s? of )?(deals?|specials?|promos?|discounts?|"
    r"loyalty|rewards?|gift|financing|parking|packages?|memberships?|programs?|points|referrals?|payment))|"
    r"anything|an? (?!\w+ (program|plan|card|membership|package|policy))|"
    r"time|openings?|availability|spots?|slots?|room)|"
    r"(any|anything) (open|available|free|left)|any (openings?|availability|spots?|slots?|times?)\b|"
    r"(possible|able) to (make|book|schedule|get|set up) (an |a |me )?(appointment|time|consult\w*|visit|slot|spot)|"
    r"(any ?way|a way|possible|chance) (to|i can|i could|you could|you can) (get|book|come|do|have|squeeze|fit)\b|"
    r"whats (open|available|free)\b|what (do|have) you (got|have)( open| available| left)?$|"
    r"what (times|days|openings|slots|availability|appointments) (do you have|are (open|available|there|left)|have you "
    r"got|you got|you have)|"
    r"(is|are) (there )?(any )?(openings?|spots?|slots?|times?|availability)|"
    r"(is|are) (\w+ )?(\d{1,2}(:\d\d)?( ?[ap]m)?|monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow) "
    r"(open|available|free|ok|okay|good)|"
    r"when can (i|you) (come|get|book|see|fit)|when (is|are) (your|the) (next|soonest|earliest)|"
    r"(?<!my )(next|soonest|earliest|first) (available|opening|appointment|spot|slot)|"
    r"(want|would like|like|need|wanna) (to )?(book|schedule|come in|try|"
    r"get(?! (a |an |my )?(gift ?cards?|receipts?|copy|refund|quote))|make(?! sure| my| it| them| the| her| his)|"
    r"an appointment|appointment)|"
    r"i (want|need|would like|d like|wanna) (some |a |an )?(botox|filler|appointment)|"
    r"(i was|i am|im|i m) (hoping|wondering if i could|looking) to (maybe )?(have|get|book|come|schedule|see|set up)\b|"
    r"(do|does) (you|she|he|dr \w+) have .{0,30}\b(monday|tuesday|wednesday|thursday|friday|saturday|sunday|tomorrow|"
    r"today|tonight|morning|afternoon|evening|week|weekend|open)|"
    r"(any|anything|something) (on |for |this |next |later )?(monday|tuesday|wednesday|thursday|friday|saturday|"
    r"sunday|tomorrow|today|week|weekend|morning|afternoon|evening))\b"
)
# A health or safety question is never a booking request, however it is worded ("can i get botox if pregnant?").
# A prescribed medicine: whether to hold it is for the clinic's clinician (and the patient's doctor), not a text.
PRESCRIPTION = re.compile(
    r"\b(anticoagulants?|blood thinners? (prescribed|from my)|apixaban|eliquis|warfarin|coumadin|xarelto|"
    r"rivaroxaban|plavix|clopidogrel|doxycycline|ozempic|wegovy|semaglutide|mounjaro|tirzepatide|minocycline|prednisone|methotrexate|immunosuppress\w*|chemo\w*|"
    r"per my (doctor|cardiologist|dermatologist)|(my|the) (cardiologist|oncologist|doctor) (put|has|"
    r"prescribed|told))\b"
)
_SAFETY_CUE = re.compile(
    r"\b(anticoagulants?|apixaban|eliquis|warfarin|xarelto|doxycycline|contraindicat\w*|ozempic|wegovy|mounjaro|"
    r"pregnan\w*|breast ?feeding|(were|im|we are|i am) expecting\b(?! (a|your|the|my) (call|text|email|reply|package))|"
    r"baby on the way|"
    r"nursing|trying to conceive|safe|safety|allerg\w*|medication|medicine|spray tan|sunburn\w*|sun burn|tanning|"
    r"(burned|burnt|scarred) me|fitzpatrick|"
    r"tanned|blood "
    r"thinners?|aspirin|ibuprofen|advil|fish oil|accutane|antibiotics?|cold sore|if i (have|had)(?! to)|"
    r"if i (am|take)|while i)\b"
)
# Words of a question about information, not about a time: "what do i bring", "how long does it take".
_INFO_CUE = re.compile(
    r"\b(avoid|bring|wear|take|takes|last|lasts|long|close|closing|closed|open|opens|hours|park|parking|eat|drink|"
    r"alcohol|wine|exercise|work ?out|workout|gym|lie down|shower|makeup|hurt|pain|painful|safe|ok to|okay to|should i|"
    r"do i need|prep|before(?! \d| noon| lunch| work)|after(?! \d| noon| lunch| work)|results|prepare|policy|work|"
    r"works|happens?|allowed|early|late(?! (afternoon|morning|evening|in the day))|latest|bad idea|still ok|"
    r"who|where|why|which|suite|address|floor|entrance|directions|back|refund|refunds|refunded|refundable|free)\b|"
    r"\b(right|correct)\s*\?"  # "and i get my 50 bucks back right?"
)
# A question run on at the end of a text with no punctuation at all: "my shoulder hair is kinda reddish blond does
# laser still work on that", "if my 11s still move at like day 12 is the touch up free".
_TRAILING_QUESTION = re.compile(
    r"\s(does|do|is|are|will|would|should|could) (it|that|this|laser|botox|the [a-z]+|my [a-z]+)\b[^?]{0,40}$"
)
# A question that asks to act on the patient's own appointment: "is it possible to move my appointment to 5?".
_ACT_ON_MINE = re.compile(
    r"\b(is it possible|(can|could) (i|you|we)|would it be possible)\b.{0,20}\b(move|switch|shift|change|cancel|"
    r"reschedule|push)\b.{0,10}\b(my|our)\b|"
    r"\b(can|could|would) (i|you|we) (please )?(move|switch|shift|change|cancel|reschedule|push) (it|this|that)\b"
)
_TOPIC_ONLY = re.compile(
    r"^(parking|park|hours|address|location|directions|deposit|cancellation policy|cancellation|insurance|"
    r"financing|gift cards?|aftercare|prep|preparation|payment|payments)\s*\??$"
)
# "want to know creds before i book", "before i book anything, what is your cancellation policy": a condition on a
# booking to come, not a request for one.
_BEFORE_BOOKING = re.compile(
    r"\b(before|until|till|prior to) (i|we) (actually |officially |go ahead and )?(book|schedule|commit|pick|choose)\b"
    r"( (anything|it|that|this|an appointment|a time|with you))?"
)


def _as_read(text: str) -> str:
    """The text normalised, a booking to come as a condition ("before i book anything") read as no request."""
    return _BEFORE_BOOKING.sub("before deciding", normalise(text))


_NOT_CANCEL = re.compile(r"\b(dont|do not|not|never) (want (to )?|wanna |going to |gonna )?cancel\b")
# A question about what would happen on a cancellation, even of the patient's own appointment: the policy answers.
# "got a bruise where they did it, do i put ice on it or what": a question after a comma.
_CLAUSE_QUESTION = re.compile(
    r",\s*(so |and |but )?((do|should|can|is|will|does|how|what) (i|it|that|this|you)|how (much|long|many|often)|"
    r"where (is|are|do|can|should)|what (is|are|time|day))\b"
)
_QUESTION_AFTER_IF = re.compile(r"^if i\b.{0,60}\b(can|could|will|would|do|does|should) (i|you|they|it)\b")
_WHAT_IF = re.compile(
    r"\b(if i (come|came|go) in (for|to)\b.{0,40}\b(can|could|will|would|do) (i|you|they)\b|"
    r"if i (were|was) to|if i (do|did|end up|have to|had to)|if (something|anything|stuff|life|work) (comes?|came) up|"
    r"(do|will|would) i get (it|that|them|my \w+|the \w+) back|(latest|last) (point|time|moment|day|i can)|"
    r"without (forfeit\w*|losing|lose)|how (late|far ahead|far in advance|much notice)|"
    r"(would|will|do|does) (i|my deposit) (lose|get|be (returned|refunded|kept))|"
    r"(would|will) (i|my deposit) be (refunded|returned|charged)|(minimum|how much) notice|notice (required|needed)|"
    r"(can|could|should) i (get|do|have) .{0,30}\b(like )?(a (week|few days|couple (of )?(days|weeks))|"
    r"\d+ (days?|weeks?)|the (day|night|week)) before (the|my|our)( \w+)? "
    r"(wedding|event|party|trip|vacation|photos?|shoot|honeymoon|big day)|"
    r"if i (get|do|have|book) (the |a |my )?\w+ "
    r"(on )?(monday|tuesday|wednesday|thursday|friday|saturday|sunday|today|tomorrow|next week))\b"
)
# Said outright, a cancellation stands even when the same text asks about the deposit ("i have to cancel my
# appointment, will i get my $50 back?").
_MUST_CANCEL = re.compile(
    r"\b(i (have|need|want|got|gotta|must) (to )?|i'?d like to |please |pls |gotta |i wanna )(cancel|move|reschedule)\b"
)
_IF_MUST = re.compile(r"\bif\b[^.?!]{0,60}?\b(i (have|need|must|got)|i gotta|gotta) (to )?(cancel|move|reschedule)\b")
# Asking how a policy or a booking works is a question, never a cancellation ("what's your cancellation policy?").
_ABOUT_POLICY = re.compile(
    r"\b(policy|policies|rules?|fee|fees|charge|how (does|do|would|will) (\w+ ){0,3}work|works|happens?|if i|do you|"
    r"refund|notice)\b"
)


# A question about what the patient may do or should know (before or after a treatment, on the day), however it
# names a day or a treatment: "do i need to bring anything thursday?", "can i drink wine tonight?", "how early should
# i get there for my first time?", "how does rescheduling work?". Never a booking request.
_INFO_QUESTION = re.compile(
    r"\b(do i (still )?(need|have) to|do i (still )?need|should i|what should i|"
    r"what do i (need|bring|do|"
    r"wear)|what (do|should) i (bring|wear|expect|do)|how (early|soon after|long before|long after|far in advance)|"
    r"how (does|do|would) (\w+ ){0,3}"
    r"work|what happens (if|when)|is it (ok|okay|safe|bad|normal|fine|alright)|will it (hurt|look|be|last|work|show)|"
    r"will i (look|be|need|have)|if i (cancel|end up|need to|have to|"
    r"miss|no ?show|am late|run late|change)|(do|will|would) i get (my|the|a) (deposit|money|refund)|what time do you "
    r"(close|open)|is it going to (hurt|be)|will it (hurt|be)|(can|could|may) i (eat|drink|wear|work ?out|"
    r"exercise|shower|sleep|lie|lay|fly|tan|swim|bring|use|put on|apply|wash|get it wet|go (in|to|into) (a |the )?(gym|"
    r"sauna|hot tub|pool|beach|sun|steam room|hot yoga|yoga|spin|pilates|class|run))|"
    r"when can i (lie|lay|work ?out|exercise|shower|wear|drink|wash|sleep|go "
    r"back|fly|tan|swim)|(can|could|do|would) i (get|have|need|qualify for) (a |another )?(free )?touch ?-?ups?|"
    r"what (can|could|should|would) (i|you) (still )?(get|do|have|use|try)( done)? (for|about|to (help|fix|treat))|"
    r"what (do|would) you (recommend|suggest)|"
    r"my (\d+(st|nd|rd|th)|fifth|ninth|tenth) (botox|visit|treatment|appointment|hydrafacial))\b"  # loyalty
)
# A treatment already had ("got botox this morning", "had filler today"): a question about it is aftercare.
_HAD_TREATMENT = re.compile(
    r"\b(i )?(just )?(got|had|did|done|finished)\b.{0,30}\b(today|yesterday|this morning|this afternoon|last (week|"
    r"night|month)|earlier|ago|hours? ago|days? ago)\b|\b(yesterday|this morning|earlier today|last week)\b.{0,20}\b"
    r"(got|had|did)\b|"
    # "had my peel wed, can i use retinol yet": a weekday with a treatment had (not "had to cancel", not a booking)
    r"\b(i )?(just )?(had|did)\b(?! to\b)"
    r"(?!.{0,30}\b(book\w*|appointment|scheduled|reserv\w*|plans?|questions?|moved|changed|switched)\b).{0,30}\b"
    r"(on |last |this past )?(monday|tuesday|wednesday|thursday|friday|saturday|sunday)\b(?! (at|@)\b)(?! \d)"
)


# "after botox thursday can i go to hot yoga": a question about after the treatment, whatever else it names.
_AFTER_QUESTION = re.compile(
    r"^after (my |the |a |an |your )?[a-z]+\b.{0,30}\b(can i|could i|should i|do i|is it|how long|when can|am i)\b"
)


def had_treatment(text: str) -> bool:
    """ "got botox this morning", "had filler yesterday": a treatment already had."""
    return bool(_HAD_TREATMENT.search(normalise(text)))


def is_info_question(text: str) -> bool:
    """A question about what to do or know (``_INFO_QUESTION``), or about a treatment already had: answered from
    the clinic's documents, never taken for a booking request whatever day or treatment it names."""
    s = normalise(text)
    return bool(_INFO_QUESTION.search(s) or _HAD_TREATMENT.search(s) or _AFTER_QUESTION.search(s))


# A full stop after a title ("Dr. Johnson", "Dra. Johnson", "Mrs. Lee") does not end a sentence.
_SENTENCE_SPLIT = re.compile(r"(?<!\b[Dd]r)(?<!\b[Dd]ra)(?<!\b[Mm]rs)(?<!\b[Mm][rs])[.!?;]+\s*|\s+also,?\s+|\s+plus\s+")


def sentences(text: str) -> list[str]:
    """The text's sentences ("I'd like to book a facial friday. also is it ok for sensitive skin?" -> two)."""
    return [part.strip() for part in _SENTENCE_SPLIT.split(text) if part and part.strip()]


def asks_for_times(text: str) -> bool:
    """The text asks for open times ("do you have anything friday", "when can i come in"), not for information; in
    a text of several sentences, any one that does."""
    parts = sentences(text)
    if len(parts) > 1:
        return any(asks_for_times(part) for part in parts)
    s = _as_read(text)
    return (
        bool(_REQUEST.search(s))
        and not is_info_question(text)
        and not _SAFETY_CUE.search(s)
        and not _WHAT_IF.search(s)  # "can i get a peel a week before the wedding?": a question
    )


def is_what_if(text: str) -> bool:
    """A question about what would happen ("if i get the facial thursday will i be red saturday?", "if i were to
    cancel..."): answered, never taken for a request."""
    return bool(_WHAT_IF.search(normalise(text)))


def is_health_question(text: str) -> bool:
    """Pregnancy, medicines, allergies, symptoms: answered from the clinic's documents, never with an offer."""
    return bool(_SAFETY_CUE.search(normalise(text)))


def is_request(text: str) -> bool:
    """Whether a question-shaped text asks for a booking (or a time) rather than for information: a request pattern,
    or no question word and no word of an information question ("next wed?", "botox thursday?")."""
    parts = sentences(text)
    if len(parts) > 1 and any(asks_for_times(part) for part in parts):
        return True  # "i'd like to book a peel friday. also, is it ok for sensitive skin?"
    s = _as_read(text)
    if _SAFETY_CUE.search(s) or is_info_question(text) or _WHAT_IF.search(s):
        return False
    if _REQUEST.search(s):
        return True
    return not _QUESTION_START.match(s) and not _INFO_CUE.search(s)


def intents(text: str) -> set[str]:
    """Coarse intents, a subset of ``INTENTS``; several can hold ("how much is botox and can i book thursday" ->
    {"price", "book"}). "human" needs a person asked for ("talk to someone", "call me", "front desk"), not a mere
    "someone"/"staff". A mere "want"/"appointment"/"schedule" is booking only when nothing else (cancel, reschedule,
    human) explains it; "can't make it" is a reschedule, not a cancel, when another time is asked for in the same
    text; "question" is a question (ends with "?" or starts with what/how/do/is/can...) that no other of price, book,
    cancel, reschedule or human already answers."""
    s = _as_read(text)
    found = {name for name, pattern in _INTENT_PATTERNS.items() if pattern.search(s)}
    if "price" in found and re.search(
        r"\b(free of charge|deposit|refund\w*|cancel\w*|no ?show|late fee|on top of|comes? off|deducted|taken off|"
        r"spread\w* (the |out )?(cost|payments?|it)|pay (it )?(off )?over (time|a few months|\d+ months)|"
        r"(wanted|tried|want|going) to charge (me|us|you)|charge (me|you) (to|for) (fix|redo|correct)\w*|"
        r"applied to|separate fee|financ\w*|payment plans?|monthly payments?|insurance|hsa|fsa|cherry|carecredit|"
        r"(how much|price|cost)\w* (is |are |of |for |do |does )?(a |the |your |my )?gift cards?|"
        r"gift cards? (cost|price)|loyalty|rewards?)\b",
        s,
    ):
        found.discard("price")  # "how much is the deposit?", "is there a fee if i cancel?": the policy answers
    asks_to_know = re.search(
        r"\b(like|want|wanted|need) to (know|ask|find out|check|learn|inquire|enquire|make sure|be sure|see if|"
        r"understand)\b",
        s,
    )
    gift = re.search(r"\bgift ?cards?\b", s) and not re.search(r"\b(book|appointment|schedule)\b", s)
    # "how much is baby botox?? just want a lil forehead prevention": a price question, the "want" is a wish
    priced_wish = "price" in found and "?" in s and not _REQUEST.search(s)
    if (
        _WANT.search(s)
        and not found & {"cancel", "reschedule", "human"}
        and not asks_to_know
        and not gift
        and not priced_wish
    ):
        found.add("book")
    if "human" in found and not re.search(r"\bbook", s):  # "can i get the front desk"
        found.discard("book")
    if {"cancel", "reschedule"} <= found and not re.search(r"\bcancel", s):
        found.discard("cancel")
    if (
        "cancel" in found
        and re.search(r"\bcancel+ation (policy|fee|rules?|terms)\b", s)
        and not re.search(r"\bcancel (my|the|it|our|this|that)\b", s)
    ):
        found.discard("cancel")  # "whats ur cancellation policy if i bail"
    if "cancel" in found and _NOT_CANCEL.search(s):
        found.discard("cancel")  # "wait no, i don't want to cancel, can i move it instead?"
    if "book" in found and "?" in s and _WHAT_IF.search(s) and _QUESTION_AFTER_IF.search(s):
        found.discard("book")  # "if i come in for a consult could i be treated the same day?"
    must = _MUST_CANCEL.search(s) and not _IF_MUST.search(s)  # "if something comes up and i have to cancel": a what-if
    if found & {"cancel", "reschedule"} and _WHAT_IF.search(s) and not must:
        found -= {"cancel", "reschedule"}  # "if i were to cancel my appointment, would i get my deposit back?"
    if "no" in found and re.search(r"\b(not|none of) (that|those|these)\b", s):
        found.discard("yes")
    starts_as_question = bool(_QUESTION_START.match(s) or _CLAUSE_QUESTION.search(text.lower())) or any(
        _QUESTION_START.match(normalise(part)) for part in sentences(text)[1:]
    )
    if not re.search(r"[?.!,;]", text) and _TRAILING_QUESTION.search(s):
        starts_as_question = True
    info = is_info_question(text)
    asking = ("?" in s or starts_as_question or info) and (starts_as_question or info or bool(_INFO_CUE.search(s)))
    if asking and (_SAFETY_CUE.search(s) or info or _WHAT_IF.search(s) or not _REQUEST.search(s)):
        # A question first: "what time do you close on wednesdays?" is answered, not taken for a booking; "what's
        # your cancellation policy?" or "how does rescheduling work?" cancels nothing.
        found.discard("book")
        if found & {"cancel", "reschedule"} and _ABOUT_POLICY.search(s) and not re.search(r"\b(my|our) ", s):
            found -= {"cancel", "reschedule"}
        if found & {"cancel", "reschedule"} and info and not _ACT_ON_MINE.search(s):
            found -= {"cancel", "reschedule"}  # "if i end up cancelling do i get my deposit back?"
        if (
            found & {"cancel", "reschedule"}
            and re.search(r"^(how|what|whats|is|does|do you)\b", s)
            and not _ACT_ON_MINE.search(s)  # "is it possible to move my appointment to 5?" asks for it
        ):
            found -= {"cancel", "reschedule"}
    if _TOPIC_ONLY.match(s):
        found.add("question")  # "parking", "hours?": a topic alone asks about it
    parts = sentences(text)
    if "book" not in found and len(parts) > 1 and any(asks_for_times(part) for part in parts):
        found.add("book")  # one sentence asks for times, another asks a question: both are wanted
        found.add("question")
    if ("?" in s or starts_as_question or info or _WHAT_IF.search(s)) and not found & {
        "price",
        "book",
        "cancel",
        "reschedule",
        "human",
    }:
        found.add("question")
    return found


# --------------------------------------------------------------------------------------------------------------- when
@dataclass(frozen=True)
class TimeWindow:
    """A time preference: the span [start, end) (aware, clinic zone) and, when the patient named a part of the day
    or a clock time, the local hours each day of the span allows (``day_start``/``day_end``; None = open)."""

    start: datetime
    end: datetime
    label: str
    asap: bool = False
    day_start: time | None = None
    day_end: time | None = None


class _Day(NamedTuple):
    """A day the text names, where it names it: ``kind`` "rel" (``value`` 0 today, 1 tomorrow, 2 the day after),
    "date" (``value`` a date) or "wd" (``value`` a weekday, 0 Monday; ``said_next``: "next tuesday")."""

    position: int
    kind: str
    value: int | date
    said_next: bool


class _Hours(NamedTuple):
    """Hours of the day the text allows, in minutes after local midnight (None = open): a part of the day
    ("afternoon") or a clock time ("after 3")."""

    start: int | None
    end: int | None
    label: str
    part_of_day: bool


class _Daily(NamedTuple):
    """The hours of each day out of all that the text said (``_merge``), and the ``_Hours`` they honour."""

    start: int | None
    end: int | None
    group: list[_Hours]


class _Span(NamedTuple):
    """[start, end), aware, in the clinic's zone."""

    start: datetime
    end: datetime


class _NamedDay(NamedTuple):
    """A day resolved to a date, and how the reply says it ("tomorrow", "Thursday", "Friday, December 4")."""

    day: date
    label: str


_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTH_NAMES = tuple(_words("january february march april may june july august september october november december"))
_MONTHS = {n: i + 1 for i, n in enumerate(_MONTH_NAMES)} | {n[:3]: i + 1 for i, n in enumerate(_MONTH_NAMES)}
_MONTHS |= {"sept": 9}
_VOCAB = (*_WEEKDAYS, *(m for m in _MONTH_NAMES if len(m) >= 7), "tomorrow", "tonight", "today", "morning")
_VOCAB += ("afternoon", "evening", "weekend", "lunchtime", "soonest", "earliest", "available", "around", "between")
_MON = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WD = "|".join(_WEEKDAYS) + r"|sun(?!\s+(?:damage|spots?|screen|burns?|block|exposure|tan|care))"
_T = r"(\d{1,2})(?::([0-5]\d))?\s*(am|pm)?"
_NO_UNIT = r"(?!\s*(?:(?:days?|weeks?|months?|years?|units?|syringes?|vials?|people|persons?|mins?|minutes?|hours?|"
_NO_UNIT += r"hrs?|areas?|sessions?|treatments?|times|of|or more)\b|[/$]))"
_PARTS = {"morning": (480, 720), "afternoon": (720, 1020), "evening": (1020, 1260), "night": (1020, 1260)}
_PARTS |= {"early morning": (480, 600), "late morning": (600, 720), "early afternoon": (720, 840)}
_PARTS |= {"late afternoon": (900, 1020), "early evening": (1020, 1140)}
_PHRASES = {  # phrase -> (from, until, label) in minutes after local midnight, None = open
    r"after work": (1020, 1260, "after work"), r"before work": (None, 540, "before work"),
    r"after school": (900, None, "after school"), r"after lunch": (780, None, "after lunch"),
    r"before lunch": (None, 720, "before lunch"), r"first thing( in the morning)?": (480, 600, "first thing"),
    r"(later|late) in the day|end of the day": (900, None, "later in the day"),
    r"(on my )?(lunch ?(time|break|hour)?|midday)": (690, 810, "at lunchtime"),
}  # fmt: skip
_SPANS = {  # span -> (first day, last day) counted from this week's Monday; the first never before today
    "this week": (0, 6), "later this week": (0, 6), "the end of the week": (3, 6), "this weekend": (5, 6),
    "next week": (7, 13), "early next week": (7, 9), "later next week": (10, 13), "the end of next week": (10, 13),
    "next weekend": (12, 13),
}  # fmt: skip
_R = {name: re.compile(pattern) for name, pattern in {
    "greet": r"\b(good (morning|afternoon|evening|night)|last night|have a good (day|night|weekend))\b",
    "asap": r"\b(asap|as soon as (possible|you can|i can)|soonest|earliest|first (available|opening|open)|"
    r"next (available|opening)|as early as possible|sooner)\b",
    "weak": r"\b(whenever|any ?time|any day|no preference|(im )?flexible)\b",
    "mdy": r"\b(\d{1,2})/(\d{1,2})(?:/(\d{2}|\d{4}))?\b",
    "month_day": rf"\b({_MON})\s+(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?\b(?!:)(?:\s*(\d{{4}})\b)?",
    "day_month": rf"\b(\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?({_MON})\b",
    "nth": r"\b((?:on\s+)?the\s+|on\s+)?(\d{1,2})(st|nd|rd|th)\b(?!\s+(?:one|option|choice|slot|time)\b)",
    "on_the": rf"\bon the (\d{{1,2}})\b(?!:|\s*(?:am|pm)\b){_NO_UNIT}",
    "between": rf"\b(?:between|from)\s+{_T}\s*(?:and|to|until|through)\s+{_T}\b",
    "range": rf"\b{_T}\s+to\s+{_T}\b",
    "after": rf"\b(?:after|past|later than|from)\s+{_T}\b{_NO_UNIT}|\b{_T}\s+(?:or later|onwards?|and later)\b",
    "before": rf"\b(?:before|by|earlier than|no later than|until)\s+{_T}\b{_NO_UNIT}",
    "around": rf"\b(around|about|approximately|roughly)\s+{_T}\b{_NO_UNIT}|\b{_T}\s+ish\b",
    "at": rf"\bat\s+{_T}\b{_NO_UNIT}|\b(\d{{1,2}}):([0-5]\d)\s*(am|pm)?\b|\b(\d{{1,2}})()\s*(am|pm)\b",
    "this_part": r"\bthis (?=(?:early |late )?(?:morning|afternoon|evening)\b)",
    "ampm_part": rf"\b(in the|tomorrow|today|tonight|{'|'.join(_WEEKDAYS)})\s+(am|pm)\b",
    "part": r"\b((?:any|early|late)\s+)?(morning|afternoon|evening|night)(s?)\b",
    "rel": r"\b(the day after tomorrow|day after tomorrow|today|tonight|tomorrow)\b",
    "weekday": rf"\b(?:(this coming|this|next|coming|on)\s+)?({_WD})s?\b",
    "weekend": r"\b(this coming |this |next |the )?weekends?\b",
    "week": r"\bthe week after\b|"
    r"\b(early |later |end of |the end of |sometime |)(this|next|the following|following|the) week\b",
}.items()} | {"phrases": [(re.compile(rf"\b{p}\b"), v) for p, v in _PHRASES.items()]}  # fmt: skip


@lru_cache(maxsize=8192)
def _when_word(word: str) -> str:
    """A time word with its typo fixed ("thrusday" -> "thursday"); any other word as it is."""
    if len(word) < 5 or not word.isalpha() or word in _VOCAB or word.rstrip("s") in _VOCAB:
        return word
    hits = {v for v in _VOCAB if _close(word, v)}
    return hits.pop() if len(hits) == 1 else word


def _clock(h: str, m: str | None, ap: str | None, ctx: str | None) -> int | None:
    """Minutes after midnight; without am/pm 1-7 mean PM and 8-11 AM, unless the text says morning or evening."""
    hour, minute = int(h), int(m or 0)
    if ap:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if ap == "pm" else 0)
    elif 1 <= hour < 12 and (ctx == "pm" or (hour <= 7 and ctx != "am")):
        hour += 12
    return hour * 60 + minute if hour <= 23 else None


def _fmt(minutes: int) -> str:
    hour, minute = divmod(minutes, 60)
    clock = f"{hour % 12 or 12}:{minute:02d}" if minute else f"{hour % 12 or 12}"
    return "noon" if minutes == 720 else f"{clock} {'AM' if hour < 12 else 'PM'}"


class _Scan:
    """What parse_when has read so far. ``take`` blanks out what a pattern matched (keeping positions) unless the
    reader returns the text to keep."""

    def __init__(self, text: str, today: date):
        self.s, self.today, self.asap, self.weak, self.plural, self.span = text, today, False, False, False, None
        self.days: list[_Day] = []
        self.tods: list[_Hours] = []
        self.ctx = "am" if re.search(r"\b(mornings?|before work|first thing)\b", text) else None
        self.ctx = "pm" if re.search(r"\b(afternoons?|evenings?|nights?|tonight|after work)\b", text) else self.ctx

    def take(self, pattern: re.Pattern, read) -> None:
        self.s = pattern.sub(lambda m: " " * len(m[0]) if (keep := read(m)) is None else keep, self.s)

    def date(self, m: re.Match, year: int | None, month: int, day: int, by_month: bool = False) -> str | None:
        """A date; without a year the next one from today on ("the 3rd": this month's, else the next month's)."""
        t = self.today
        tries = [(t.year + (t.month - 1 + k) // 12, (t.month - 1 + k) % 12 + 1) for k in range(12)] if by_month else []
        for y, mo in tries or ([(year, month)] if year else [(t.year, month), (t.year + 1, month)]):
            try:
                d = date(y, mo, day)
            except ValueError:
                continue
            if d >= t or year:
                self.days.append(_Day(m.start(), "date", d, False))
                return None
        return None if 1 <= month <= 12 and 1 <= day <= 31 else m[0]

    def clock(self, kind: str, a: int | None, b: int | None = None) -> None:
        if a is None or (kind == "between" and (b is None or a >= b)):
            return
        spans = {"around": (max(a - 60, 0), min(a + 60, 1440)), "at": (a, min(a + 60, 1440)), "after": (a, None)}
        lo, hi = spans.get(kind, (None, a) if kind == "before" else (a, b))
        same = (a < 720) == ((b or 0) < 720) and 720 not in (a, b)
        label = f"between {_fmt(a).split()[0] if same else _fmt(a)} and {_fmt(b)}" if b else f"{kind} {_fmt(a)}"
        self.tods.append(_Hours(lo, hi, label, False))


def _read_dates(scan: _Scan) -> None:
    def nth(m: re.Match) -> str | None:
        if not m[1] and int(m[2]) <= 3 and not re.search(r"day\s*$", scan.s[: m.start()]):
            return m[0]  # a lone "2nd" picks one of the times offered, it is not a date
        return scan.date(m, None, 0, int(m[2]), by_month=True)

    year = lambda y: y and (int(y) + 2000 if int(y) < 100 else int(y))  # noqa: E731
    scan.take(_R["mdy"], lambda m: scan.date(m, year(m[3]), int(m[1]), int(m[2])))
    scan.take(_R["month_day"], lambda m: scan.date(m, year(m[3]), _MONTHS[m[1]], int(m[2])))
    scan.take(_R["day_month"], lambda m: scan.date(m, None, _MONTHS[m[2]], int(m[1])))
    scan.take(_R["nth"], nth)
    scan.take(_R["on_the"], lambda m: scan.date(m, None, 0, int(m[1]), by_month=True))


def _read_times(scan: _Scan) -> None:
    c = scan.ctx

    def between(m: re.Match) -> str | None:
        if m.re is _R["range"] and not (m[3] or m[6]):
            return m[0]  # "2 to 3" without am/pm may be anything
        ap_a = m[3] or (m[6] if m[6] and int(m[1]) <= int(m[4]) and int(m[1]) != 12 else None)
        a, b = _clock(m[1], m[2], ap_a, c), _clock(m[4], m[5], m[6], c)
        if a is not None and b is not None and a >= b:  # "between 7 and 9": the morning
            a, b = (a - 720, b) if a >= 720 and not ap_a else (a, b + 720 if b < 720 and not m[6] else b)
        scan.clock("between", a, b)

    def one(kind: str):
        def read(m: re.Match) -> str | None:
            groups = m.groups()[1:] if kind == "around" else m.groups()
            h, mi, ap = next(groups[i : i + 3] for i in range(0, len(groups), 3) if groups[i])
            if m[0].startswith("about") and not (ap or mi):
                return m[0]  # "about 2" may be two of anything
            scan.clock(kind, _clock(h, mi or None, ap, c))

        return read

    def part(m: re.Match) -> None:
        name = f"{m[1] or ''}{m[2]}" if f"{m[1] or ''}{m[2]}" in _PARTS else m[2]
        scan.tods.append(_Hours(*_PARTS[name], name, True))
        scan.plural |= bool(m[3]) or m[1] == "any "

    def ampm_part(m: re.Match) -> str:
        name = "morning" if m[2] == "am" else "afternoon"
        scan.tods.append(_Hours(*_PARTS[name], name, True))
        return m[1] + " " * (len(m[0]) - len(m[1]))

    scan.take(_R["between"], between)
    scan.take(_R["range"], between)
    for kind in ("after", "before", "around", "at"):
        scan.take(_R[kind], one(kind))
    for pattern, (a, b, label) in _R["phrases"]:
        scan.take(pattern, lambda m, a=a, b=b, label=label: scan.tods.append(_Hours(a, b, label, False)))
    scan.s = _R["this_part"].sub("today ", scan.s)
    scan.take(_R["ampm_part"], ampm_part)
    scan.take(_R["part"], part)


def _read_days(scan: _Scan) -> None:
    def rel(m: re.Match) -> None:
        scan.days.append(_Day(m.start(), "rel", {"today": 0, "tonight": 0, "tomorrow": 1}.get(m[1], 2), False))
        if m[1] == "tonight":
            scan.tods.append(_Hours(*_PARTS["evening"], "tonight", True))

    def week(m: re.Match) -> None:
        which = "next" if m[2] in ("next", "the following", "following") or m[0] == "the week after" else "this"
        lead = {"early ": "early ", "later ": "later ", "end of ": "the end of ", "the end of ": "the end of "}
        span = f"{lead.get(m[1], '')}{which} week".replace("the end of this week", "the end of the week")
        scan.span = span if span in _SPANS else f"{which} week"

    def weekday(m: re.Match) -> None:
        scan.days.append(_Day(m.start(), "wd", _WEEKDAYS.index("sunday" if m[2] == "sun" else m[2]), m[1] == "next"))

    scan.take(_R["rel"], rel)
    scan.take(_R["weekday"], weekday)
    scan.take(_R["weekend"], lambda m: setattr(scan, "span", "next weekend" if m[1] == "next " else "this weekend"))
    scan.take(_R["week"], week)


def _merge(tods: list[_Hours]) -> _Daily:
    """One daily (start, end) out of all constraints; contradictory parts of day give way to clock times."""
    for group in (tods, [t for t in tods if not t.part_of_day], tods[:1]):
        lo = max((t.start for t in group if t.start is not None), default=None)
        hi = min((t.end for t in group if t.end is not None), default=None)
        if group and (lo is None or hi is None or lo < hi):
            clocks = [t for t in group if not t.part_of_day]
            vague = [t for t in group if t.part_of_day and t.label == "later in the day"]
            if clocks and vague and len(clocks) + len(vague) == len(group):  # "later in the day? not before 5:15"
                clock_lo = max((t.start for t in clocks if t.start is not None), default=None)
                clock_hi = min((t.end for t in clocks if t.end is not None), default=None)
                if (clock_lo, clock_hi) == (lo, hi):
                    return _Daily(lo, hi, clocks)
            return _Daily(lo, hi, group)
    return _Daily(None, None, [])


def _tod_label(group: list[_Hours], *, plural: bool = False, today: bool = False, asap: bool = False) -> str:
    parts, clocks = [t.label for t in group if t.part_of_day], [t.label for t in group if not t.part_of_day]
    if not parts:
        return ("the soonest time " if asap else "today " if today else "") + " ".join(clocks)
    first, this = parts[0], {"morning": "this morning", "afternoon": "this afternoon", "evening": "tonight"}
    if first != "tonight":  # "the soonest morning", "this morning", "Monday or Tuesday mornings"
        first = f"the soonest {first}" if asap else this.get(first, f"today {first}") if today else first + "s" * plural
    return " ".join([first, *parts[1:], *clocks])


def parse_when(text: str, *, now: datetime, tz: tzinfo) -> TimeWindow | None:
    """The time preference a text states, as a window in the clinic's zone ``tz``, or None when it states none.

    Days: weekday names ("thursday", "thurs", "this friday"; "next tuesday" = the one in next week), today, tonight,
    tomorrow, day after tomorrow, dates ("dec 3", "12/3", "december 3rd", "3rd of dec", "the 3rd"), several days
    ("monday or tuesday", "mon-wed": first..last), spans ("this week", "next week", "early next week", "later this
    week", "end of the week", "this/next weekend"), "asap"/"soonest"/"first available" (now..now+14 days, asap=True)
    and "whenever"/"any time" (the same when nothing else is said). Daily times: parts of day ("morning", "late
    afternoon", "evening", "tonight", "lunch", "after work"), "after 3", "before noon", "around 2" (+/-1h), "at 2"
    (the hour from 2), "2pm", "3:30", "between 1 and 3", "1-3pm"; 1-7 without am/pm mean PM. A day without a time is
    the whole day; a time without a day is today if still ahead, else tomorrow; a plural part alone ("mornings") is
    the soonest such. Windows never start before ``now``; a weekday whose window is over today means next week's; a
    date whose window is over gives None."""
    text = _NOT_BEFORE.sub("after", text)  # "i can't get there before 5:15": after 5:15
    text = _ANY_PART.sub(lambda m: f"{m[3] or m[4]}s", text)  # "any weekday morning": the soonest morning
    window = _parse_when(text, now=now, tz=tz)
    before = window is not None and window.day_start is None and _BEFORE_DAY.search(normalise(text))
    if before and window.start > now:  # "sometime before the 19th", "by friday": until that day starts
        return TimeWindow(start=now, end=window.start, label=f"before {window.label}", asap=True)
    return window


_ANY_PART = re.compile(
    r"\b(any|most)( week ?day)? (morning|afternoon|evening)\b|\bweek ?day (morning|afternoon|evening)s?\b",
    re.IGNORECASE,
)
_NOT_BEFORE = re.compile(
    r"\b(can'?t|cannot|can not|won'?t|will not|couldn'?t|not able to|unable to) (get|be|make it|come|leave)"
    r"( (there|in|here|over|out|work))? (before|until|till|til)\b",
    re.IGNORECASE,
)
# "before the 19th", "by friday", "no later than dec 18": the days up to it ("before noon" is a time of day).
_BEFORE_DAY = re.compile(
    r"\b(before|by|until|till|no later than|prior to|ahead of) (the |this |next )?(monday|tuesday|wednesday|thursday|"
    r"friday|saturday|sunday|tomorrow|weekend|week|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\w* \d|"
    r"\d{1,2}(st|nd|rd|th)\b|\d{1,2}/\d{1,2})"
)


def _parse_when(text: str, *, now: datetime, tz: tzinfo) -> TimeWindow | None:
    local = now.astimezone(tz)
    scan = _scan_when(text, local.date())
    daily = _merge(scan.tods)
    if scan.days:
        return _on_days(scan, daily, local)
    if scan.span:
        return _over_span(scan, daily, local)
    if scan.asap or scan.weak or (scan.plural and daily.group):
        return _soonest(daily, local)
    if daily.group:
        return _today_or_tomorrow(daily, local)
    return None


def _scan_when(text: str, today: date) -> _Scan:
    """The text read for times: time words' typos fixed, greetings and "?" dropped, "noon", "3 oclock", "3p" and
    "3ish" spelled out; then "asap", "whenever", dates, clock times and parts of day, and days, in that order."""
    s = _R["greet"].sub(" ", " ".join(_when_word(w) for w in normalise(text.replace("-", " to ")).split()))
    s = re.sub(r"\bnoon\b", "12pm", re.sub(r"\b(\d{1,2})\s*oclock\b", r"at \1", s.replace("?", " ")))
    s = re.sub(r"\b(\d{1,2}(?::\d\d)?)([ap])\b", r"\1\2m", s)
    scan = _Scan(re.sub(r"(\d)(am|pm)?ish\b", r"\1\2 ish", s), today)
    scan.take(_R["asap"], lambda m: setattr(scan, "asap", True))
    scan.take(_R["weak"], lambda m: setattr(scan, "weak", True))
    _read_dates(scan)
    _read_times(scan)
    _read_days(scan)
    return scan


def _on_days(scan: _Scan, daily: _Daily, local: datetime) -> TimeWindow | None:
    """Days named ("thursday", "tomorrow", "dec 3", "monday or tuesday"): from the first to the last of them."""
    today = local.date()
    found = _named_days(scan, daily, local)
    days = sorted(f.day for f in found)
    between = scan.s[min(d.position for d in scan.days) : max(d.position for d in scan.days)]
    joiner = " to " if re.search(r"\b(to|through|until)\b", between) else " and " if " and " in between else " or "
    day_label = joiner.join(f.label for f in found)
    if day_label == "today":
        label = _tod_label(daily.group, today=True) if daily.group else "today"
        return _time_window(_window(today, today, daily, local), label, daily, scan.asap)
    label = f"{day_label} {_tod_label(daily.group, plural=len(days) > 1)}"
    return _time_window(_window(days[0], days[-1], daily, local), label, daily, scan.asap)


def _named_days(scan: _Scan, daily: _Daily, local: datetime) -> list[_NamedDay]:
    """The days named, in the order said, each resolved to a date: "today" when today is over means tomorrow, a
    weekday whose hours are over today means next week's; weekdays are dropped when a date is named ("friday dec
    4": the date says it all)."""
    today = local.date()
    monday = today - timedelta(days=today.weekday())
    found: list[_NamedDay] = []
    dated = any(d.kind == "date" for d in scan.days)
    for _, kind, value, said_next in sorted(d for d in scan.days if not (dated and d.kind == "wd")):
        if kind == "rel":
            d = today + timedelta(days=value)
            d += timedelta(days=1 if value == 0 and _window(d, d, daily, local) is None else 0)
            label = ("today", "tomorrow", _WEEKDAYS[d.weekday()].title())[(d - today).days]
        elif kind == "date":
            d, label = value, _long_date(value, today)
        else:
            base = found[-1].day if found else today
            base = monday + timedelta(days=7) if said_next or scan.span == "next week" else base
            d = base + timedelta(days=(value - base.weekday()) % 7)
            d += timedelta(days=7 if _window(d, d, daily, local) is None else 0)
            label = _WEEKDAYS[value].title() if (d - today).days < 7 else _long_date(d, today)
        if d not in (f.day for f in found):
            found.append(_NamedDay(d, label))
    return found


def _over_span(scan: _Scan, daily: _Daily, local: datetime) -> TimeWindow | None:
    """A span ("this week", "early next week", "this weekend"): its days from today on; "this weekend" once it is
    over means the next."""
    today = local.date()
    monday = today - timedelta(days=today.weekday())
    first, last = _SPANS[scan.span]
    d0 = max(today + timedelta(days=scan.span == "later this week"), monday + timedelta(days=first))
    span = _window(min(d0, monday + timedelta(days=last)), monday + timedelta(days=last), daily, local)
    if span is None and scan.span == "this weekend":
        span = _window(monday + timedelta(days=12), monday + timedelta(days=13), daily, local)
    return _time_window(span, f"{scan.span} {_tod_label(daily.group, plural=True)}", daily, scan.asap)


def _soonest(daily: _Daily, local: datetime) -> TimeWindow | None:
    """ "asap", "whenever", or a plural part of day alone ("mornings"): the next two weeks, soonest first."""
    label = _tod_label(daily.group, asap=True) if daily.group else "the soonest time"
    return _time_window(_Span(local, local + timedelta(days=14)), label, daily, True)


def _today_or_tomorrow(daily: _Daily, local: datetime) -> TimeWindow | None:
    """A time of day without a day: today if still ahead, else tomorrow."""
    today = local.date()
    if span := _window(today, today, daily, local):
        return _time_window(span, _tod_label(daily.group, today=True), daily, False)
    tomorrow = today + timedelta(days=1)
    return _time_window(_window(tomorrow, tomorrow, daily, local), f"tomorrow {_tod_label(daily.group)}", daily, False)


def _at(d: date, minutes: int | None, default: int, tz: tzinfo) -> datetime:
    """Local time ``minutes`` (``default`` when None) after midnight of ``d``; 1440 is the next midnight."""
    minutes = default if minutes is None else minutes
    return datetime.combine(d + timedelta(days=minutes // 1440), time(*divmod(minutes % 1440, 60)), tzinfo=tz)


def _window(d0: date, d1: date, daily: _Daily, local: datetime) -> _Span | None:
    """Days ``d0`` to ``d1`` from the first day's start of the daily hours to the last day's end, never before
    ``local`` (now); None when nothing of it is left."""
    start, end = max(_at(d0, daily.start, 0, local.tzinfo), local), _at(d1, daily.end, 1440, local.tzinfo)
    return _Span(start, end) if end > start else None


def _time_window(span: _Span | None, label: str, daily: _Daily, asap: bool) -> TimeWindow | None:
    """The ``TimeWindow`` for a span and its daily hours; None without a span."""
    if span is None:
        return None
    day_start = time(*divmod(daily.start, 60)) if daily.start is not None else None
    day_end = time(*divmod(daily.end, 60)) if daily.end is not None and daily.end < 1440 else None
    return TimeWindow(span.start, span.end, " ".join(label.split()), asap, day_start, day_end)


def _long_date(d: date, today: date) -> str:
    """ "Friday, December 4" (with the year when it is far off)."""
    far = f", {d.year}" if (d - today).days > 300 else ""
    return f"{_WEEKDAYS[d.weekday()].title()}, {_MONTH_NAMES[d.month - 1].title()} {d.day}{far}"


# ------------------------------------------------------------------------------------------------------------- choice
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "former": 0, "middle": 1}
_ORDINALS |= {"primera": 0, "primero": 0, "segunda": 1, "segundo": 1, "tercera": 2, "tercero": 2}
_CLOCK_WORDS = frozenset({"am", "pm", "oclock", "o", "in", "hours", "hrs", "minutes", "min", "mins", "people", "units"})
_CORRECTION = re.compile(r"\b(wait|actually|instead|sorry|make it|change (it )?to|switch to|rather)\b")


def _correction(s: str, n: int) -> int | None:
    """A pick changed in the same text: the last offered number after a word of correction."""
    if not _CORRECTION.search(s) or re.search(r"\b(not|none|neither)\b", s):
        return None

    def offered_numbers(text):
        return [int(w) for w in text.split() if w.isdigit() and 1 <= int(w) <= n]

    picks = offered_numbers(s[_CORRECTION.search(s).start() :]) or offered_numbers(s)
    return picks[-1] - 1 if picks else None


_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3}
_FILLER = frozenset(
    _words(
        "the a one please works work is good fine great perfect ok okay sounds lets let us do id i ill will take like "
        "would book me for that option number choice slot go with yes yeah sure it thanks thank you best can s pick "
        "want to be and just uh um umm hmm guess think maybe probably then so"
    )
)
_CHOICE_NO = re.compile(
    r"\b(not|none|neither|(no|nah)" + _FINE_WITH + r"|nope|cant|cannot|dont|doesnt|wont|either|both|other|else|"
    r"different|anything|"
    r"something|instead|busy|unavailable|wait|sec|moment)\b|\b(a|one|just a) second\b"
)
_CHOICE_CLOCK = re.compile(
    r"\b(\d{1,2})(?::([0-5]\d))?\s*(am|pm)\b|\b(\d{1,2}):([0-5]\d)\b|\b(?:at|the|for)\s+(\d{1,2})\b(?![:\d])"
)
_CHOICE_ORDER = re.compile(
    r"\bthe (earlier|earliest|sooner|soonest|later|latest)\b|\b(first) available\b|^(earliest|soonest|latest)$|"
    r"\b(earlier|earliest|sooner|soonest|later|latest) (?:one|time|slot|option|appointment)\b"
)


def _at_clock(times: list[datetime], candidates: list[int], h: int, minute: int | None, ap: str | None) -> list[int]:
    """The candidates at that clock time; "3" (no am/pm) is 3 AM or PM; without minutes the full hour comes first."""
    hour = h % 12 + (12 if ap == "pm" else 0)
    hits = [i for i in candidates if (times[i].hour == hour if ap else times[i].hour % 12 == h % 12)]
    hits = [i for i in hits if minute is None or times[i].minute == minute]
    on_the_hour = [i for i in hits if times[i].minute == 0]
    return on_the_hour if minute is None and len(on_the_hour) == 1 else hits


CHANGED_MIND = re.compile(r"\b(no wait|wait no|actually|instead|make it|final answer|scratch that|on second thought)\b")


def parse_choice(text: str, offered: list[datetime], *, tz: tzinfo) -> int | None:
    """Which of the offered times (listed to the patient as 1., 2., 3.) the text picks, as a 0-based index; None
    when it picks none or is ambiguous. Reads "2", "#2", "option 2", "number 2", "the second", "2nd one", "the first/
    last one", "the earlier/later one", times ("the 3pm", "3pm works", "3:30", "3 pm please"), weekdays ("thursday
    works", only if one time is that day), dates ("dec 3"), both ("thursday at 3"), and "yes"/"ok"/"sounds good"
    when one time was offered. A bare number up to the count offered is an index, above it an hour. Negations
    and requests for others ("not 2", "none", "neither", "anything earlier?") give None."""
    n = len(offered)
    s = " ".join(_when_word(w) for w in normalise(text).replace("?", " ").split())
    s = re.sub(r"\b(number|option|choice) (to|too)\b", r"\1 2", s)  # voice typing: "number to is good"
    if not n or not s:
        return None
    corrected = _correction(s, n)
    if corrected is not None:  # "2. wait no, 3", "can i do 3 instead": the last number they gave
        return corrected
    if (changed := CHANGED_MIND.search(s)) and re.search(rf"\b({'|'.join(_WEEKDAYS)})", s[changed.end() :]):
        s = re.sub(r"\b(ok|okay|final answer)\b", " ", s[changed.end() :]).strip()  # "thursday. no wait, friday"
    times = [t.astimezone(tz) for t in offered]
    one = re.search(rf"\b(?<!not )(?<!no )the ({'|'.join(_WEEKDAYS)}) (one|time|slot|option|appointment)\b", s)
    if one and (days := [i for i in range(n) if _WEEKDAYS[times[i].weekday()] == one[1]]) and len(days) == 1:
        return days[0]  # "so i guess the friday one would be best", after saying why not the other days
    if _CHOICE_NO.search(s):
        return None
    rest = [w for w in s.split() if w not in _FILLER]
    picked = re.search(
        r"\b(?:option|number|choice|slot|el|la|numero|opcion|take|taking|choose|pick|go with)\s*(\d)\b"
        r"(?!\s*(:|am|pm|o ?clock|units?|syringes?))",
        s,
    )
    plain = re.search(  # "at 2 works" is a clock time, not the second option
        r"(?<!\bat )(?<!\baround )(?<!\babout )(?<!\bafter )(?<!\bbefore )(?<!\bby )(?<!\buntil )(?<!\btill )"
        r"(?<!\bfrom )\b([1-9])\s+(please|pls|plz|works|work|is (good|fine|perfect|great))\b",
        s,
    )
    if plain and int(plain[1]) <= n:  # "perfect timing, 1 please"
        return int(plain[1]) - 1
    leading = rest and rest[0].isdigit() and 1 <= int(rest[0]) <= n and (len(rest) == 1 or rest[1] not in _CLOCK_WORDS)
    if leading and not picked:  # "2 please. it's Chloe", "3, yes please switch it"
        return int(rest[0]) - 1
    if picked or (len(rest) == 1 and rest[0].isdigit()) or s in _NUMBER_WORDS:
        k = int(picked[1] if picked else rest[0] if rest else _NUMBER_WORDS[s])
        if 1 <= k <= n or picked:
            return k - 1 if 1 <= k <= n else None
        hits = _at_clock(times, list(range(n)), k, None, None) if k <= 12 else []
        return hits[0] if len(hits) == 1 else None
    if order := _CHOICE_ORDER.search(s):
        pick = max if (order[1] or order[3] or order[4] or "") in ("later", "latest") else min
        return pick(range(n), key=lambda i: times[i])
    ordinal = re.search(
        r"\b(first|1st|second|2nd|third|3rd|former|middle|primera|primero|segunda|segundo|tercera|tercero)\b(?! thing)",
        s,
    )
    if ordinal and not re.search(rf"\b({_MON})\b", s):
        k = _ORDINALS[ordinal[1]]
        return k if k < n and (ordinal[1] != "middle" or n == 3) else None
    how_long = re.search(r"\bhow long\b|\b(do|does|will|would|it|they|results?|effects?|typically|usually) last\b", s)
    if re.search(r"\b(last|final|latter)\b(?! (week|time|month|year|night|minute))", s) and not how_long:
        return n - 1
    candidates, constrained = list(range(n)), False
    for m in re.finditer(r"\b(1[0-2]|0?[1-9])/([12]\d|3[01]|0?[1-9])\b", s):  # "12/9": month/day, as the US writes it
        constrained = True
        candidates = [i for i in candidates if (times[i].month, times[i].day) == (int(m[1]), int(m[2]))]
    said = [w.rstrip("s") for w in s.split() if w.rstrip("s") in _WEEKDAYS]
    if len(set(said)) > 1 and CHANGED_MIND.search(s):
        said = said[-1:]  # "thursday. no wait, friday": the last day they gave
    if weekdays := set(said):
        constrained = True
        candidates = [i for i in candidates if _WEEKDAYS[times[i].weekday()] in weekdays] if len(weekdays) == 1 else []
    for m in re.finditer(rf"\b({_MON})\s+(\d{{1,2}})(?:st|nd|rd|th)?\b", s):
        constrained = True
        candidates = [i for i in candidates if (times[i].month, times[i].day) == (_MONTHS[m[1]], int(m[2]))]
    for m in re.finditer(r"\bthe (\d{1,2})(?:st|nd|rd|th)\b", s):  # "the 10th works": the day of the month
        constrained = True
        candidates = [i for i in candidates if times[i].day == int(m[1])]
    clocks = list(_CHOICE_CLOCK.finditer(re.sub(r"\bnoon\b", "12pm", s)))
    if len(clocks) > 1:
        return None
    if clocks:
        m, constrained = clocks[0], True
        h, minute, ap = (m[1], m[2], m[3]) if m[1] else (m[4], m[5], None) if m[4] else (m[6], None, None)
        candidates = _at_clock(times, candidates, int(h), int(minute) if minute else None, ap)
    if constrained:
        return candidates[0] if len(candidates) == 1 else None
    return 0 if n == 1 and (not rest or "yes" in intents(s)) else None


# --------------------------------------------------------------------------------------------------------------- name
_NAME_PREFIX = re.compile(
    r"^(?:(?:hi|hey|hello)(?: there)?\b[\s,!.]*)?(?:(?:my name is|my names|my name's|name is|name's|names|name|"
    r"i am|i'm|im|this is|it's|its|it is|you can call me|call me)\b[\s,:-]*)?(?:(?:dr|mr|mrs|ms|miss)\b\.?\s+)?",
    re.IGNORECASE,
)
_NAME_SUFFIX = re.compile(r"[\s,.!]*(?:\b(?:here|thanks|thank you|thx|ty))?[\s.!]*$", re.IGNORECASE)
_NAME_WORD = re.compile(r"^[^\W\d_]+(?:['-][^\W\d_]+)*\.?$")
_PARTICLES = frozenset({"de", "del", "della", "la", "le", "van", "von", "der", "den", "da", "di", "du", "dos", "st"})
_NOT_NAME_WORDS = (  # refused as (part of) a name
    "yes yeah yep yup sure ok okay alright no nope nah none neither hi hello hey thanks thank please the a an and "
    "or but is are am was be to for of in on at by with from my your our me you we they he she it its this that "
    "what when where why how who which can could would should do does did dont cant wont not just also so too very "
    "really maybe lol haha hmm idk sorry stop start help info unsubscribe cancel book booking appointment "
    "reschedule cost much botox tox dysport filler fillers facial facials hydrafacial laser peel lips lip "
    "microneedling consult consultation morning afternoon evening tonight today tomorrow week weekend asap soon "
    "later now time times available works work good great perfect fine cool awesome nice human person agent staff "
    "still open closed early late sorry running coming going done "
    "someone bot free busy sounds want need like get have come thats whats here there one two three first last next "
    "any some all received got noted understood gotcha "
    # Spanish: what a Spanish text keeps as written after conversation.i18n reads it ("Recibido, gracias")
    "recibido recibida entendido entendida listo lista vale dale perfecto gracias muchas bueno buena claro si "
    "ok okey muy bien genial excelente igualmente saludos bendiciones hola buenas"
)
_NOT_NAMES = frozenset(_WEEKDAYS).union(_SHORTHAND.values(), _words(_NOT_NAME_WORDS))


def _capitalise(word: str) -> str:
    """Name case for a word typed all lower or all upper ("o'brien" -> "O'Brien", "mcdonald" -> "McDonald"); a word
    typed in mixed case ("DeShawn") is kept."""
    if not (word.islower() or word.isupper()):
        return word[0].upper() + word[1:]
    out = "".join(p.capitalize() for p in re.split(r"(['-])", word.lower()))
    return "Mc" + out[2:].capitalize() if re.match(r"mc[a-z]{2}", word.lower()) else out


class Name(NamedTuple):
    """A patient's name as ``parse_name`` reads it: ``last`` is "" when only one word was given."""

    first: str
    last: str


def parse_name(text: str) -> Name | None:
    """(first, last) from "I'm Jane Doe", "my name is jane doe", "this is Jane", "jane doe", "Jane", "it's maria
    garcia-lopez"; last is "" for one word; particles join the last name ("maria de la cruz" -> ("Maria", "de la
    Cruz")) and a middle word joins the first ("Mary Ann Smith" -> ("Mary Ann", "Smith")). None for anything that is
    not plainly a name: questions, digits, emails, links, more than four words, words such as "yes", "ok", "botox",
    "thursday"."""
    text = text.translate(_QUOTES).strip()
    if not text or re.search(r"[?@\d/:]|https?|www\.", text):
        return None
    words = _NAME_SUFFIX.sub("", _NAME_PREFIX.sub("", text, count=1)).replace(",", " ").split()
    if not 1 <= len(words) <= 4 or len(words[0].rstrip(".")) < 2:
        return None
    for word in words:
        if not _NAME_WORD.match(word) or _strip_accents(word).lower().replace("'", "").rstrip(".") in _NOT_NAMES:
            return None
    split = len(words) - 1
    while split > 1 and words[split - 1].lower() in _PARTICLES:
        split -= 1
    names = [w if w in _PARTICLES and 0 < i < len(words) - 1 else _capitalise(w) for i, w in enumerate(words)]
    return Name(names[0], "") if len(words) == 1 else Name(" ".join(names[:split]), " ".join(names[split:]))
