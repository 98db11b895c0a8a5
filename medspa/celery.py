"""The Celery app. Queues keep slow work (AI turns, EMR calls) from delaying urgent work (an opt-out reply).

Without REDIS_URL the settings make every task run eagerly in the calling process (no worker needed).
"""

import os

from celery import Celery, signals
from kombu import Queue

# First thing in every process (the medspa package imports this module): in Prometheus multiprocess mode it names
# metric files by host and pid before any metric exists. medspa/worker_metrics.py explains the rest.
# isort: off
from . import worker_metrics
from . import queueing  # its metric must come after worker_metrics' set-up
# isort: on

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings")

app = Celery("medspa")
app.config_from_object("django.conf:settings", namespace="CELERY")

# inbound: recording what providers tell us (webhook events); ai: answering (turns); sms: sending. Each has its own
# workers, so a reply never waits behind a burst of other patients' inbound texts. priority (queueing.PRIORITY) has
# a worker of its own too: missed calls and their intros, STOP/HELP/START and their confirmations, chosen by the
# caller (``enqueue(..., queue=PRIORITY)``), so a burst of questions never delays them.
QUEUES = ("default", "priority", "inbound", "sms", "ai", "emr", "periodic")
app.conf.task_queues = [Queue(name) for name in QUEUES]
# Routing by task name; each app's tasks go to the queue for their kind of work.
app.conf.task_routes = {
    "inbox.process_event": {"queue": "inbound"},
    "inbox.sweep": {"queue": "periodic"},
    # Telnyx 10DLC calls (seconds each) must not hold up the sending workers.
    "messaging.tendlc_refresh": {"queue": "periodic"},
    "messaging.*": {"queue": "sms"},
    "conversation.*": {"queue": "ai"},
    "emr.*": {"queue": "emr"},
    "bookings.*": {"queue": "periodic"},
    "lifecycle.sweep": {"queue": "periodic"},
    "lifecycle.*": {"queue": "emr"},  # a reminder reads the EMR first
    "waitlist.sweep": {"queue": "periodic"},  # waitlist.offer_freed_time: default (it may call the EMR and Square)
}
app.autodiscover_tasks()


def _close_old_connections(task=None, **kwargs):
    """Before and after each task, as Django does around a request: connections older than CONN_MAX_AGE, broken,
    or left in a transaction are closed; the others are kept (and health-checked at their next use). Celery's own
    fixup would close them all (CELERY_DB_REUSE_MAX in the settings says why it does not). An eager task runs inside
    its caller's request or transaction: left alone."""
    if getattr(getattr(task, "request", None), "is_eager", False):
        return
    from django.db import close_old_connections

    close_old_connections()


signals.task_prerun.connect(_close_old_connections, weak=False)
signals.task_postrun.connect(_close_old_connections, weak=False)

# Metrics (medspa/worker_metrics.py): queue waits, sweep runs, multiprocess bookkeeping, the worker's exporter.
signals.before_task_publish.connect(worker_metrics.publish_stamp, weak=False)
signals.task_prerun.connect(worker_metrics.queue_wait_observe, weak=False)
signals.task_prerun.connect(queueing.task_started, weak=False)
signals.task_postrun.connect(worker_metrics.sweep_run_count, weak=False)
signals.worker_process_shutdown.connect(worker_metrics.process_shutdown, weak=False)
signals.worker_shutdown.connect(worker_metrics.process_shutdown, weak=False)
signals.worker_ready.connect(worker_metrics.worker_ready, weak=False)
signals.worker_ready.connect(queueing.worker_started, weak=False)


def _filter_logs(logger=None, **kwargs):
    """A worker or beat logs through Celery's handlers, which replace LOGGING's console: they get its filters
    (patient data redacted, client errors without tracebacks; medspa/logging.py)."""
    from .logging import filter_celery_handlers

    filter_celery_handlers(logger=logger)


signals.after_setup_logger.connect(_filter_logs, weak=False)
signals.after_setup_task_logger.connect(_filter_logs, weak=False)
