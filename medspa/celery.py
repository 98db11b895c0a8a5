"""The Celery app. Queues keep slow work (AI turns, EMR calls) from delaying urgent work (an opt-out reply).

Without REDIS_URL the settings make every task run eagerly in the calling process (no worker needed).
"""

import os

from celery import Celery
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medspa.settings")

app = Celery("medspa")
app.config_from_object("django.conf:settings", namespace="CELERY")

# inbound: recording what providers tell us (webhook events); ai: answering (turns); sms: sending. Each has its own
# workers, so a reply or a STOP confirmation never waits behind a burst of other patients' inbound texts.
QUEUES = ("default", "inbound", "sms", "ai", "emr", "periodic")
app.conf.task_queues = [Queue(name) for name in QUEUES]
# Routing by task name; each app's tasks go to the queue for their kind of work.
app.conf.task_routes = {
    "inbox.process_event": {"queue": "inbound"},
    "inbox.sweep": {"queue": "periodic"},
    "messaging.*": {"queue": "sms"},
    "conversation.*": {"queue": "ai"},
    "emr.*": {"queue": "emr"},
    "bookings.*": {"queue": "periodic"},
}
app.autodiscover_tasks()
