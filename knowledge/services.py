"""Clinic knowledge: storing documents (chunked and indexed on save) and searching them, one clinic at a time.

Search is BM25 over the clinic's chunks with the title and the first sentence as fields of their own, texting
shorthand expanded, words stemmed, medspa synonyms and the clinic's own service names and aliases added, and
misspelled words corrected into the clinic's names (services, titles, synonyms). The service catalog is searched
too, so a price question returns the exact catalog entry.
It runs the same on SQLite and PostgreSQL; docs/DECISIONS.md says why this method and what it measured.
"""

import hashlib
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import NamedTuple

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max

from medspa.models import Clinic, Service

from .models import KnowledgeChunk, KnowledgeDocument
from .text import domain_terms, domain_words, expand, misspelling_of, query_terms, stem, terms, words

logger = logging.getLogger(__name__)

TITLE_MAX = 200
BODY_MAX = 20_000
CHUNK_CHARS = 900
# BM25 parameters and the title weight, chosen on the demo evaluation set (docs/DECISIONS.md): recall@1 moved
# from 0.70 (K1 1.2, B 0.75, title x2) to 0.80 here, and its neighbours all stay above 0.76.
K1, B = 2.0, 0.5
TITLE_REPEAT = 3  # title words count this many times in each of the document's passages
# Part of every document's content hash: bump it when terms() or the chunking change, and the next seed or save
# re-indexes every document.
INDEX_VERSION = "2"
SYNONYM_WEIGHT = 0.5
TITLE_WEIGHT = 0.6
TITLE_HEAD = 1.5  # a concept in the title's first word counts this much more
OTHER_SUBJECT = 0.3  # a service's words, in a document about another service (see _bm25)
OTHER_DOCUMENT = 0.6  # the whole score of a document about a service the question does not name, when it names one
OPENING_WEIGHT = 0.2  # a concept the passage's first sentence holds (where a document states its subject)
RESULT_CACHE_SECONDS = 600
PRICE = stem("price")
PRICE_MARK = 1
_AMOUNT = re.compile(r"\$\d")
PRICE_TERMS = {stem(w) for w in ["price", "prices", "cost", "much", "charge", "pricing", "expensive", "fee"]}
_HOW_MUCH = re.compile(r"\bhow much\b(?! (time|longer|downtime|notice))", re.IGNORECASE)  # "how much time": no price
# How to pay rather than what it costs: the payment and financing documents answer, not the price list.
_PAYING_HOW = re.compile(
    r"\b(financ\w*|payment plans?|monthly|insurance|hsa|fsa|cherry|carecredit|deposits?|refund\w*|"
    r"spread\w* (the |out )?(cost|payments?|it)|on top of|comes? off|taken off|deducted|get (it|that|my \w+) back)\b",
    re.IGNORECASE,
)
# "do u do financing for filler?": whether the clinic offers something.
_OFFERS = re.compile(
    r"\b(do|does|can) (you|u|ya|yall|y'all|the clinic|your clinic|your spa)( guys| all)? "
    r"(do|offer|have|take|accept|carry|provide|sell)\b",
    re.IGNORECASE,
)
# "within what window is a touch-up free of charge?": what is free, not what it costs.
_NO_CHARGE = re.compile(r"\b(free of charge|(at |for )?no (extra |additional )?(charge|cost)|free)\b", re.IGNORECASE)


class KnowledgeError(ValueError):
    """A document that cannot be stored; the message says why."""


# --- Storing ----------------------------------------------------------------------------------------------------


def chunk_text(body: str, limit: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs, packed up to ``limit`` characters; a longer paragraph is cut at sentence ends."""
    pieces = []
    for paragraph in [p.strip() for p in body.replace("\r\n", "\n").split("\n\n") if p.strip()]:
        while len(paragraph) > limit:
            cut = max(paragraph.rfind(". ", 0, limit), paragraph.rfind("\n", 0, limit))
            cut = cut + 1 if cut > limit // 3 else limit
            pieces.append(paragraph[:cut].strip())
            paragraph = paragraph[cut:].strip()
        if paragraph:
            pieces.append(paragraph)
    chunks, current = [], ""
    for piece in pieces:
        if current and len(current) + len(piece) + 2 > limit:
            chunks.append(current)
            current = piece
        else:
            current = f"{current}\n\n{piece}" if current else piece
    if current:
        chunks.append(current)
    return chunks or [""]


def _validate(title: str, body: str) -> tuple[str, str]:
    title, body = " ".join((title or "").split()), (body or "").strip()
    errors = {}
    if not title:
        errors["title"] = "A document needs a title."
    elif len(title) > TITLE_MAX:
        errors["title"] = f"Keep the title under {TITLE_MAX} characters."
    if not body:
        errors["content"] = "The document is empty."
    elif len(body) > BODY_MAX:
        errors["content"] = f"Documents are limited to {BODY_MAX} characters; split this one by topic."
    if errors:
        raise KnowledgeError(errors)
    return title, body


def _content_hash(title: str, body: str) -> str:
    return hashlib.sha256(f"{INDEX_VERSION}\x1f{title}\x1f{body}".encode()).hexdigest()


def document_upsert(*, clinic: Clinic, title: str, body: str, source: str, active: bool = True):
    """Create or update the clinic's document with this title; re-chunk only when the text changed.
    Returns ``(document, outcome)`` with outcome created, updated or unchanged."""
    title, body = _validate(title, body)
    content_hash = _content_hash(title, body)
    with transaction.atomic():
        document = KnowledgeDocument.objects.select_for_update().filter(clinic=clinic, title=title).first()
        if document is not None and document.content_hash == content_hash and document.active == active:
            return document, "unchanged"
        outcome = "created" if document is None else "updated"
        document = document or KnowledgeDocument(clinic=clinic, title=title)
        document.body, document.source, document.active, document.content_hash = body, source, active, content_hash
        document.save()
        document_index(document)
    return document, outcome


def document_save(document: KnowledgeDocument) -> bool:
    """Save an edited document (the admin's path); re-index when its title or text changed. True if re-indexed."""
    document.title, document.body = _validate(document.title, document.body)
    content_hash = _content_hash(document.title, document.body)
    changed = content_hash != document.content_hash or document.pk is None
    document.content_hash = content_hash
    with transaction.atomic():
        document.save()
        if changed:
            document_index(document)
    return changed


def document_index(document: KnowledgeDocument) -> None:
    """(Re)build the document's chunks with their search terms."""
    document.chunks.all().delete()
    title_terms = terms(document.title)
    KnowledgeChunk.objects.bulk_create(
        KnowledgeChunk(
            clinic_id=document.clinic_id,
            document=document,
            position=position,
            title=document.title,
            text=text,
            terms=title_terms * TITLE_REPEAT + terms(text),
        )
        for position, text in enumerate(chunk_text(document.body))
    )


def clinic_file_documents_load(*, clinic: Clinic, entries: list, replace: bool, report) -> None:
    """The ``documents`` section of a clinic file (medspa/clinic_file.py dispatches to it)."""
    try:
        documents_load(
            clinic=clinic, documents=entries, source=KnowledgeDocument.Source.SEED, replace=replace, report=report
        )
    except KnowledgeError as exc:
        raise KnowledgeError(f"documents: {exc.args[0]}") from None


def documents_load(*, clinic: Clinic, documents: list, source: str, replace: bool = False, report=None) -> list:
    """Bulk load ``[{"title", "content"}]`` (the original plan's seed format). Validates every entry before writing
    any; ``replace`` deactivates the clinic's documents that are not in the list."""
    if not isinstance(documents, list):
        raise KnowledgeError({"documents": "Expected a list of {title, content} objects."})
    cleaned, errors = [], {}
    for index, entry in enumerate(documents):
        if not isinstance(entry, dict):
            errors[f"documents[{index}]"] = "Expected an object with title and content."
            continue
        try:
            cleaned.append(_validate(entry.get("title", ""), entry.get("content", entry.get("body", ""))))
        except KnowledgeError as exc:
            errors[f"documents[{index}]"] = exc.args[0]
    titles = [title for title, _ in cleaned]
    if len(set(titles)) != len(titles):
        errors["documents"] = "Two documents have the same title."
    if errors:
        raise KnowledgeError(errors)
    results = []
    with transaction.atomic():
        for title, body in cleaned:
            document, outcome = document_upsert(clinic=clinic, title=title, body=body, source=source)
            results.append((document, outcome))
            if report is not None:
                report.count("documents", outcome)
        if replace:
            stale = KnowledgeDocument.objects.for_clinic(clinic).active().exclude(title__in=titles)
            for document in stale:
                document_upsert(
                    clinic=clinic, title=document.title, body=document.body, source=document.source, active=False
                )
                if report is not None:
                    report.count("documents", "deactivated")
    return results


# --- Searching --------------------------------------------------------------------------------------------------


class _Chunk(NamedTuple):
    document_id: int
    title: str
    text: str
    tf: Counter  # the passage's own words (the title's repeats stored with them are left out)
    length: int
    title_terms: frozenset
    title_head: str  # the title's first word: what the document is about ("Botox" Pricing, "Aftercare" for ...)
    sentences: list  # [sentences, their terms], filled on the first answer quoted from the passage
    opening: frozenset = frozenset()  # the terms of the passage's first sentence


@dataclass
class _Index:
    chunks: list[_Chunk]
    df: Counter  # passages containing a term
    avgdl: float
    title_df: Counter  # documents whose title contains a term
    documents: int
    vocabulary: list
    title_words: frozenset  # the titles' words as written: what a misspelling may be corrected to


_indexes: dict = {}  # (clinic_id, version) -> _Index, in this process


def knowledge_version(clinic: Clinic) -> str:
    """Changes whenever the clinic's documents change (any save bumps updated_at; deletes change the count)."""
    agg = KnowledgeDocument.objects.filter(clinic=clinic).aggregate(n=Count("pk"), last=Max("updated_at"))
    return f"{agg['n']}:{agg['last'].timestamp() if agg['last'] else 0}"


def _index(clinic: Clinic, version: str) -> _Index:
    key = (clinic.pk, version)
    index = _indexes.get(key)
    if index is None:
        rows = KnowledgeChunk.objects.filter(clinic=clinic, document__active=True).values_list(
            "document_id", "title", "text", "terms"
        )
        chunks, df, titles = [], Counter(), {}
        for document_id, title, text, chunk_terms in rows:
            title_terms = terms(title)
            prefix = len(title_terms) * TITLE_REPEAT
            body = chunk_terms[prefix:] if chunk_terms[:prefix] == title_terms * TITLE_REPEAT else chunk_terms
            tf = Counter(body)
            if PRICE_MARK and _AMOUNT.search(text):  # "$350 per session" states a price without the word
                tf[PRICE] += 1
            head = title_terms[0] if title_terms else ""
            opening = frozenset(terms(next(iter(sentences(text)), "")))
            chunks.append(_Chunk(document_id, title, text, tf, len(body), frozenset(title_terms), head, [], opening))
            df.update(tf.keys())
            titles[document_id] = frozenset(title_terms)
        title_df = Counter(t for title_terms in titles.values() for t in title_terms)
        avgdl = sum(c.length for c in chunks) / len(chunks) if chunks else 1.0
        title_words = frozenset(w for chunk in chunks for w in words(chunk.title))
        index = _Index(chunks, df, avgdl or 1.0, title_df, len(titles), sorted(set(df) | set(title_df)), title_words)
        for old in [k for k in _indexes if k[0] == clinic.pk]:
            del _indexes[old]
        _indexes[key] = index
    return index


def _query_concepts(query: str, index: _Index, services) -> tuple[list[dict[str, float]], set[str]]:
    """One concept per query word: the word (misspellings corrected against the clinic's words) at weight 1 and
    its synonyms at SYNONYM_WEIGHT. A concept scores by its best-matching term, so a passage that repeats many
    synonyms of one word does not outrank a passage that answers the other words of the question. A service the
    question names by one of its aliases ("tox", "lip injections") is that service: its name's words join the
    concept of the alias at full weight."""
    concepts, seen = [], set()
    for term, weight in query_terms(_corrected(query, index, services)):
        if term in seen:
            continue
        seen.add(term)
        concept = dict.fromkeys(expand([term]), SYNONYM_WEIGHT * weight)
        concept[term] = weight
        concepts.append(concept)
    original = set(seen)
    for service, matched in _named(original, services):
        missing = [t for t in terms(service.name) if t not in seen]
        alias_words = sorted(matched - set(terms(service.name)))  # "tox"; the "inject" of "lip injections"
        concept = next((c for c in concepts if alias_words and alias_words[0] in c), None)
        if not missing:
            continue
        if concept is not None:  # an alias is the service: its name joins the alias's concept at full weight
            concept.update(dict.fromkeys(missing, 1.0))
        else:  # part of the name ("filler" of "Dermal Filler"): the rest of it, as a synonym would
            concepts.append(dict.fromkeys(missing, SYNONYM_WEIGHT))
        seen.update(missing)
    for service, _words in _named(original, services):  # "laser hair removal" is one thing asked about, not three
        name = set(terms(service.name))
        if len(name) < 2 or not name <= original:  # said by its name, not an alias ("filler in my chin")
            continue
        parts = [c for c in concepts if name & {t for t, w in c.items() if w >= 1.0}]
        if len(parts) < 2:
            continue
        merged = {}
        for c in parts:
            for t, w in c.items():
                merged[t] = max(w, merged.get(t, 0.0))
        concepts = [c for c in concepts if all(c is not p for p in parts)] + [merged]
    return concepts, original


def _corrected(query: str, index: _Index, services) -> str:
    """The question with its misspelled names corrected ("botx", "juvaderm", "fillr"): a word of four letters or
    more that neither the clinic's passages nor the synonym groups know, corrected only into a word that names
    something (a service or alias, a document title's word, a synonym group's word), never into any word the
    passages happen to use ("lunch break" is not "breakout", "freezing" not "free")."""
    known = set(index.vocabulary) | domain_terms()
    names = set(domain_words()) | set(index.title_words)
    for service in services:
        for name in [service.name, *service.aliases]:
            known.update(terms(name))
            names.update(words(name))
    candidates = [w for w in names if len(w) >= 3 and not w.isdigit()]
    out = []
    for word in words(query):
        stemmed = terms(word)
        if stemmed and stemmed[0] not in known and len(word) >= 4 and not word.isdigit():
            word = misspelling_of(word, candidates) or word
        out.append(word)
    return " ".join(out)


def _named(original: set[str], services) -> list[tuple]:
    """The services the question names, each with the words that name it (its name or an alias), leaving out one
    named only by words that name another more fully ("lip fillers" names Lip Filler, not Dermal Filler)."""
    found = []
    for service in services:
        matches = [names for names in _service_terms(service) if names <= original]
        if matches:
            found.append((service, max(matches, key=len)))
    return [(s, m) for s, m in found if not any(m < other for _, other in found)]


def _service_terms(service) -> list[set[str]]:
    return [set(t) for t in _name_terms(service.name, tuple(service.aliases or ())) if t]


@lru_cache(maxsize=4096)
def _name_terms(name: str, aliases: tuple) -> tuple:
    """The stemmed words of a service's name and each alias (the same for every question about it)."""
    return tuple(tuple(terms(n)) for n in (name, *aliases))


def _heads(services) -> frozenset[str]:
    """The first word of each service's name: what a document whose title starts with it is about."""
    return frozenset(t[0] for t in (terms(s.name) for s in services) if t)


def _named_services(original: set[str], services):
    return [service for service, _ in _named(original, services)]


def _idf(index: _Index, concepts: list[dict[str, float]]) -> dict[str, float]:
    n = len(index.chunks)
    idf = {}
    for concept in concepts:
        for term in concept:
            if term not in idf:
                df = index.df.get(term, 0)
                idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf


def _bm25(
    index: _Index,
    concepts: list[dict[str, float]],
    idf: dict[str, float],
    subjects: frozenset = frozenset(),
) -> dict[int, tuple[float, int]]:
    """Best passage score per document: {document_id: (score, chunk index)}. Two fields: the passage's words
    (BM25) and the document's title, where each concept the title holds adds TITLE_WEIGHT times its rarity among
    the clinic's titles: a title says what a document is about, so "hours" in "Hours and Location" outweighs
    "24 hours" in an aftercare passage, while a word every title shares adds little. ``subjects``: the first word
    of each service's name; a passage of a document about a service the question does not bring up ("Dysport ...
    Compares to Botox", asked about Botox) counts the words of the services it does bring up at OTHER_SUBJECT."""
    n_titles = index.documents
    title_idf = {
        t: math.log(1 + (n_titles - index.title_df[t] + 0.5) / (index.title_df[t] + 0.5))
        for concept in concepts
        for t in concept
        if index.title_df.get(t)
    }
    # A synonym is evidence of the question's word, never more telling than the word itself: it is weighed by the
    # rarer of the two ("forehead" does not outweigh the "botox" it stands in for).
    word_idf = [min(idf[t] for t, w in c.items() if w == max(c.values())) if c else 0.0 for c in concepts]
    asked = subjects & {t for c in concepts for t in c}  # the services the question names, or evokes by a synonym
    best = {}
    for i, chunk in enumerate(index.chunks):
        norm = K1 * (1 - B + B * chunk.length / index.avgdl)
        score = 0.0
        # A document about another service mentions the asked one (a comparison, a combination) without being
        # about it.
        other = chunk.title_head in subjects and chunk.title_head not in asked
        for concept, cap in zip(concepts, word_idf, strict=True):
            body = title = 0.0
            for term, weight in concept.items():
                f = chunk.tf.get(term)
                if f:
                    body = max(body, weight * min(idf[term], cap) * f * (K1 + 1) / (f + norm))
                if term in chunk.title_terms:
                    head = TITLE_HEAD if term == chunk.title_head and weight >= 1.0 else 1.0
                    title = max(title, weight * title_idf[term] * head)
            if OPENING_WEIGHT:  # the first sentence as a field of its own, like the title
                first = max((w * min(idf[t], cap) for t, w in concept.items() if t in chunk.opening), default=0.0)
                body += OPENING_WEIGHT * first
            if other and asked & concept.keys():
                body, title = body * OTHER_SUBJECT, title * OTHER_SUBJECT
            score += body + TITLE_WEIGHT * title
        if other and asked:  # about another service than the one asked about: its generic words count for less
            score *= OTHER_DOCUMENT
        if score > best.get(chunk.document_id, (0.0, -1))[0]:
            best[chunk.document_id] = (score, i)
    return best


# --- Answering: the sentences of a passage that answer the question ------------------------------------------

ANSWER_CHARS = 306  # two GSM-7 SMS segments of 153 characters
SHORT_ANSWER_CHARS = 220  # an answer beside another reply (times offered after it)
TOPIC_WEIGHT = 0.5  # a question's word the document's title names, in choosing the sentences to quote
# A sentence that states an amount (a price, a count or a duration).
# A duration in words: "several months", "about a year", "a couple of weeks".
_WORDED = r"\b(?:an?|one|two|three|four|six|several|couple of)\s+"  # not "a few minutes": no amount
_UNITS_OF_TIME = r"(?:minutes?|hours?|days?|weeks?|months?|years?)\b"
_QUANTITY = re.compile(
    r"\$\d|\b\d+(?:[-\u2013]\d+)?\s*(?:%|units?|syringes?|vials?|sessions?|minutes?|hours?|days?|weeks?|months?|"
    r"years?|times?)\b|" + _WORDED + _UNITS_OF_TIME,
    re.IGNORECASE,
)
# The kind of amount a question asks for, and the kind a sentence states: "how many sessions" is answered by "a
# series of 3 sessions", not by "$350 per session"; "how long" by a duration.
_AMOUNT_OF_TIME = re.compile(r"(?:\b\d+(?:[-\u2013]\d+)?\s*|" + _WORDED + ")" + _UNITS_OF_TIME, re.IGNORECASE)
_MONEY = re.compile(r"\$\d")
MONEY, TIME, COUNT = "#money", "#time", "#count"
AMOUNT_KINDS = frozenset([MONEY, TIME, COUNT])
ABOUT = "+"  # marks an amount stated in a sentence that also says one of the question's words
UNRELATED_AMOUNT = 0.5  # the weight of an amount stated about something the question did not name
_IN_UNITS = r" (?:minutes|hours|days|weeks|months|years)\b"
_ASKED_AMOUNT = (
    # "how many days do you peel": a duration, counted in its unit
    (re.compile(r"\bhow many" + _IN_UNITS, re.IGNORECASE), {TIME: 1.0, COUNT: 0.3}),
    (re.compile(r"\bhow much (time|longer)\b", re.IGNORECASE), {TIME: 1.0, COUNT: 0.3}),  # "how much time it stays"
    (re.compile(r"\bhow much\b(?! (time|longer)\b)", re.IGNORECASE), {MONEY: 1.0, COUNT: 0.6, TIME: 0.6}),
    (re.compile(r"\bhow many\b(?!" + _IN_UNITS + ")", re.IGNORECASE), {COUNT: 1.0, TIME: 0.6, MONEY: 0.3}),
    (re.compile(r"\bhow (long|soon|early)\b|\bwhen will\b", re.IGNORECASE), {TIME: 1.0, COUNT: 0.3, MONEY: 0.3}),
    (re.compile(r"\bhow (often|old)\b", re.IGNORECASE), {TIME: 1.0, COUNT: 1.0, MONEY: 0.3}),
    # The same in Spanish: "cuántas sesiones", "cuánto dura", "cuánto cuesta"
    (re.compile(r"\bcu[aá]nt[oa]s\b", re.IGNORECASE), {COUNT: 1.0, TIME: 0.6, MONEY: 0.3}),
    (
        re.compile(r"\bcu[aá]nto (tiempo|dura|duran|tarda|tardan|demora)\b|\bcada cu[aá]nto\b", re.IGNORECASE),
        {TIME: 1.0, COUNT: 0.3, MONEY: 0.3},
    ),
    (re.compile(r"\bcu[aá]nto (cuesta|cuestan|sale|vale|es|cobran)\b", re.IGNORECASE), {MONEY: 1.0, COUNT: 0.6}),
)


def asked_amount(query: str) -> dict[str, float]:
    """The kinds of amount ``query`` asks for, weighted (empty when it asks for none); a text that asks two ("how
    much is it and how many days do I peel") asks for each at the weight of the question that asks it most."""
    asked: dict[str, float] = {}
    for pattern, kinds in _ASKED_AMOUNT:
        if pattern.search(query):
            for kind, weight in kinds.items():
                asked[kind] = max(weight, asked.get(kind, 0.0))
    return asked


def _amounts(sentence: str) -> set[str]:
    """The kinds of amount a sentence states: money, a duration, a count (units, sessions, a percentage)."""
    if not _QUANTITY.search(sentence):
        return set()
    kinds = {MONEY} if _MONEY.search(sentence) else set()
    if _AMOUNT_OF_TIME.search(sentence):
        kinds.add(TIME)
    if _QUANTITY.search(_MONEY.sub(" ", _AMOUNT_OF_TIME.sub(" ", sentence))):
        kinds.add(COUNT)
    return kinds


# A full stop after these is not the end of a sentence ("Dr. Smith", "e.g. the forehead").
_ABBREVIATIONS = frozenset(["dr", "mr", "mrs", "ms", "st", "ave", "vs", "eg", "ie", "etc", "approx", "no", "inc"])
_LABEL = re.compile(r"([A-Z][\w ,/&'()-]{0,40}?):\s")  # "Parking: ...", "HSA and FSA cards: ..."
# A label is a heading ("Clinic hours:"), not a clause that sets a scene ("After Botox, Dysport or filler: ...").
_NOT_A_HEADING = frozenset(["after", "before", "for", "if", "when", "during", "with", "to", "on", "in", "at", "once"])


def _label_terms(sentence: str) -> set[str]:
    """The terms of the heading that leads ``sentence`` ("Parking: ..."), empty when none does."""
    match = _LABEL.match(sentence)
    if match is None or match.group(1).split()[0].lower() in _NOT_A_HEADING:
        return set()
    return set(terms(match.group(1)))


_SENTENCE_END = re.compile(r"[.!?]+(?=\s+|$)")


def sentences(text: str) -> list[str]:
    """The passage's sentences, whole: split after . ! or ? followed by a space, except after an abbreviation."""
    text = " ".join((text or "").split())
    out, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        before = re.sub(r"[^a-z]", "", text[start : match.start()].rsplit(" ", 1)[-1].lower())
        if match.group(0) == "." and before in _ABBREVIATIONS:
            continue
        out.append(text[start : match.end()].strip())
        start = match.end()
    if text[start:].strip():
        out.append(text[start:].strip())
    return [s for s in out if s]


def question_coverage(text: str, question: str) -> float:
    """How much of ``question`` ``text`` says: its words (and their synonyms) weighted as the search weighs them,
    plus the kind of amount it asks for when ``text`` states one ("how long would she have to use it": "valid for at
    least 7 years")."""
    said = set(terms(text))
    words = sum(weight for t, weight in query_terms(question) if ({t} | expand([t])) & said)
    stated = _amounts(text)
    return words + max((weight for kind, weight in asked_amount(question).items() if kind in stated), default=0.0)


def _split(passage: str) -> tuple[list[str], list[set[str]]]:
    """A passage's sentences and the terms of each (the kinds of amount it states marked: MONEY, TIME, COUNT)."""
    parts = sentences(passage)
    return parts, [set(terms(part)) | _amounts(part) for part in parts]


def answer_text(
    passage: str,
    concepts: list[dict[str, float]],
    idf: dict[str, float],
    *,
    title: str = "",
    wants_quantity: dict | None = None,
    limit=ANSWER_CHARS,
    split: tuple | None = None,
    services: frozenset = frozenset(),
    offers: bool = False,
) -> str:
    """Whole sentences of ``passage``, at most ``limit`` characters where its sentences allow (a single longer
    sentence is kept whole rather than cut), never cut mid-sentence: the run of consecutive sentences that holds
    most of what the question asks, each of its concepts counted once by its rarest word. Concepts the document's
    title names ("botox" in a Botox document) are what the whole passage is about: they count TOPIC_WEIGHT. A run
    starts at the passage's opening (where the documents put the essentials) or at a sentence that answers
    something; of equals, the earliest. It never ends on a FAQ heading
    ("Does it hurt?") whose answer did not fit, and stops before the next one."""
    parts, sentence_terms = split or _split(passage)
    if not parts:
        return ""
    if wants_quantity:  # "how many units", "how long does it last": a sentence that states such an amount answers,
        # fully when it also says one of the question's words ("Expect 5-7 days of peeling" for "how long does
        # the peeling last"), half when the amount is about something else ("The appointment takes 45 minutes").
        asked = set().union(*concepts)
        sentence_terms = [
            terms_of | {kind + ABOUT for kind in terms_of & AMOUNT_KINDS} if terms_of & asked else terms_of
            for terms_of in sentence_terms
        ]
        quantity = {kind: weight * UNRELATED_AMOUNT for kind, weight in wants_quantity.items()}
        quantity.update({kind + ABOUT: weight for kind, weight in wants_quantity.items()})
        concepts = [*concepts, quantity]
        idf = {**idf, **dict.fromkeys(quantity, max(idf.values(), default=1.0))}
    # A sentence led by a label ("Parking: street parking is metered...", "Clinic hours: Monday to Friday...") opens
    # the document's section on what the label names: a run that starts there counts the topic the label names in
    # full ("is there parking nearby?" is answered by the parking section, not by "a Bluebikes station nearby").
    labels = [_label_terms(part) for part in parts]
    title_terms = set(terms(title))
    # A concept is the topic when the title names it: the question's word, or the rest of a service's name that
    # the question named in part ("chemical" of "Chemical Peel" for "peel").
    topical = [any(t in title_terms for t, w in c.items() if w >= 1.0 or len(c) == 1) for c in concepts]
    # "do you do financing for filler?" (``offers``: whether the clinic offers something) is answered where the
    # document says what it is about, its opening, as a label does: the title's words its first sentence says count
    # in full there, but the names of the services asked about (a service's document opens with its price)
    opening = title_terms & sentence_terms[0] - services if offers else set()

    def covered(first, last):
        seen = set().union(*sentence_terms[first : last + 1])
        label = labels[first] or (opening if first == 0 else set())
        return sum(
            (TOPIC_WEIGHT if is_topic and not label & c.keys() else 1.0)
            * max((w * idf.get(t, 0.0) for t, w in c.items() if t in seen), default=0)
            for c, is_topic in zip(concepts, topical, strict=True)
        )

    def window(first):
        last, length, answered = first, len(parts[first]), not parts[first].endswith("?")
        while last + 1 < len(parts) and length + 1 + len(parts[last + 1]) <= limit:
            if answered and parts[last + 1].endswith("?"):  # the next FAQ question: this answer is complete
                break
            last, length = last + 1, length + 1 + len(parts[last + 1])
            answered = answered or not parts[last].endswith("?")
        while last > first and parts[last].endswith("?"):
            last -= 1
        return first, last

    # Of equals, the earliest (max keeps the first).
    candidates = [window(first) for first in range(len(parts)) if first == 0 or covered(first, first) > 0]
    candidates = [(a, b) for a, b in candidates if not parts[b].endswith("?")] or candidates  # not a bare heading
    best = max(candidates, key=lambda run: round(covered(*run), 9))
    return " ".join(parts[best[0] : best[1] + 1])


def _snippet(text: str, limit: int = 320) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "..."


def knowledge_search(*, clinic: Clinic, query: str, k: int = 5) -> list[dict]:
    """Ranked results for one clinic: catalog entries for the services the question names (first when it asks
    about price) and document passages. Each result is data: kind, title, snippet, score and source."""
    query = (query or "").strip()[:500]
    if not query:
        return []
    version = knowledge_version(clinic)
    services_version = Service.objects.for_clinic(clinic).aggregate(last=Max("updated_at"))["last"]
    cache_key = (
        "knowledge:search:"
        + hashlib.sha256(
            f"{clinic.pk}\x1f{version}\x1f{services_version}\x1f{k}\x1f{query.lower()}".encode()
        ).hexdigest()
    )
    cached = cache.get(cache_key)
    if cached is not None:
        return cached

    index = _index(clinic, version)
    services = list(Service.objects.for_clinic(clinic).filter(active=True))
    concepts, original = _query_concepts(query, index, services)
    idf = _idf(index, concepts)
    named = _named_services(original, services)
    wants_quantity = asked_amount(query)
    offers = bool(_OFFERS.search(query))
    scored = _bm25(index, concepts, idf, _heads(services))
    documents = [
        {
            "kind": "document",
            "document_id": document_id,
            "title": index.chunks[i].title,
            "snippet": _snippet(index.chunks[i].text),
            "passage": " ".join(index.chunks[i].text.split()),  # the whole passage, to quote whole sentences from
            # the sentences of the passage that answer the question
            "answer": _answer(index.chunks[i], concepts, idf, named, wants_quantity, offers=offers),
            "score": round(score, 4),
            "source": "knowledge",
        }
        for document_id, (score, i) in sorted(scored.items(), key=lambda item: -item[1][0])[:k]
    ]
    if documents:  # the first document's answer within SHORT_ANSWER_CHARS, to go beside another reply
        first = index.chunks[scored[documents[0]["document_id"]][1]]
        documents[0]["short_answer"] = _answer(
            first, concepts, idf, named, wants_quantity, limit=SHORT_ANSWER_CHARS, offers=offers
        )
    top = documents[0]["score"] if documents else 1.0
    # the price words outside "free of charge", "at no cost"
    priced = set(terms(_NO_CHARGE.sub(" ", query))) if _NO_CHARGE.search(query) else original
    price_question = bool((PRICE_TERMS - {stem("much")}) & priced or _HOW_MUCH.search(query))
    price_question = price_question and not _PAYING_HOW.search(query)
    catalog = [
        {
            "kind": "catalog",
            "service_id": s.pk,
            "title": f"{s.name} (price list)",
            "snippet": _catalog_line(s),
            "answer": _catalog_line(s),
            "score": round(top * (1.01 if price_question else 0.5), 4),
            "source": "catalog",
        }
        for s in _named_services(original, services)
    ]
    results = sorted(catalog + documents, key=lambda r: -r["score"])[: k + len(catalog)]
    cache.set(cache_key, results, RESULT_CACHE_SECONDS)
    return results


def knowledge_unknown_terms(*, clinic: Clinic, text: str) -> set[str]:
    """The text's terms (misspelled names corrected) that none of the clinic's documents uses, nor a synonym of
    them: what its information does not speak of at all ("walk-ins", "zoom")."""
    index = _index(clinic, knowledge_version(clinic))
    services = list(Service.objects.for_clinic(clinic).filter(active=True))
    vocabulary = set(index.vocabulary)
    return {t for t in terms(_corrected(text, index, services)) if not ({t} | expand([t])) & vocabulary}


def _answer(chunk: _Chunk, concepts, idf, named, wants_quantity, limit: int = ANSWER_CHARS, offers=False) -> str:
    """The passage's sentences that answer the question (``wants_quantity``: the amounts it asks for,
    ``asked_amount``), within ``limit``, led by the name of the service it asked about when those sentences do not
    say it ("Botox: Results start to show in 3-14 days...")."""
    if not chunk.sentences:  # split and stemmed once per process and passage
        chunk.sentences.extend(_split(chunk.text))
    services = frozenset(t for s in named for t in terms(s.name))
    choose = partial(
        answer_text,
        chunk.text,
        concepts,
        idf,
        title=chunk.title,
        wants_quantity=wants_quantity,
        split=tuple(chunk.sentences),
        services=services,
        offers=offers,
    )
    answer = choose(limit=limit)
    lowered, passage = answer.lower(), f"{chunk.title} {chunk.text}".lower()
    service = next((s for s in named if s.name.lower() not in lowered and s.name.lower() in passage), None)
    if service is None:
        return answer
    shorter = choose(limit=limit - len(service.name) - 2)
    return f"{service.name}: {shorter}"


def _catalog_line(service: Service) -> str:
    deposit = ""
    if service.deposit_cents:
        who = " for new clients" if service.deposit_new_clients_only else ""
        deposit = f" Deposit to book: ${service.deposit_cents / 100:,.2f}{who}."
    return f"{service.name}: {service.price_text()}. About {service.duration_minutes} minutes.{deposit}"
