"""Clinic knowledge: storing documents (chunked and indexed on save) and searching them, one clinic at a time.

Search is BM25 over the clinic's chunks (title terms count twice), with texting shorthand expanded, words stemmed,
medspa synonyms and the clinic's own service names and aliases added, and misspelled words corrected against the
clinic's vocabulary. The service catalog is searched too, so a price question returns the exact catalog entry.
It runs the same on SQLite and PostgreSQL; docs/DECISIONS.md says why this method and what it measured.
"""

import difflib
import hashlib
import logging
import math
from collections import Counter
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Max

from medspa.models import Clinic, Service

from .models import KnowledgeChunk, KnowledgeDocument
from .text import domain_terms, expand, stem, terms

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
INDEX_VERSION = "1"
SYNONYM_WEIGHT = 0.5
RESULT_CACHE_SECONDS = 600
PRICE_TERMS = {stem(w) for w in ["price", "prices", "cost", "much", "charge", "pricing", "expensive", "fee"]}


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


@dataclass
class _Index:
    chunks: list  # (document_id, title, position, text, Counter, length)
    df: Counter
    avgdl: float
    vocabulary: list


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
            "document_id", "title", "position", "text", "terms"
        )
        chunks, df = [], Counter()
        for document_id, title, position, text, chunk_terms in rows:
            tf = Counter(chunk_terms)
            chunks.append((document_id, title, position, text, tf, len(chunk_terms)))
            df.update(tf.keys())
        avgdl = sum(c[5] for c in chunks) / len(chunks) if chunks else 1.0
        index = _Index(chunks, df, avgdl, sorted(df))
        for old in [k for k in _indexes if k[0] == clinic.pk]:
            del _indexes[old]
        _indexes[key] = index
    return index


def _query_concepts(query: str, index: _Index, services) -> list[dict[str, float]]:
    """One concept per query word: the word (misspellings corrected against the clinic's words) at weight 1 and
    its synonyms at SYNONYM_WEIGHT. A concept scores by its best-matching term, so a passage that repeats many
    synonyms of one word does not outrank a passage that answers the other words of the question."""
    # Words we understand are never "corrected" into a similar-looking word of the clinic's documents.
    known = set(index.vocabulary) | domain_terms()
    concepts, seen = [], set()
    for term in terms(query):
        if term not in known and len(term) >= 4 and not term.isdigit():
            close = difflib.get_close_matches(term, index.vocabulary, n=1, cutoff=0.75)
            term = close[0] if close else term
        if term in seen:
            continue
        seen.add(term)
        concept = dict.fromkeys(expand([term]), SYNONYM_WEIGHT)
        concept[term] = 1.0
        concepts.append(concept)
    original = set(seen)
    for service in services:
        if any(names <= original for names in _service_terms(service)):
            for term in terms(service.name):
                if term not in seen:
                    seen.add(term)
                    concepts.append({term: SYNONYM_WEIGHT})
    return concepts


def _service_terms(service) -> list[set[str]]:
    return [set(terms(name)) for name in [service.name, *service.aliases] if terms(name)]


def _named_services(concepts, services):
    original = {t for c in concepts for t, w in c.items() if w == 1.0}
    return [s for s in services if any(names <= original for names in _service_terms(s))]


def _bm25(index: _Index, concepts: list[dict[str, float]]) -> dict[int, tuple[float, int]]:
    """Best chunk score per document: {document_id: (score, chunk index)}."""
    n = len(index.chunks)
    idf = {}
    for concept in concepts:
        for term in concept:
            if term not in idf:
                df = index.df.get(term, 0)
                idf[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
    best = {}
    for i, (document_id, _, _, _, tf, length) in enumerate(index.chunks):
        norm = K1 * (1 - B + B * length / index.avgdl)
        score = 0.0
        for concept in concepts:
            part = 0.0
            for term, weight in concept.items():
                f = tf.get(term)
                if f:
                    part = max(part, weight * idf[term] * f * (K1 + 1) / (f + norm))
            score += part
        if score > best.get(document_id, (0.0, -1))[0]:
            best[document_id] = (score, i)
    return best


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
    concepts = _query_concepts(query, index, services)
    scored = _bm25(index, concepts)
    documents = [
        {
            "kind": "document",
            "document_id": document_id,
            "title": index.chunks[i][1],
            "snippet": _snippet(index.chunks[i][3]),
            "passage": " ".join(index.chunks[i][3].split()),  # the whole passage, to quote whole sentences from
            "score": round(score, 4),
            "source": "knowledge",
        }
        for document_id, (score, i) in sorted(scored.items(), key=lambda item: -item[1][0])[:k]
    ]
    top = documents[0]["score"] if documents else 1.0
    price_question = bool(PRICE_TERMS & {t for c in concepts for t, w in c.items() if w == 1.0})
    catalog = [
        {
            "kind": "catalog",
            "service_id": s.pk,
            "title": f"{s.name} (price list)",
            "snippet": _catalog_line(s),
            "score": round(top * (1.01 if price_question else 0.5), 4),
            "source": "catalog",
        }
        for s in _named_services(concepts, services)
    ]
    results = sorted(catalog + documents, key=lambda r: -r["score"])[: k + len(catalog)]
    cache.set(cache_key, results, RESULT_CACHE_SECONDS)
    return results


def _catalog_line(service: Service) -> str:
    deposit = ""
    if service.deposit_cents:
        who = " for new clients" if service.deposit_new_clients_only else ""
        deposit = f" Deposit to book: ${service.deposit_cents / 100:,.2f}{who}."
    return f"{service.name}: {service.price_text()}. About {service.duration_minutes} minutes.{deposit}"
