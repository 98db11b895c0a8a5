"""Reusing answers to repeated questions (the original plan's "aggressive caching").

Patients of one clinic ask the same things ("do you have parking?", "how much is botox"). When the LLM answered a
question from the clinic's information alone (it only searched the knowledge or looked up a price, changed nothing,
and the reply passed the checks) in a conversation with nothing in progress, the answer is stored under the
question's meaning: its stemmed words, stop words dropped, order ignored. The next patient asking the same in the
same situation gets it without a model call. A question whose answer may depend on what came before ("how
much?", "does it hurt?" after talking about a treatment) is never stored nor reused. The key carries the clinic's
answer version (its documents, catalog and profile), so any change there retires every stored answer at once.
"""

import hashlib
import re

from django.conf import settings
from django.core.cache import cache
from django.db.models import Max
from prometheus_client import Counter

from knowledge.services import knowledge_version
from knowledge.text import terms
from medspa.models import Service

from .models import Conversation

ANSWER_CACHE = Counter("medspa_assistant_answer_cache_total", "Repeated questions answered from the cache.", ["result"])

# Only these tools may have run for a turn's answer to be reusable: they read, they do not act.
READ_ONLY_TOOLS = {"search_knowledge", "lookup_service"}
MAX_TERMS = 12
# Words that carry no topic: "how much?", "ok", "2" mean something only after what was said before.
GENERIC = set(terms("much cost price pay how long when where what which ok okay thanks thank yes no sure cool great"))
# A question pointing back at the conversation ("does it hurt?", "how long does that last?") depends on it.
DEICTIC = re.compile(r"\b(it|its|that|this|those|these|they|them|one|same)\b", re.IGNORECASE)


def answers_version(clinic) -> str:
    """Changes whenever anything an answer can say changes: documents, catalog, the clinic's profile."""
    services = Service.objects.for_clinic(clinic).aggregate(last=Max("updated_at"), n=Max("pk"))
    return f"{knowledge_version(clinic)}:{services['last']}:{services['n']}:{clinic.updated_at.isoformat()}"


def question_key(
    clinic, text: str, *, version: str | None = None, follows_up: bool = False, language: str = "en"
) -> str | None:
    """The cache key for this question at this clinic, or None when its answer may depend on more than its words:
    no topic word, or (``follows_up``: the patient said something before) words that point back at it. An answer
    is kept per reply language ("Botox?" in a Spanish conversation is answered in Spanish); English keys are the
    ones they always were."""
    words = sorted(set(terms(text)))
    if not words or len(words) > MAX_TERMS or set(words) <= GENERIC or any(w.isdigit() for w in words):
        return None
    if follows_up and DEICTIC.search(text):
        return None
    version = version or answers_version(clinic)
    scope = f"{clinic.pk}\x1f{version}" if language == "en" else f"{clinic.pk}\x1f{version}\x1f{language}"
    digest = hashlib.sha256(f"{scope}\x1f{' '.join(words)}".encode()).hexdigest()
    return f"conversation:answer:{digest}"


def answer_lookup(key: str | None) -> str | None:
    if key is None:
        return None
    answer = cache.get(key)
    ANSWER_CACHE.labels("hit" if answer else "miss").inc()
    return answer


def answer_store(key: str | None, answer: str, *, tool_calls: list) -> bool:
    """Keep the answer if the turn only read the clinic's information."""
    if key is None or not answer or not tool_calls:
        return False
    if any(call["tool"] not in READ_ONLY_TOOLS for call in tool_calls):
        return False
    cache.set(key, answer, settings.ASSISTANT_ANSWER_CACHE_SECONDS)
    ANSWER_CACHE.labels("stored").inc()
    return True


def is_idle(conversation) -> bool:
    """Nothing in progress: a stored answer to a question fits."""
    return conversation.state in (Conversation.State.NEW, Conversation.State.ENGAGED) and not conversation.offered_slots
