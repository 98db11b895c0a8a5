"""With PostgreSQL and Redis (CI): a real Celery worker process takes the webhook's task from the broker and the
text reaches the (fake) Telnyx API over HTTP, and what the worker counts reaches /metrics (Prometheus multiprocess
mode, and the worker's own exporter). Skipped on the embedded defaults, where tasks run in-process."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.db import connection
from prometheus_client.parser import text_string_to_metric_families

from messaging.models import Message, PhoneNumber

from .conftest import make_clinic
from .fakes.telnyx_messaging import FakeTelnyx, serve
from .messaging_helpers import TELNYX_PUBLIC, post_telnyx, telnyx_inbound

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        not settings.REDIS_URL or connection.vendor != "postgresql", reason="needs PostgreSQL and REDIS_URL"
    ),
]


@pytest.fixture
def worker_env():
    fake = FakeTelnyx()
    server = serve(fake)
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SMS_BACKEND": "",
        "TELNYX_API_KEY": "KEY_worker",
        "TELNYX_PUBLIC_KEY": TELNYX_PUBLIC,
        "TELNYX_BASE_URL": f"http://127.0.0.1:{server.server_port}/v2",
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
    }
    yield fake, env
    server.shutdown()
    server.server_close()


def start_worker(env):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "medspa",
            "worker",
            "-Q",
            "priority,inbound,sms,default",  # HELP and its reply go through priority
            "--pool",
            "solo",
            "--concurrency",
            "1",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def metric(text, name, **labels) -> float | None:
    """One sample's value in a Prometheus text page."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


@pytest.mark.django_db(transaction=True)
def test_real_worker_answers_help_through_the_broker(client, worker_env, settings, tmp_path, monkeypatch):
    from medspa.celery import app

    fake, env = worker_env
    settings.TELNYX_PUBLIC_KEY = TELNYX_PUBLIC
    app.conf.task_always_eager = False  # this test is about the broker and a separate worker process
    clinic = make_clinic("worker-clinic", name="Glow")
    PhoneNumber.objects.create(clinic=clinic, number="+15555550100", provider="telnyx")
    app.control.purge()
    # The worker writes its metrics to a multiprocess directory and serves them itself too (WORKER_METRICS_PORT).
    metrics_dir, metrics_port = tmp_path / "prometheus", free_port()
    metrics_dir.mkdir()
    env = {**env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "WORKER_METRICS_PORT": str(metrics_port)}
    worker = start_worker(env)
    try:
        body = telnyx_inbound("HELP")
        for _ in range(2):  # a duplicate delivery too
            assert post_telnyx(client, "/webhooks/telnyx/messages", body).status_code == 200
        assert wait_for(lambda: len(fake.requests) >= 1), "the worker did not send within 30 s"
        time.sleep(1)  # would a duplicate send arrive?
        assert len(fake.requests) == 1
        request = fake.requests[0]
        assert request["headers"]["Authorization"] == "Bearer KEY_worker"
        assert request["json"]["to"] == "+16175550123" and "STOP" in request["json"]["text"]
        assert wait_for(lambda: Message.objects.filter(direction="outbound", status="sent").exists(), 10)

        # What the worker counted, at the web's /metrics: this process serves the directory the worker writes to
        # (django-prometheus reads PROMETHEUS_MULTIPROC_DIR per request); its own counters are not in it.
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(metrics_dir))
        web = lambda: client.get("/metrics").content.decode()  # noqa: E731
        assert wait_for(lambda: metric(web(), "medspa_sms_sends_total", outcome="sent") == 1, 10), web()
        page = web()
        assert metric(page, "medspa_webhook_events_total", provider="telnyx", outcome="processed") == 1
        # HELP is urgent: its event (published here) and its reply (published by the worker) both go by priority
        assert metric(page, "medspa_task_queue_wait_seconds_count", queue="priority") >= 2
        assert metric(page, "medspa_webhook_events_total", outcome="received") is None  # counted here: not a file
        # The same from the worker's exporter (the solo pool: its main process ran the tasks).
        exported = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert metric(exported, "medspa_sms_sends_total", outcome="sent") == 1
        assert metric(exported, "medspa_task_queue_wait_seconds_count", queue="priority") >= 2
    finally:
        worker.terminate()
        output, _ = worker.communicate(timeout=20)
    assert "Traceback" not in output, output
