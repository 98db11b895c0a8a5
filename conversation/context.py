"""The recent context an LLM turn reads: the last texts of the conversation, oldest first.

PostgreSQL is the truth; the cache (Redis when REDIS_URL is set) keeps the last ``ASSISTANT_CONTEXT_MESSAGES``
texts with the id of the newest, and each read fetches only the texts stored after that id. Messages are only ever
appended, so the cached list plus what is newer is exactly what the database would give: a lost or stale cache
changes no answer, it only costs the longer query. Entries expire after a day; ``context_forget`` drops one when
texts are erased (retention, a patient's request).
"""

from django.conf import settings
from django.core.cache import cache

from messaging.models import Message

CACHE_SECONDS = 24 * 3600
SPOKEN = (Message.Kind.PATIENT, Message.Kind.REPLY, Message.Kind.STAFF, Message.Kind.INTRO)


def _key(conversation_id) -> str:
    return f"conversation:context:{conversation_id}"


def _rows(conversation, *, after=0, before=None, limit=None):
    rows = Message.objects.filter(conversation=conversation, kind__in=SPOKEN, pk__gt=after)
    if before is not None:
        rows = rows.filter(pk__lt=before)
    rows = rows.order_by("-pk").values_list("pk", "direction", "body")
    if limit:
        rows = rows[:limit]
    return [
        {"id": pk, "role": "patient" if direction == Message.Direction.INBOUND else "clinic", "text": body}
        for pk, direction, body in reversed(list(rows))
    ]


def recent_context(conversation, *, before: int) -> list[dict]:
    """The last texts of the conversation before message ``before`` (the first text being answered now)."""
    limit = settings.ASSISTANT_CONTEXT_MESSAGES
    items = [i for i in cache.get(_key(conversation.pk)) or [] if i["id"] < before]
    if items:
        items = (items + _rows(conversation, after=items[-1]["id"], before=before))[-limit:]
    else:
        items = _rows(conversation, before=before, limit=limit)
    cache.set(_key(conversation.pk), items, CACHE_SECONDS)
    return items


def context_forget(conversation_id) -> None:
    cache.delete(_key(conversation_id))
