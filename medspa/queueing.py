"""Queueing a task when the database already holds the work: a broker that is down loses nothing.

Every task we queue after a commit stands for a row that says what is still to do (a webhook event pending, a text
queued, a turn unanswered, an outbox step due, an alert not emailed), and a periodic sweep queues it again from that
row. So when Redis is down or was flushed, ``enqueue`` logs the id, counts it and returns False instead of raising:
raising there, after the commit, would fail a request or a task whose effects are already written.

A sweep must not queue again what is only waiting in a long queue: under a backlog that multiplied the work (every
copy a task run that finds nothing to do) when the workers had least time for it. So ``enqueue`` leaves a marker
in the cache (the same Redis as the broker in every deployment we describe) that the task removes when it starts,
and the sweeps skip the ids ``queued_ids`` still finds marked. A flushed or restarted Redis loses the markers with
the tasks, so the sweeps queue again at once. A worker that starts (``worker_started``: a restart after a crash,
or a new one) voids every marker written before it, because the tasks a killed worker held are gone with it; a
task lost while its marker stays and no worker starts is queued again when the marker expires (MARKER_SECONDS).
"""

import logging
import threading
import time

from celery import current_app
from celery.exceptions import NotRegistered
from django.core.cache import cache
from kombu.exceptions import OperationalError
from prometheus_client import Counter
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

ENQUEUE_FAILED = Counter(
    "medspa_enqueue_failed_total", "Tasks that could not be queued (broker down): a sweep picks them up.", ["task"]
)
BROKER_ERRORS = (OperationalError, ConnectionError, OSError)
CACHE_ERRORS = (RedisError, OSError)


MARKER_SECONDS = 45  # a queued task not started this long after it was queued counts as lost
# The one queue that never holds a burst: missed calls and their intros, STOP/HELP/START and their confirmations.
PRIORITY = "priority"


def _marker(task_name: str, args) -> str:
    return f"queued:{task_name}:{':'.join(map(str, args))}"


SINCE = "queued:since"  # markers written before this time (a worker's start) do not count


def _markers_on() -> bool:
    return not current_app.conf.task_always_eager  # an eager task has run before apply_async returns


def enqueue(task, *args, countdown: float | None = None, queue: str | None = None) -> bool:
    """``task.apply_async(args)`` (on ``queue`` if given, else the task's route); False (logged with the ids,
    counted) when the broker cannot take it. ``task`` is a task or its registered name ("messaging.send_message"):
    by name, a service queues its own app's task without importing the tasks module that imports it."""
    if isinstance(task, str):
        task = registered(task)
    marker = _marker(task.name, args) if _markers_on() else None
    if marker:
        _cache_call(cache.set, marker, time.time(), MARKER_SECONDS)
    try:
        task.apply_async(args, countdown=countdown, **({"queue": queue} if queue else {}))
    except BROKER_ERRORS as exc:
        if marker:
            _cache_call(cache.delete, marker)
        ENQUEUE_FAILED.labels(task.name).inc()
        logger.warning("could not queue %s%s (%s): a sweep will queue it again", task.name, args, type(exc).__name__)
        return False
    return True


def queue_idle(task) -> bool:
    """Whether nothing waits in the queue ``task`` (a task or its name) is routed to: that list of the Redis broker
    is empty. False when it cannot tell (tasks run eagerly, a broker other than Redis, the broker down), so the
    caller queues the task as usual. Tasks a worker has already taken (prefetched, unacked) do not count: they are
    not waiting behind anything."""
    if not _markers_on():
        return False
    name = task if isinstance(task, str) else task.name
    queue = current_app.amqp.router.route({}, name, (), {}).get("queue")
    queue = getattr(queue, "name", queue) or current_app.conf.task_default_queue
    try:
        with current_app.pool.acquire(block=True, timeout=1) as conn:
            client = getattr(conn.default_channel, "client", None)
            return client is not None and client.llen(queue) == 0
    except Exception:  # an optimisation: whatever fails here, the task is queued as usual
        return False


_DISCOVERY = threading.Lock()


def registered(name: str):
    """The task registered under ``name``. A web process has not imported the apps' tasks modules (a worker does
    at start): the first lookup has Celery's autodiscovery import them.

    One thread at a time: Celery's autodiscovery returns at once, having imported nothing, to a thread that calls it
    while another thread's discovery runs (celery.loaders.base._RACE_PROTECTION), so the second of two concurrent
    first webhooks in a threaded server (runserver, gunicorn --threads) would find no task and answer 500.
    """
    try:
        return current_app.tasks[name]
    except NotRegistered:
        with _DISCOVERY:
            current_app.loader.import_default_modules()
        return current_app.tasks[name]


def queued_ids(task_name: str, ids) -> set:
    """The ids (a task's only argument) whose task was queued less than MARKER_SECONDS ago and has not started:
    waiting in the queue, not lost. Empty when the cache cannot tell (Redis down: the sweep queues them again)."""
    ids = list(ids)
    if not ids or not _markers_on():
        return set()
    keys = {_marker(task_name, (pk,)): pk for pk in ids}
    found = _cache_call(cache.get_many, [*keys, SINCE]) or {}
    since = max(found.pop(SINCE, 0), time.time() - MARKER_SECONDS)  # the TTL too, on this host's clock
    return {keys[key] for key, at in found.items() if isinstance(at, int | float) and at > since}


def worker_started(**kwargs):
    """``worker_ready``: the tasks a worker that died held are lost with it, and this may be its restart, so every
    marker written until now stops counting (the next sweeps queue what is still undone once; a copy finds it
    done)."""
    _cache_call(cache.set, SINCE, time.time(), None)


def task_started(task=None, args=None, **kwargs):
    """``task_prerun``: the task is no longer waiting; its marker goes."""
    request = getattr(task, "request", None)
    if task is None or getattr(request, "is_eager", False):
        return
    _cache_call(cache.delete, _marker(task.name, tuple(args or ())))


def _cache_call(fn, *args):
    """A marker is an optimisation: with the cache down, none is written (the sweep may queue a copy) and a stale
    one expires by itself."""
    try:
        return fn(*args)
    except CACHE_ERRORS:
        return None
