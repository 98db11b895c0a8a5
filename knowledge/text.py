"""Text to search terms: texting shorthand expanded, words stemmed (Snowball English), medspa synonyms grouped."""

import re
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
}

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
]
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def stem(word: str) -> str:
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


def words(text: str) -> list[str]:
    out = []
    for token in _WORD.findall((text or "").lower().replace("\u2019", "'")):
        token = token.replace("'", "")
        out.extend(SHORTHAND.get(token, token).split())
    return out


STOPWORDS = frozenset(
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
    ]
)


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
