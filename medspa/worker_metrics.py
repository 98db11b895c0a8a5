"""Metrics across processes: Prometheus multiprocess mode, the Celery worker's own exporter, queue waits and sweeps.

prometheus_client keeps a counter in the process that increments it, so what a Celery worker counts (sends, turns,
inbox outcomes, outbox steps) is not in the web's ``/metrics`` unless both write to files in one directory:

- ``PROMETHEUS_MULTIPROC_DIR`` (read by prometheus_client at import): every process writes its values to mmapped
  files there and django-prometheus's ``/metrics`` adds them up (``MultiProcessCollector``). Files are named by
  process; prometheus_client names them by pid only, which collides when containers (each its own pid namespace)
  share the directory (two processes writing one file lose counts and can corrupt it), so ``process_id`` adds the
  host name and the pid namespace. medspa/celery.py imports this module first thing, before any metric is created,
  in every process (gunicorn, Celery, manage.py). A process that ends is marked dead (``mark_dead``): Celery's
  ``worker_process_shutdown`` / ``worker_shutdown``, gunicorn's ``child_exit`` (medspa/gunicorn.conf.py). Counter
  and histogram files of dead processes stay (their counts must not go back); the directory is emptied only while
  no process uses it (docker-compose.yml's volume is a tmpfs).
- ``WORKER_METRICS_PORT`` (setting, unset = off): the worker's main process serves ``/metrics`` on that port
  (``exporter_start`` from ``worker_ready``), for workers on hosts without a web process. It serves the directory
  when ``PROMETHEUS_MULTIPROC_DIR`` is set (needed with the prefork pool, where tasks run in child processes), else
  its own registry (solo and threads pools).

Signal handlers (connected in medspa/celery.py): ``publish_stamp`` puts the publish time in a message header,
``queue_wait_observe`` observes how long the task waited in its queue, ``sweep_run_count`` counts the periodic
sweeps (``CELERY_BEAT_SCHEDULE``'s tasks) so that a stopped beat shows.
"""

import contextlib
import functools
import logging
import os
import re
import socket
import time
from datetime import datetime

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess, start_http_server, values

logger = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISHED_HEADER = "medspa_published_at"  # a Unix time (float), set by whoever publishes the task


@functools.cache
def _namespace() -> str:
    """Host name and, on Linux, the pid namespace: pids are unique within one namespace only (one per container;
    containers of a Kubernetes pod even share the host name). Letters, digits, dots and dashes only:
    prometheus_client splits file names on "_"."""
    host = socket.gethostname()
    with contextlib.suppress(OSError):
        host += "-" + "".join(c for c in os.readlink("/proc/self/ns/pid") if c.isdigit())  # "pid:[4026531836]"
    return re.sub(r"[^A-Za-z0-9.-]", "-", host).strip("-") or "host"


def process_id(pid: int | None = None) -> str:
    """The name of a process's metric files (``counter_<this>.db``): host, pid namespace and pid, unique across the
    containers sharing the directory. A forked child has its parent's namespace and host, so the cache holds."""
    return f"{_namespace()}-{os.getpid() if pid is None else pid}"


def multiprocess_dir() -> str:
    return os.environ.get(MULTIPROC_ENV, "")


def _use_host_unique_files():
    """In multiprocess mode, name metric files by ``process_id`` instead of the bare pid.

    Runs at import, which medspa/celery.py makes the first thing the project does in any process (the ``medspa``
    package imports it), before any metric is created; metrics keep the value class they were created with.
    """
    if multiprocess_dir():
        values.ValueClass = values.MultiProcessValue(process_identifier=process_id)


_use_host_unique_files()

# Queue waits: from publish (or the ETA of a delayed task) to a worker starting it; seconds to minutes matter.
QUEUE_WAIT = Histogram(
    "medspa_task_queue_wait_seconds",
    "Time a task waited in its queue, from publish (or its ETA) until a worker started it, by queue.",
    ["queue"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800),
)
SWEEP_RUNS = Counter(
    "medspa_sweep_runs_total", "Runs of the periodic sweeps (the tasks beat schedules), by task name.", ["sweep"]
)


# --- Signal handlers --------------------------------------------------------------------------------------------


def publish_stamp(headers=None, **kwargs):
    """``before_task_publish``: the publish time, in the message's headers (a retry is a new publish)."""
    if isinstance(headers, dict):
        headers[PUBLISHED_HEADER] = time.time()


def queue_wait_observe(task=None, **kwargs):
    """``task_prerun``: now minus the publish time (or the ETA, if later), by the queue the task came from."""
    request = getattr(task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return
    queue = (getattr(request, "delivery_info", None) or {}).get("routing_key")
    published = getattr(request, PUBLISHED_HEADER, None) or (getattr(request, "headers", None) or {}).get(
        PUBLISHED_HEADER
    )
    if not queue or published is None:
        return  # published by a process without this handler, or run inline
    try:
        ready = max(float(published), _timestamp(getattr(request, "eta", None)))
    except (TypeError, ValueError):
        return
    # Clocks of different hosts disagree a little: never a negative wait.
    QUEUE_WAIT.labels(queue).observe(max(0.0, time.time() - ready))


def _timestamp(eta) -> float:
    if not eta:
        return 0.0
    if isinstance(eta, str):
        eta = datetime.fromisoformat(eta)
    return eta.timestamp()


def sweep_names() -> set[str]:
    from django.conf import settings

    return {entry["task"] for entry in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).values()}


def sweep_run_count(task=None, **kwargs):
    """``task_postrun``: one more run of a periodic sweep, whatever its outcome (failures are in the logs)."""
    name = getattr(task, "name", None)
    if name in sweep_names():
        SWEEP_RUNS.labels(name).inc()


def mark_dead(pid: int | None = None):
    """The process has ended: prometheus_client drops its live gauges' files (counters stay, they only add up).
    Never raises: it runs in gunicorn's master, which must outlive any of this."""
    if not multiprocess_dir():
        return
    try:
        multiprocess.mark_process_dead(process_id(pid), multiprocess_dir())
    except OSError as exc:
        logger.warning("metrics: could not mark process %s dead: %s", pid, exc)


def process_shutdown(pid=None, **kwargs):
    """``worker_process_shutdown`` (a prefork child, in that child) and ``worker_shutdown`` (the main process)."""
    mark_dead(pid)


# --- The worker's exporter --------------------------------------------------------------------------------------

_exporter = None  # (server, thread) once started in this process


def exporter_registry():
    """What the exporter serves: the multiprocess directory when set (every process writing there), else this
    process's own registry."""
    if multiprocess_dir():
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def exporter_start(port: int, *, addr: str = "0.0.0.0", registry=None):  # noqa: S104 (scraped from other hosts)
    """Serve ``/metrics`` (any path) on ``addr:port`` from a daemon thread; returns (server, thread)."""
    return start_http_server(port, addr=addr, registry=registry if registry is not None else exporter_registry())


def exporter_stop(exporter):
    server, thread = exporter
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def worker_ready(sender=None, **kwargs):
    """``worker_ready`` (the worker's main process, once): start the exporter when WORKER_METRICS_PORT is set."""
    global _exporter
    from django.conf import settings

    port = getattr(settings, "WORKER_METRICS_PORT", None)
    if port is None or _exporter is not None:
        return
    pool = getattr(sender, "pool", None)
    if not multiprocess_dir() and "prefork" in type(pool).__module__:
        logger.warning(
            "worker metrics: the prefork pool runs tasks in child processes; without %s the exporter on port %s "
            "serves only the main process's metrics",
            MULTIPROC_ENV,
            port,
        )
    try:
        _exporter = exporter_start(port)
    except OSError as exc:  # the port is taken (another worker on this host): the worker runs on without it
        logger.error("worker metrics exporter not started port=%s error=%s", port, exc)
        return
    logger.info(
        "worker metrics exporter listening port=%s multiprocess=%s", _exporter[0].server_port, bool(multiprocess_dir())
    )
