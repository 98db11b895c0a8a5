"""Metrics of the Celery processes (medspa/worker_metrics.py): queue waits, sweep runs, Prometheus multiprocess
bookkeeping and the worker's own exporter. tests/test_worker.py shows them from a real worker."""

import logging
import os
import runpy
import socket
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery import signals
from celery.app.task import Context
from prometheus_client import REGISTRY, CollectorRegistry, Counter, values
from prometheus_client.mmap_dict import MmapedDict, mmap_key

from medspa import worker_metrics
from medspa.worker_metrics import PUBLISHED_HEADER, process_id

ROOT = Path(__file__).resolve().parent.parent


def wait_sample(queue, suffix="count"):
    return REGISTRY.get_sample_value(f"medspa_task_queue_wait_seconds_{suffix}", {"queue": queue}) or 0.0


def wait_bucket(queue, le):
    return REGISTRY.get_sample_value("medspa_task_queue_wait_seconds_bucket", {"queue": queue, "le": le}) or 0.0


def sweep_runs(name):
    return REGISTRY.get_sample_value("medspa_sweep_runs_total", {"sweep": name}) or 0.0


def worker_request(headers, routing_key, **extra):
    """What a worker builds from a message: its headers become the request's attributes (celery.worker.request)."""
    delivery_info = {"exchange": "", "routing_key": routing_key, "priority": 0, "redelivered": False}
    return SimpleNamespace(request=Context({**headers, "delivery_info": delivery_info, **extra}))


def get(url) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (a local http:// URL)
        return response.read().decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def multiproc_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def no_exporter(monkeypatch):
    monkeypatch.setattr(worker_metrics, "_exporter", None)
    yield
    if worker_metrics._exporter is not None:
        worker_metrics.exporter_stop(worker_metrics._exporter)


def fake_exporter_start(port):
    """exporter_start without a socket: a server that only knows its port."""
    server = SimpleNamespace(server_port=port, shutdown=lambda: None, server_close=lambda: None)
    return server, SimpleNamespace(join=lambda timeout=None: None)


def write_counter(directory, pid, value, name="medspa_demo_total"):
    """A counter's value as process ``pid`` writes it in multiprocess mode."""
    db = MmapedDict(str(directory / f"counter_{process_id(pid)}.db"))
    db.write_value(mmap_key(name.removesuffix("_total"), name, [], [], "A demo counter."), value, 0.0)
    db.close()


# --- Queue waits ----------------------------------------------------------------------------------------------------


def test_a_published_then_started_task_observes_its_wait_in_its_queue():
    import time_machine

    headers = {"id": "task-1", "task": "messaging.send_message"}
    with time_machine.travel(time.time(), tick=False) as clock:  # the wait is the clock's, not this machine's load
        worker_metrics.publish_stamp(headers=headers, sender="messaging.send_message", body=(), routing_key="sms")
        assert headers[PUBLISHED_HEADER] == time.time()
        clock.shift(3)  # it waited three seconds for a worker
        count, total = wait_sample("sms"), wait_sample("sms", "sum")
        under_2, under_5 = wait_bucket("sms", "2.0"), wait_bucket("sms", "5.0")

        worker_metrics.queue_wait_observe(sender=None, task_id="task-1", task=worker_request(headers, "sms"))

    assert wait_sample("sms") == count + 1
    assert wait_sample("sms", "sum") - total == pytest.approx(3)
    assert wait_bucket("sms", "2.0") == under_2 and wait_bucket("sms", "5.0") == under_5 + 1


def test_a_delayed_task_waits_from_its_eta_not_from_its_publish():
    import time_machine

    with time_machine.travel(time.time(), tick=False):  # the wait is the clock's, not this machine's load
        published = time.time() - 60
        eta = (datetime.now(UTC) - timedelta(seconds=2)).isoformat()  # a countdown of 58 s, 2 s ago
        total = wait_sample("ai", "sum")

        worker_metrics.queue_wait_observe(task=worker_request({PUBLISHED_HEADER: published}, "ai", eta=eta))

    assert wait_sample("ai", "sum") - total == pytest.approx(2)


def test_a_clock_behind_the_publisher_never_makes_a_negative_wait():
    total, count = wait_sample("inbound", "sum"), wait_sample("inbound")

    worker_metrics.queue_wait_observe(task=worker_request({PUBLISHED_HEADER: time.time() + 30}, "inbound"))

    assert wait_sample("inbound") == count + 1 and wait_sample("inbound", "sum") == total


def test_eager_tasks_and_unstamped_messages_observe_no_wait():
    count = wait_sample("periodic")
    eager = SimpleNamespace(request=Context({PUBLISHED_HEADER: time.time(), "is_eager": True, "delivery_info": {}}))
    worker_metrics.queue_wait_observe(task=eager)
    worker_metrics.queue_wait_observe(task=worker_request({}, "periodic"))  # published by an older release
    assert wait_sample("periodic") == count


# --- Sweep runs -----------------------------------------------------------------------------------------------------


def test_the_sweeps_are_the_tasks_beat_schedules(settings):
    names = worker_metrics.sweep_names()
    assert names == {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {"inbox.sweep", "messaging.send_due_messages", "messaging.reconcile_messages"} <= names


def test_the_sweep_counter_counts_each_run_of_a_sweep_and_nothing_else():
    runs = sweep_runs("inbox.sweep")
    worker_metrics.sweep_run_count(sender=None, task=SimpleNamespace(name="inbox.sweep"), state="SUCCESS")
    worker_metrics.sweep_run_count(sender=None, task=SimpleNamespace(name="inbox.sweep"), state="FAILURE")
    worker_metrics.sweep_run_count(sender=None, task=SimpleNamespace(name="messaging.send_message"))
    assert sweep_runs("inbox.sweep") == runs + 2
    assert REGISTRY.get_sample_value("medspa_sweep_runs_total", {"sweep": "messaging.send_message"}) is None


@pytest.mark.django_db
def test_a_sweep_run_through_celery_is_counted_by_the_connected_signal():
    from bookings.tasks import expire_holds

    runs, waits = sweep_runs("bookings.expire_holds"), wait_sample("periodic")
    expire_holds.delay()  # eager in tests: the real task_prerun / task_postrun signals
    assert sweep_runs("bookings.expire_holds") == runs + 1
    assert wait_sample("periodic") == waits  # run inline, it waited in no queue


# --- Multiprocess mode ----------------------------------------------------------------------------------------------


def test_process_file_names_carry_host_and_pid_namespace_and_never_an_underscore(monkeypatch):
    monkeypatch.setattr(socket, "gethostname", lambda: "pod_a.internal")
    worker_metrics._namespace.cache_clear()
    try:
        name = process_id(7)
        assert name.startswith("pod-a.internal") and name.endswith("-7") and "_" not in name
        assert process_id() == process_id(os.getpid())
    finally:
        worker_metrics._namespace.cache_clear()


def test_in_multiprocess_mode_metric_files_are_named_by_process_id(multiproc_dir, monkeypatch):
    monkeypatch.setattr(values, "ValueClass", values.ValueClass)  # put back afterwards
    worker_metrics._use_host_unique_files()
    try:
        Counter("medspa_demo_files_total", "A demo counter.", registry=None).inc()
    finally:
        values.ValueClass.close_all_files()
    assert [p.name for p in multiproc_dir.iterdir()] == [f"counter_{process_id()}.db"]


def test_a_worker_process_shutdown_marks_it_dead_when_the_directory_is_set(multiproc_dir, monkeypatch):
    calls = []
    real = worker_metrics.multiprocess.mark_process_dead
    monkeypatch.setattr(
        worker_metrics.multiprocess, "mark_process_dead", lambda pid, path=None: calls.append(pid) or real(pid, path)
    )
    gauge = multiproc_dir / f"gauge_livesum_{process_id(4242)}.db"
    gauge.write_bytes(b"")
    write_counter(multiproc_dir, 4242, 3.0)

    signals.worker_process_shutdown.send(sender="worker@host", pid=4242, exitcode=0)  # connected in medspa/celery.py

    assert calls == [process_id(4242)]
    assert not gauge.exists()  # a live gauge leaves with its process
    assert (multiproc_dir / f"counter_{process_id(4242)}.db").exists()  # counts stay: they never go back


def test_without_the_directory_a_shutdown_marks_nothing(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    calls = []
    monkeypatch.setattr(worker_metrics.multiprocess, "mark_process_dead", lambda *a, **k: calls.append(a))
    signals.worker_process_shutdown.send(sender="worker@host", pid=4242, exitcode=0)
    worker_metrics.process_shutdown(sender=object())  # worker_shutdown: the main process, no pid given
    assert calls == []


def test_the_main_worker_process_marks_itself_dead_at_shutdown(multiproc_dir):
    gauge = multiproc_dir / f"gauge_liveall_{process_id()}.db"
    gauge.write_bytes(b"")
    worker_metrics.process_shutdown(sender=object())  # what worker_shutdown sends
    assert not gauge.exists()


def test_gunicorn_marks_an_exited_web_worker_dead(multiproc_dir):
    hooks = runpy.run_path(str(ROOT / "medspa" / "gunicorn.conf.py"))
    gauge = multiproc_dir / f"gauge_livemax_{process_id(4343)}.db"
    gauge.write_bytes(b"")
    hooks["child_exit"](SimpleNamespace(), SimpleNamespace(pid=4343))
    assert not gauge.exists()


# --- The worker's exporter ------------------------------------------------------------------------------------------


def test_the_exporter_serves_the_counters_of_a_registry_on_a_local_port():
    registry = CollectorRegistry()
    Counter("medspa_demo_sends_total", "A demo counter.", ["outcome"], registry=registry).labels("sent").inc(3)
    exporter = worker_metrics.exporter_start(0, addr="127.0.0.1", registry=registry)
    try:
        text = get(f"http://127.0.0.1:{exporter[0].server_port}/metrics")
    finally:
        worker_metrics.exporter_stop(exporter)
    assert 'medspa_demo_sends_total{outcome="sent"} 3.0' in text


def test_the_exporter_adds_up_every_process_of_the_multiprocess_directory(multiproc_dir):
    write_counter(multiproc_dir, 101, 2.0)
    write_counter(multiproc_dir, 102, 3.0)
    exporter = worker_metrics.exporter_start(0, addr="127.0.0.1")
    try:
        text = get(f"http://127.0.0.1:{exporter[0].server_port}/metrics")
    finally:
        worker_metrics.exporter_stop(exporter)
    assert "medspa_demo_total 5.0" in text


def test_without_the_directory_the_exporter_serves_its_own_process(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    assert worker_metrics.exporter_registry() is REGISTRY


def test_worker_ready_starts_the_exporter_only_when_a_port_is_set(settings, no_exporter, monkeypatch):
    monkeypatch.setattr(worker_metrics, "exporter_start", fake_exporter_start)
    settings.WORKER_METRICS_PORT = None
    worker_metrics.worker_ready(sender=SimpleNamespace(pool=None))
    assert worker_metrics._exporter is None

    settings.WORKER_METRICS_PORT = 9464
    worker_metrics.worker_ready(sender=SimpleNamespace(pool=None))
    assert worker_metrics._exporter[0].server_port == 9464


def test_worker_ready_serves_metrics_on_the_configured_port(settings, no_exporter, monkeypatch):
    port = free_port()
    settings.WORKER_METRICS_PORT = port
    real = worker_metrics.exporter_start
    monkeypatch.setattr(worker_metrics, "exporter_start", lambda p: real(p, addr="127.0.0.1"))
    runs = sweep_runs("inbox.sweep")
    worker_metrics.sweep_run_count(task=SimpleNamespace(name="inbox.sweep"))

    worker_metrics.worker_ready(sender=SimpleNamespace(pool=None))
    worker_metrics.worker_ready(sender=SimpleNamespace(pool=None))  # once only

    text = get(f"http://127.0.0.1:{port}/metrics")
    assert f'medspa_sweep_runs_total{{sweep="inbox.sweep"}} {runs + 1}' in text


def test_a_taken_port_leaves_the_worker_running_without_an_exporter(settings, no_exporter, caplog):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # noqa: S104 (what the exporter binds)
        taken.listen()
        settings.WORKER_METRICS_PORT = taken.getsockname()[1]
        with caplog.at_level(logging.ERROR, logger="medspa.worker_metrics"):
            worker_metrics.worker_ready(sender=SimpleNamespace(pool=None))
    assert worker_metrics._exporter is None
    assert "worker metrics exporter not started" in caplog.text


def test_the_prefork_pool_without_the_directory_is_warned_about(settings, no_exporter, monkeypatch, caplog):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    monkeypatch.setattr(worker_metrics, "exporter_start", fake_exporter_start)
    settings.WORKER_METRICS_PORT = 9464
    prefork = type("TaskPool", (), {"__module__": "celery.concurrency.prefork"})()
    with caplog.at_level(logging.WARNING, logger="medspa.worker_metrics"):
        worker_metrics.worker_ready(sender=SimpleNamespace(pool=prefork))
    assert "prefork pool" in caplog.text
