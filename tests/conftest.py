import os
from datetime import datetime, time
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from medspa.models import Clinic, ClinicMembership, Service

CONSENT = (
    "By checking this box I agree to receive appointment texts from {clinic}. "
    "Msg & data rates may apply. Reply STOP to opt out."
)


CLOCK_ZONE = ZoneInfo("America/New_York")


def pytest_addoption(parser):
    parser.addoption(
        "--clock",
        default=os.environ.get("TEST_CLOCK", ""),
        help="Pin 'now' for every test (not the e2e ones, whose servers keep the real clock): HH:MM in Boston on "
        "today's date, or an ISO date-time (a naive one is Boston time). Env TEST_CLOCK. The clock ticks from there. "
        "Proves the suite passes at any hour: .ci/run runs it at 02:30.",
    )


def pinned_clock(value: str) -> datetime | None:
    """``--clock`` as an aware date-time, or None when the real clock is used."""
    if not value:
        return None
    if len(value) <= 5 and ":" in value:
        hour, minute = (int(part) for part in value.split(":"))
        return datetime.combine(datetime.now(CLOCK_ZONE).date(), time(hour, minute), tzinfo=CLOCK_ZONE)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=CLOCK_ZONE)


def pytest_report_header(config):
    moment = pinned_clock(config.getoption("--clock"))
    return f"clock pinned at {moment.isoformat()} (--clock / TEST_CLOCK)" if moment else None


@pytest.fixture(autouse=True)
def _pinned_clock(request):
    """With ``--clock``, each test starts at that moment (a test may still travel elsewhere itself)."""
    moment = pinned_clock(request.config.getoption("--clock"))
    if moment is None or any(request.node.get_closest_marker(m) for m in ("e2e", "worker", "real_clock")):
        yield
        return
    with time_machine.travel(moment, tick=True):
        yield


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test starts with an empty cache (throttles, CORS origins), locmem or Redis alike."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(autouse=True)
def _eager_tasks():
    """Tasks run in the test's process, with or without REDIS_URL; tests/test_worker.py runs a real worker."""
    from medspa.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


@pytest.fixture(autouse=True)
def sms_outbox(settings):
    """Texts go to the locmem backend's outbox (like mail.outbox); tests can queue failures in locmem.failures."""
    from messaging.backends import locmem

    settings.SMS_BACKEND = "locmem"
    locmem.reset()
    yield locmem.outbox
    locmem.reset()


@pytest.fixture
def demo(db):
    """The demo clinic, loaded the way `make run` loads it (fixtures/demo-clinic.json)."""
    from django.core.management import call_command

    call_command("seed_knowledge", verbosity=0)
    return Clinic.objects.get(slug="demo-clinic-001")


def make_clinic(slug, **extra):
    defaults = {
        "name": slug.replace("-", " ").title(),
        "timezone": "America/New_York",
        "website": f"https://{slug}.example.com",
        "front_desk_phone": "+16175550100",
    }
    return Clinic.objects.create(slug=slug, **{**defaults, **extra})


def make_service(clinic, name="Botox", **extra):
    defaults = {
        "price_type": Service.PriceType.PER_UNIT,
        "price_cents": 1200,
        "unit_name": "unit",
        "typical_units_min": 20,
        "typical_units_max": 30,
        "deposit_cents": 5000,
        "aliases": ["tox"],
    }
    return Service.objects.create(clinic=clinic, name=name, **{**defaults, **extra})


def make_staff(username, *clinics, role=ClinicMembership.Role.MANAGER, all_permissions=True):
    user = User.objects.create_user(username=username, password="a-long-test-password-1", is_staff=True)
    if all_permissions:
        # Every model permission there is: only tenant scoping stands between this user and other clinics.
        user.user_permissions.set(Permission.objects.all())
    for clinic in clinics:
        ClinicMembership.objects.create(user=user, clinic=clinic, role=role)
    return User.objects.get(pk=user.pk)


@pytest.fixture
def clinic_a(db):
    return make_clinic("clinic-a")


@pytest.fixture
def clinic_b(db):
    return make_clinic("clinic-b")


@pytest.fixture
def staff_a(clinic_a):
    return make_staff("staff-a", clinic_a)


def _committing(client_class, capture):
    """A test client whose requests run their on-commit callbacks (enqueued tasks run eagerly), as in production
    where the request's transaction commits. Without this, pytest-django's per-test transaction never commits."""

    class CommittingClient(client_class):
        def request(self, *args, **kwargs):
            with capture(execute=True):
                return super().request(*args, **kwargs)

    return CommittingClient


@pytest.fixture
def client(django_capture_on_commit_callbacks):
    from django.test import Client

    return _committing(Client, django_capture_on_commit_callbacks)()


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def api_client(django_capture_on_commit_callbacks):
    return _committing(APIClient, django_capture_on_commit_callbacks)()


@pytest.fixture
def token_client(django_capture_on_commit_callbacks):
    def build(user):
        client = _committing(APIClient, django_capture_on_commit_callbacks)()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
        return client

    return build


@pytest.fixture
def llm(settings):
    """The openai engine, talking to a local fake OpenAI server (tests/fakes/openai.py) that the test scripts."""
    from .fakes.openai import FakeOpenAI

    fake = FakeOpenAI().start()
    settings.CONVERSATION_ENGINE = "openai"
    settings.OPENAI_API_KEY = "sk-test"
    settings.OPENAI_BASE_URL = fake.url
    settings.OPENAI_MAX_RETRIES = 0
    settings.OPENAI_TIMEOUT_SECONDS = 3
    yield fake
    fake.stop()
