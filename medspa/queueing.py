"""Queueing a task when the database already holds the work: a broker that is down loses nothing.

Every task we queue after a commit stands for a row that says what is still to do (a webhook event pending, a text
queued, a turn unanswered, an outbox step due, an alert not emailed), and a periodic sweep queues it again from that
row. So when Redis is down or was flushed, ``enqueue`` logs the id, counts it and returns False instead of raising:
raising there, after the commit, would fail a request or a task whose effects are already written.
"""

import logging

from kombu.exceptions import OperationalError
from prometheus_client import Counter

logger = logging.getLogger(__name__)

ENQUEUE_FAILED = Counter(
    "medspa_enqueue_failed_total", "Tasks that could not be queued (broker down): a sweep picks them up.", ["task"]
)
BROKER_ERRORS = (OperationalError, ConnectionError, OSError)


def enqueue(task, *args, countdown: float | None = None) -> bool:
    """``task.apply_async(args)``; False (logged with the ids, counted) when the broker cannot take it."""
    try:
        task.apply_async(args, countdown=countdown)
    except BROKER_ERRORS as exc:
        ENQUEUE_FAILED.labels(task.name).inc()
        logger.warning("could not queue %s%s (%s): a sweep will queue it again", task.name, args, type(exc).__name__)
        return False
    return True
