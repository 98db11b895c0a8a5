"""End-to-end tests: the product's main flow on real processes and services (see stack.py for the layout).

They need PostgreSQL and Redis (DATABASE_URL, REDIS_URL). Without them (the embedded defaults) they are deselected,
unless CI=1 says this run must have them: then a missing service fails the run instead of quietly dropping them
(.ci/run passes ``-m "not e2e"`` to its embedded pass). Run them alone with ``make test PYTEST_ARGS="-m e2e"``;
``make e2e-report`` also writes docs/E2E_TEST_RESULTS.md from the run.

The processes start once for the package (a few seconds) and serve every scenario; each scenario gets a fresh
clinic, number and patient, and the fakes forget what they recorded. They run on their own redis-server (started
here, on a free port, without persistence), which the test process uses too: a scenario may flush or restart it,
and the Redis of REDIS_URL (CI's, shared) is never flushed by these tests.
"""

import contextlib
import importlib.util
import os
import shutil
import time

import pytest
from django.conf import settings
from django.db import connection

pytest.register_assert_rewrite("tests.e2e.checks", "tests.e2e.flow", "tests.e2e.stack")

from . import report  # noqa: E402
from .flow import Patient, make_clinic  # noqa: E402
from .stack import Stack, database_url  # noqa: E402

RUN_STARTED = time.monotonic()
TRANSCRIPTS = pytest.StashKey[list]()  # every scenario's transcript, in the order they ran
TRANSCRIPT = pytest.StashKey[report.Transcript]()  # one scenario's
STACK = {}  # the running stack, for failure reports and the results document


def services_missing() -> str:
    """Why the e2e tests cannot run here ('' when they can)."""
    if connection.vendor != "postgresql":
        return "DATABASE_URL is not a PostgreSQL database"
    if not settings.REDIS_URL:
        return "REDIS_URL is not set"
    for module in ("gunicorn", "celery", "redis"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (the stack runs its own)"
    return ""


@pytest.hookimpl(trylast=True)  # after -m has deselected what it deselects
def pytest_collection_modifyitems(config, items):
    e2e = [item for item in items if item.get_closest_marker("e2e")]
    if not e2e:
        return
    missing = services_missing()
    if not missing:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(
            f"{len(e2e)} end-to-end test(s) selected under CI=1, but {missing}. Run them with PostgreSQL and Redis "
            '(DATABASE_URL, REDIS_URL), or deselect them with -m "not e2e".'
        )
    config.hook.pytest_deselected(items=e2e)
    items[:] = [item for item in items if item not in e2e]
    print(f"\ne2e: {len(e2e)} end-to-end test(s) deselected: {missing}")


# --- Fixtures of the test suite that do not fit a multi-process run ----------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Override: the suite's fixture flushes the Redis database, which is also the Celery broker the workers are
    listening on (it would drop its queue bindings). Here only the app's cache keys go (of the stack's Redis, which
    the stack fixture made settings.REDIS_URL for the test process)."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "")
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(autouse=True)
def _eager_tasks():
    """Override: whatever the test process enqueues goes to the real broker and the worker processes."""
    from medspa.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def sms_outbox():
    """Override: no texts in the test process; the workers send them to the fake Telnyx."""
    return []


# --- The stack -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="package")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """The web app, workers, beat, the fakes and their own Redis, running until the last e2e test of the run is
    done. The test process's cache and Celery broker point at that Redis meanwhile (what it enqueues reaches the
    workers; what it invalidates is what they read)."""
    from tests.messaging_helpers import TELNYX_PUBLIC

    with django_db_blocker.unblock():
        url = database_url(connection.settings_dict)
    running = Stack(tmp=tmp_path_factory.mktemp("e2e"), database_url=url)
    STACK["stack"] = running
    try:
        running.start_redis()
        with django_db_blocker.unblock():
            running.versions = report.versions(running.redis_url)
        with _test_process_on(running.redis_url):
            running.start(telnyx_public_key=TELNYX_PUBLIC)
            yield running
    finally:
        running.stop()


@contextlib.contextmanager
def _test_process_on(redis_url):
    """The test process's Django cache and Celery broker on the stack's Redis, for the package's duration."""
    from django.test import override_settings

    from medspa.celery import app

    caches = {"default": {**settings.CACHES["default"], "LOCATION": redis_url}}
    previous = app.conf.broker_url
    app.close()  # the producer pool of the old broker
    app.conf.broker_url = redis_url
    try:
        with override_settings(REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url, CACHES=caches):
            yield
    finally:
        app.close()
        app.conf.broker_url = previous


@pytest.fixture
def e2e(stack, transactional_db):
    """Per scenario: the fakes start empty; afterwards the workers are given a moment to finish what the scenario
    started before the database is emptied (transactional_db's teardown comes after this one's)."""
    for fake in stack.fakes.values():
        fake.reset()
    stack.scenario_log_offsets = stack.log_offsets()
    yield stack
    stack.revive()  # a scenario that failed with Redis or a worker down leaves it down for none of the next
    _quiesce(stack)
    _flush(stack)


def _flush(stack, attempts=6):
    """Empty the tables before transactional_db's own flush (which then finds them empty). Beat's sweeps keep
    running meanwhile, and a TRUNCATE can deadlock with a sweep's transaction (PostgreSQL aborts one side): try
    again, briefly, instead of failing the scenario's teardown."""
    from django.core.management import call_command
    from django.core.management.base import CommandError
    from django.db import OperationalError

    for attempt in range(attempts):
        try:
            call_command("flush", verbosity=0, interactive=False)
            return
        except (CommandError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _quiesce(stack, timeout=10):
    """Wait until no task is queued or being worked on (the broker's queues and unacked set are empty)."""
    import redis

    client = redis.Redis.from_url(stack.redis_url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            queued = sum(client.llen(q) for q in ("default", "inbound", "sms", "ai", "emr", "periodic"))
            if not queued and not client.hlen("unacked"):
                return
            time.sleep(0.1)
    finally:
        client.close()


@pytest.fixture
def transcript(request):
    doc = (request.node.function.__doc__ or "").strip()
    title, _, summary = doc.partition("\n\n")
    record = report.Transcript(
        nodeid=request.node.nodeid, title=" ".join(title.split()), summary=" ".join(summary.split())
    )
    request.node.stash[TRANSCRIPT] = record
    return record


@pytest.fixture
def clinic_factory(e2e):
    def build(emr="nextech", label=""):
        return make_clinic(e2e, emr=emr, label=label)

    return build


@pytest.fixture
def patient_factory(e2e, transcript):
    patients = []

    def build(setup, **kwargs):
        patient = Patient(e2e, setup, transcript, **kwargs)
        patients.append(patient)
        return patient

    yield build
    for patient in patients:
        patient.close()


# --- Outcomes, failure logs and the results document --------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    result = outcome.get_result()
    record = item.stash.get(TRANSCRIPT, None)
    if record is None:
        return
    if result.when == "call" or (result.when == "setup" and result.outcome != "passed"):
        if hasattr(result, "wasxfail"):
            record.outcome = "xfailed" if result.skipped else "xpassed"
            record.reason = result.wasxfail.removeprefix("reason: ")
        else:
            record.outcome = result.outcome
        record.seconds = time.monotonic() - record.started
        transcripts = item.config.stash.setdefault(TRANSCRIPTS, [])
        if record not in transcripts:
            transcripts.append(record)
    if result.failed and "stack" in STACK:
        result.sections.append(("e2e process logs (tails)", STACK["stack"].logs(40)))


def pytest_sessionfinish(session, exitstatus):
    path = report.report_path()
    transcripts = session.config.stash.get(TRANSCRIPTS, [])
    if not path or not transcripts:
        return
    report.write(path, transcripts, stack=STACK.get("stack"), wall_seconds=time.monotonic() - RUN_STARTED)
