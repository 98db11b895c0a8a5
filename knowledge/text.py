"""Text to search terms: texting shorthand expanded, words stemmed (Snowball English), medspa synonyms grouped."""

import re
import unicodedata
from functools import lru_cache

import snowballstemmer

_stemmer = snowballstemmer.stemmer("english")

# How people text -> the words documents use. Whole tokens only.
SHORTHAND = {
    "u": "you",
    "r": "are",
    "ur": "your",
    "pls": "please",
    "plz": "please",
    "thx": "thanks",
    "appt": "appointment",
    "appts": "appointments",
    "apt": "appointment",
    "hrs": "hours",
    "wknd": "weekend",
    "sat": "saturday",
    "sun": "sunday",
    "mon": "monday",
    "tues": "tuesday",
    "tue": "tuesday",
    "wed": "wednesday",
    "thu": "thursday",
    "thurs": "thursday",
    "fri": "friday",
    "dr": "doctor",
    "info": "information",
    "wat": "what",
    "wut": "what",
    "b4": "before",
    "tmrw": "tomorrow",
    "tmr": "tomorrow",
    "cc": "credit card",
    "$": "price",
    "yrs": "years",
    "yr": "year",
    "t": "subway",
    "n": "and",
    "mbta": "subway",
    "hsa": "hsa",
    "fsa": "fsa",
    "ok": "ok",
    "loc": "location",
    "addy": "address",
    "preggo": "pregnant",
    "preggers": "pregnant",
    "chem": "chemical",
    "diff": "difference",
}

# A Spanish question's words -> the English words the documents use (the documents are English; a clinic's Spanish
# patients ask in Spanish). Only words that are never English, and that a med spa's documents answer.
SPANISH = {
    "relleno": "filler", "rellenos": "filler", "labio": "lip", "labios": "lips", "arrugas": "wrinkles",
    "papada": "double chin", "manchas": "spots", "mancha": "spot", "cicatrices": "scars",
    "cicatriz": "scar", "granos": "acne", "espinillas": "acne", "poros": "pores",
    "depilacion": "hair removal", "vello": "hair", "axilas": "underarms", "cejas": "eyebrows",
    "precio": "price", "precios": "prices", "cuesta": "cost", "cuestan": "cost", "cuanto": "how much",
    "cuantas": "how many", "cuantos": "how many", "sesiones": "sessions", "sesion": "session", "unidades": "units",
    "unidad": "unit", "jeringa": "syringe", "horario": "hours", "horarios": "hours", "abren": "open",
    "cierran": "close", "abierto": "open", "sabado": "saturday", "sabados": "saturday", "domingo": "sunday",
    "domingos": "sunday", "ejercicio": "workout", "gimnasio": "gym", "despues": "after", "antes": "before",
    "hija": "daughter", "hijo": "son", "anos": "years", "edad": "age", "menor": "minor", "embarazada": "pregnant",
    "embarazo": "pregnancy", "lactancia": "breastfeeding", "amamantando": "breastfeeding", "estacionamiento": "parking",
    "parqueo": "parking", "parquear": "parking", "estacionar": "park", "direccion": "address", "queda": "located",
    "deposito": "deposit", "cancelar": "cancel", "cancelacion": "cancellation", "reprogramar": "reschedule",
    "duele": "hurt", "dolor": "pain", "dura": "last", "duran": "last", "resultados": "results",
    "financiamiento": "financing", "financiar": "financing", "pagos": "payments", "pagar": "pay",
    "tarjeta": "card", "tarjetas": "cards", "regalo": "gift", "consulta": "consultation", "gratis": "free",
    "traer": "bring", "identificacion": "id", "cita": "appointment", "citas": "appointments", "efectivo": "cash",
    "aseguranza": "insurance", "quien": "who", "doctora": "doctor", "hinchazon": "swelling", "moretones": "bruising",
    "alcohol": "alcohol", "sol": "sun", "maquillaje": "makeup", "primera": "first", "visita": "visit",
}  # fmt: skip

# Groups of words that mean the same thing to a medspa patient. A query word found in a group brings the group.
SYNONYM_GROUPS = [
    "botox tox neurotoxin wrinkle wrinkles relaxer relaxers forehead lines crows feet frown elevens",
    "filler fillers juvederm restylane volume syringe",
    "lip lips pout",
    "price prices cost costs much charge pricing rate fee fees expensive cheap",
    "cancel cancellation reschedule move change postpone",
    "deposit down payment hold upfront",
    "hours open close closes closing closed time",
    "park parking garage car lot validation",
    "transit train subway station",
    "pay payment card cards credit hsa fsa cash",
    "financing finance monthly plan plans installments cherry carecredit afford",
    "promotion promotions promo deal deals discount special specials offer loyalty",
    "aftercare after care afterwards workout exercise alcohol",
    "pregnant pregnancy breastfeeding nursing",
    "age old minor minors teen teenager",
    "laser hair removal lhr shave",
    "facial hydrafacial",
    "peel peels peeling",
    "microneedling needling scars",
    "chin double kybella",
    "consultation consult free",
    "first visit new patient arrive forms",
    "gift card gift cards present",
    "touch touchup",
    "hurt pain painful numbing",
    "provider providers doctor injector nurse",
    "acne breakout breakouts pimple pimples zit zits blemish blemishes",
    "fade fades disappear subside",
    "upright lie lying",
    "parent parents guardian mom mother dad father",
    "consultation consult talk discuss",
    "pregnant expecting conceive",
    "see saw seen",
    "address location located near nearby nearest closest directions",
    "wedding event events party",
    "sick illness flu fever covid",
    "difference different differ compare compares comparison versus unlike",
    # How patients name what the documents say, general to any med spa (not taken from any question set).
    "workout workouts exercise exercising gym sweat sweating cardio weights lifting pilates spin strenuous",
    "alcohol drink drinking drinks wine beer booze cocktail cocktails",
    "retinoid retinoids retinol retinols tretinoin retin",
    "sauna saunas steam jacuzzi",
    "lie lying lay laying nap napping",
    "smile nasolabial laugh fold folds marionette",
    "volume hollow hollows sunken plump plumper",
    "swelling swollen swell puffy puffiness",
    "pore pores clogged congestion blackhead blackheads whitehead whiteheads extraction extractions",
    "pigmentation hyperpigmentation melasma sunspots discoloration freckles spots",
    "scars scar scarring pitted",
    "bikini brazilian",
    "underarm underarms armpit armpits",
    "gray grey",
    "pluck plucking tweeze tweezing thread threading",
    "surgery surgical liposuction lipo",
    "jowl jowls neck chin",
    "consultation consult advice advise recommendation",
    "quote estimate",
    "forms paperwork intake",
    "thinners aspirin ibuprofen advil motrin aleve",
    "retinoid retinoids retinol retin tretinoin",
    "provider qualified experienced certified licensed credentials trained",
    "weekend weekends saturday sunday",
    "evening evenings night nights afternoon",
    "rideshare uber lyft taxi cab",
    "pay visa mastercard amex venmo zelle paypal",
    "financing afterpay klarna affirm installment",
    "promotion coupon coupons membership referral referrals rewards reward points",
    "age daughter son kid kids child children underage",
    "breastfeeding breastfeed pumping postpartum ttc",
    "hurt sting stings pinch numb painless anesthetic lidocaine",
    "downtime recovery recover",
    "gift voucher vouchers certificate certificates",
    "expire expires expiration valid",
    "uneven asymmetry asymmetrical lopsided crooked",
    "brow brows eyebrow eyebrows",
    "injection injections inject injected injectable injectables shot shots needle needles",
    "price money bucks dollars budget pricey spend",
    "accutane isotretinoin absorica claravis",
]
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A word's stem (Snowball English), remembered: patients and documents use the same few thousand words."""
    return _stemmer.stemWord(word)


@lru_cache(maxsize=1)
def _synonym_index() -> dict[str, frozenset[str]]:
    index = {}
    for group in SYNONYM_GROUPS:
        stems = frozenset(stem(w) for w in group.split())
        for s in stems:
            index[s] = index.get(s, frozenset()) | stems
    return index


def domain_terms() -> frozenset[str]:
    """Every stem the synonym groups know."""
    return frozenset(_synonym_index())


@lru_cache(maxsize=1)
def domain_words() -> frozenset[str]:
    """Every word of the synonym groups, as written: what a misspelling may be corrected to."""
    return frozenset(w for group in SYNONYM_GROUPS for w in group.split())


def edit_distance(a: str, b: str, bound: int) -> int:
    """Damerau-Levenshtein distance (a swap of two neighbours is one edit), or ``bound + 1`` once it exceeds
    ``bound``."""
    if abs(len(a) - len(b)) > bound:
        return bound + 1
    before, row = None, list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            cost = min(row[j] + 1, current[j - 1] + 1, row[j - 1] + (ca != cb))
            if before is not None and i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            current.append(cost)
        if min(current) > bound:
            return bound + 1
        before, row = row, current
    return row[-1]


def misspelling_of(word: str, candidates) -> str | None:
    """The candidate ``word`` is a misspelling of: same first letter, one edit away (two for a word of seven
    letters or more: "juvaderm"), the nearest and then the shortest. A real word that is merely near a candidate
    ("spring" / "syringe", "scared" / "scars") is two edits away and stays as it is. A short word is not read
    as a shorter one with a letter added ("play" is not "pay"): a short misspelling drops a letter ("botx"); nor is a
    longer word two letters longer than a candidate ("situation" is not "station")."""
    bound = 1 if len(word) <= 6 else 2
    best = None
    for candidate in candidates:
        if candidate[:1] != word[:1] or candidate == word or (len(word) <= 5 and len(candidate) < len(word)):
            continue
        distance = edit_distance(word, candidate, bound)
        if distance == 2 and len(word) - len(candidate) >= 2:  # two letters too many: "situation" is no "station"
            continue
        if distance <= bound and (best is None or (distance, len(candidate), candidate) < best):
            best = (distance, len(candidate), candidate)
    return best[2] if best else None


# Hyphenated words whose halves mean something else: "walk-ins" is not a walk from the station.
JOINED = re.compile(r"\bwalk[- ]?ins?\b")
# An idiom whose words alone mean something else: "we look forward to seeing you" is not how anything looks.
LOOK_FORWARD = re.compile(r"\blook(s|ing|ed)? forward\b")


def words(text: str) -> list[str]:
    out = []
    lowered = JOINED.sub("walkin", (text or "").lower().replace("\u2019", "'"))
    lowered = LOOK_FORWARD.sub("await", lowered)
    if not lowered.isascii():  # "después", "años": the Spanish words without their accents
        lowered = "".join(ch for ch in unicodedata.normalize("NFKD", lowered) if not unicodedata.combining(ch))
    for token in _WORD.findall(lowered):
        token = token.replace("'", "")
        out.extend((SHORTHAND.get(token) or SPANISH.get(token) or token).split())
    return out


# Spanish function words a Spanish text keeps after conversation.i18n reads it into English: never search terms (the
# documents are English), so never corrected into an English word ("para" is not "park").
SPANISH_STOPWORDS = frozenset(
    [
     "el", "la", "los", "las", "un", "una", "unos", "unas", "de", "del", "que", "y", "en", "con", "por", "para",
     "mi", "mis", "me", "se", "su", "sus", "tu", "te", "le", "les", "lo", "al", "es", "esta", "este", "esto", "ese",
     "esa", "eso", "como", "pero", "mas", "muy", "ya", "si", "no", "o", "saber", "volver", "hacer", "tengo", "tiene",
     "quiero", "puedo", "usted", "ustedes", "nos", "nuestro", "cuando", "donde", "cual", "cuales",
    ]
)  # fmt: skip
STOPWORDS = SPANISH_STOPWORDS | frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "to",
        "in",
        "on",
        "at",
        "for",
        "is",
        "are",
        "am",
        "be",
        "do",
        "does",
        "did",
        "i",
        "you",
        "your",
        "my",
        "me",
        "we",
        "our",
        "us",
        "it",
        "its",
        "this",
        "that",
        "what",
        "how",
        "when",
        "where",
        "which",
        "who",
        "can",
        "could",
        "would",
        "should",
        "will",
        "with",
        "from",
        "about",
        "any",
        "have",
        "has",
        "just",
        "so",
        "if",
        "get",
        "got",
        "im",
        "there",
        "their",
        "they",
        "them",
        "was",
        "were",
        "been",
        "as",
        "by",
        "up",
        "out",
        "not",
        "no",
        "yes",
        "hi",
        "hey",
        "hello",
        "please",
        "thanks",
        # how people text: fillers and contractions that say nothing about the topic
        "dont",
        "doesnt",
        "cant",
        "wont",
        "isnt",
        "arent",
        "ive",
        "id",
        "youre",
        "whats",
        "thats",
        "theres",
        "gotta",
        "gonna",
        "wanna",
        "lol",
        "omg",
        "rn",
        "honestly",
        "want",
        "know",
        "wondering",
    ]
)
# Words that take part in a question without being its topic ("do i pay before or after", "go back"): they count,
# at this weight, so that they decide only between documents the topic words leave level.
WEAK_WORDS = frozenset(
    stem(w)
    for w in [
        *["before", "after", "same", "back", "go", "come", "still", "really", "actually", "need", "like", "treatment"],
        *["ok", "okay", "also", "now", "today", "tomorrow", "tonight", "yesterday", "week", "wait", "hmm", "um"],
        *["over"],  # "bike over", "come over": not the "over $500" of a financing rule
        *["until", "till", "til"],  # "how long until i can work out": not the "wait until day 14" of a touch-up
    ]
)
WEAK_WEIGHT = 0.4
# A number in a question is most often the patient's own ("in 3 hours", "4 days ago", "20 wks"), not the one a
# document states: it counts as a weak word.
NUMBER_WEIGHT = 0.4


def terms(text: str) -> list[str]:
    """Stemmed words without stopwords, in order (repeats kept: they count in BM25)."""
    return [stem(w) for w in words(text) if w not in STOPWORDS]


def expand(query_terms: list[str]) -> set[str]:
    """The query's terms plus their synonym groups."""
    index = _synonym_index()
    expanded = set(query_terms)
    for term in query_terms:
        expanded |= index.get(term, frozenset())
    return expanded


# How patients put it -> the word the documents use, read in questions only (documents are indexed as written).
QUERY_PHRASES = [
    (re.compile(r"\b(breaking|break|broke|broken) out\b"), "breakout"),
    (re.compile(r"\b(go|goes|going|gone|went) away\b"), "fade"),
    (re.compile(r"\bpayment plans?\b"), "financing plan"),
    # phrasal verbs whose words alone mean something else ("work", "wear", "kick")
    (re.compile(r"\b(work|works|working|worked) out\b"), "workout"),
    (re.compile(r"\b(wear|wears|wearing|wore|worn) off\b"), "last"),
    (re.compile(r"\b(kick|kicks|kicking|kicked) in\b"), r"\1 in results show"),
    (re.compile(r"\b(show|showing|showed) up\b"), "arrive"),
    # a stated age asks about the age rules: "im 17", "my daughter is 15"
    (re.compile(r"\b(im|i am|is|she s|he s|shes|hes) (1[0-9])\b(?! (hours|days|weeks|months|units))"), r"\2 age"),
    # "quick question first", "one more question": a preamble, not what is asked about
    (re.compile(r"\b(quick|one|a|another|random|dumb|silly|small|more) questions?( first| for you)?\b"), " "),
    # the result not (yet) as hoped: what a touch-up is for
    (re.compile(r"\b(higher|lower|bigger|smaller|different) than the other\b"), "uneven one side"),
    (
        re.compile(r"\bstill (see|seeing|have|having|notice|noticing|got) (lines|wrinkles|movement|creases)\b"),
        "still moves touchup",
    ),
    (
        re.compile(r"\b(did not|didnt|not|isnt|is not|hasnt|has not) (work|working|worked|kicked in)\b"),
        "results touchup",
    ),
    # "nursing my baby": breastfeeding (not the nurse practitioner, not the baby arriving)
    (
        re.compile(r"\b(nursing|feeding) (my|a|the|our) (baby|newborn|son|daughter|little one|infant)\b"),
        "breastfeeding",
    ),
    # "what if i'm not happy with how it turns out": the result, not anyone's being happy to help
    (
        re.compile(
            r"\b(not|never|wasnt|isnt|arent|im not|un) ?(happy|satisfied|pleased) (with )?(how|the|my|it|results?)\b|"
            r"\bdissatisfied\b|\b(dont|do not) like (how|the way) (it|they) (looks?|turns? out)\b"
        ),
        "results touchup",
    ),
    # "is it cool if i...": asking leave, not about cooling
    (re.compile(r"\b(is it|would it be|its|it s|will it be) (cool|ok|okay|fine|alright) (if|to)\b"), "can"),
    # "go home and crash": lie down to sleep
    (re.compile(r"\b(crash|pass out|knock out|go to bed|hit the (hay|sack|bed))\b"), "lie down sleep"),
    # "push my appt to next week": moving it
    (re.compile(r"\bpush(es|ed|ing)? (it|my|the|this|that|our)\b"), r"reschedule \2"),
    # "where do i even start": someone new, whom a consultation is for
    (re.compile(r"\bwhere (do|should|would|can) i (even )?(start|begin)\b"), "consultation"),
    # "the lines from my nose to my mouth": smile lines
    (re.compile(r"\bnose (down )?to (my |the )?mouth\b"), "smile lines folds"),
    # "credit cards": the card brands the clinic takes, not a gift card's store credit
    (re.compile(r"\b(credit|debit) cards?\b"), r"\1 card visa mastercard"),
    # "the deposit you give back if i cancel?": a refund
    (
        re.compile(r"\b(give|gives|giving|get|getting|send) (it |me |my (deposit|money) |the (deposit|money) )?back\b"),
        "refund",
    ),
    # "does applying hurt my credit": a credit check, not pain
    (
        re.compile(
            r"\b(hurt|hurts|affect|affects|ding|dings|damage|impact|lower|ruin)s? (my |your )?credit( score)?\b"
        ),
        "credit check score",
    ),
    # "how long until i see anything": the results showing, not seeing someone
    (
        re.compile(r"\b(see|notice|seeing|noticing) (anything|a difference|any difference|a change|any change)\b"),
        "results show",
    ),
    # "before i pick": the patient choosing a time, not picking at the skin
    (re.compile(r"\b(before|until|till|til) (i|we) (pick|choose|decide|book|commit)( one| a time| anything)?\b"), " "),
    # "can i still lift", "when can i train again": working out (not a brow lift, not the train to the clinic)
    (
        re.compile(
            r"\b(can i|could i|i can|i could|to|go|still|team|heavy|back to|resume|start) (still )?"
            r"(lift|lifting|train|training)\b"
        ),
        r"\1 workout",
    ),
    # punctuation said aloud by dictation ("how long question mark"): not a "mark" on the skin
    (re.compile(r"\b(question mark|exclamation (point|mark))\b"), " "),
    # "don't want to commit to anything yet", "talk to someone first": how the patient feels, not what is asked
    (re.compile(r"\b(do not|dont|not ready to|not) (want to |wanna )?commit( to anything)?( yet)?\b"), " "),
    (re.compile(r"\b(talk|speak) to (someone|somebody|a person) first\b"), "talk"),
    # "can i lift the same day or do i gotta wait": how long until, not the touch-up's "please wait until day 14"
    (re.compile(r"\b(or )?(do|will|would|should) i (have to|gotta|need to|got to|hafta) wait\b( a while)?"), " "),
    # "pregnant, what can i still get done": which treatments are fine, not "done nursing"
    (
        re.compile(r"\b(what|which|anything) (can|could|should|would) i (still |safely )?(get|have|do)( done)?\b"),
        "which treatment is fine",
    ),
    # "they wanted to charge me to fix it": a fix after a treatment, a touch-up, not a price
    (
        re.compile(r"\b((wanted|tried|want|going) to )?charge (me|us|you) (to|for) (fix|redo|correct)\w*( it)?\b"),
        "touchup",
    ),
    # "is the $50 on top of the filler price?": the deposit, the amount a patient pays to book
    (
        re.compile(
            r"\b(is|was|does|will|would|the|that|this) (the |that |my )?\d+( deposit)?"
            r"(?= (on top|extra|come|comes|get|be|back|refund|separate|part))"
        ),
        r"\1 the deposit",
    ),
    # "my 9th botox is coming up": the visits counted by the loyalty program
    (
        re.compile(r"\bmy (\d+(st|nd|rd|th)|fifth|ninth|tenth) (botox|visit|treatment|appointment)s?\b"),
        r"my \3 loyalty rewards visit",
    ),
    # "can it be done without?": performed, not "done nursing"
    (re.compile(r"\b(get|be|have|having|getting|got) (it |this |that |them )?done\b"), r"\1"),
    # "regarding my appointment": about, not "regardless"
    (re.compile(r"\b(regarding|in regards? to|with regards? to|re:)\s"), " "),
    # "Good morning. Should I bring ID?": a greeting, not the morning
    (re.compile(r"\bgood (morning|afternoon|evening|day)\b"), " "),
    # "how long does it even last": emphasis, not the "even" of "even for returning clients"
    (re.compile(r"\b(does|do|is|will|would|can|could) (it|that|this|you|i|they) even\b"), r"\1 \2"),
    # "how many times i gotta come": a series of sessions, not the clinic's hours
    (re.compile(r"\bhow many (times|visits|rounds|trips|appointments|treatments)\b"), "how many sessions"),
    # a number of hours is a duration ("my appt is in 3 hours"), not the opening hours
    (re.compile(r"\b(\d+|a few|few|couple|couple of) (hours|hrs)\b"), r"\1"),
]
# Question words that only say what kind of answer is wanted: "how long" is answered by what follows ("last",
# "take"), so "long" counts little; "who" asks for a person, "where" for a place.
QUESTION_WORDS = [
    (re.compile(r"\bhow long\b"), "long", 0.0),
    (re.compile(r"\bhow many\b"), "many", 0.0),
]
QUESTION_CUES = [
    (re.compile(r"\bwho\b"), "provider", 1.0),
    (re.compile(r"\bwhere (is|are|r)\b"), "location", 0.5),
]


def query_terms(text: str) -> list[tuple[str, float]]:
    """A question's terms with their weights: the words the question itself asks about at 1, the words that only
    say what kind of answer is wanted (the "long" of "how long") below it, and a cue of the question word ("who":
    a person) as a term of its own."""
    lowered = " ".join(words(text))
    for pattern, replacement in QUERY_PHRASES:
        lowered = pattern.sub(replacement, lowered)
    weights = {}
    for pattern, word, weight in QUESTION_WORDS:
        if pattern.search(lowered):
            weights[stem(word)] = weight
    out = [
        (t, weights.get(t, NUMBER_WEIGHT if t.isdigit() else WEAK_WEIGHT if t in WEAK_WORDS else 1.0))
        for t in terms(lowered)
    ]
    for pattern, word, weight in QUESTION_CUES:
        if pattern.search(lowered) and stem(word) not in {t for t, _ in out}:
            out.append((stem(word), weight))
    return out
