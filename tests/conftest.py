import os
import re
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

# A Redis cache nothing listens on (port 1 on this machine): every call raises redis.ConnectionError at once.
DEAD_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:1/0"}
}

# What a log holds by chance: task ids (random UUIDs) and task run times ("succeeded in 0.0162737s").
_RANDOM_IN_LOGS = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|\b\d+\.\d+s\b")


def log_text(caplog) -> str:
    """The captured log with its random ids and run times blanked out.

    A test that looks for a fragment of a patient's number ("617", "0123") must not fail because a task id
    happened to hold the same digits (one did: "61766897-ab6c-...").
    """
    return _RANDOM_IN_LOGS.sub("<random>", caplog.text)


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


def pytest_terminal_summary(terminalreporter, config):
    """pytest-randomly's seed in the summary as well as the header, which -q hides: a failure that depends on the
    order is reproduced with the same seed (docs/DECISIONS.md)."""
    if config.pluginmanager.hasplugin("randomly"):
        seed = config.option.randomly_seed
        terminalreporter.write_line(f"random test order (pytest-randomly); this order again: --randomly-seed={seed}")


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
    """Each test starts with an empty cache (throttles, CORS origins, knowledge search results), locmem or Redis
    alike, and without the search indexes a previous test built in this process from rows since rolled back."""
    from django.core.cache import cache

    from knowledge import services as knowledge

    cache.clear()
    knowledge._indexes.clear()


@pytest.fixture(autouse=True)
def _fast_password_hasher(request):
    """MD5 for the passwords this process hashes: PBKDF2's million rounds take about half a second a hash here,
    and every staff user, superuser and login attempt (the lockout tests make dozens) pays it. Not for the e2e
    tests, whose servers run the real settings and must check the passwords the test writes."""
    if request.node.get_closest_marker("e2e"):
        yield
        return
    from django.test import override_settings

    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


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


@pytest.fixture(scope="session")
def _demo_rows(django_db_setup, django_db_blocker):
    """Every row that `seed_knowledge` adds to the empty test database, as ``[(model, [field values])]``, parents
    before children. Loaded once per session, inside a transaction that is rolled back: the database itself stays
    empty, so tests that do not ask for ``demo`` (and the transactional ones, which flush) see no demo clinic."""
    from django.apps import apps
    from django.core.management import call_command
    from django.db import transaction

    models = [m for m in apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy]
    with django_db_blocker.unblock(), transaction.atomic():
        existing = {m: set(m._base_manager.values_list("pk", flat=True)) for m in models}
        call_command("seed_knowledge", verbosity=0)
        added = {}
        for model in models:
            pk = model._meta.pk.attname
            rows = [row for row in model._base_manager.order_by("pk").values() if row[pk] not in existing[model]]
            if rows:
                added[model] = rows
        transaction.set_rollback(True)
    ordered = []
    while added:  # parents first: a model goes once every model it points to is placed
        ready = [
            m for m in added if not any(f.related_model in added and f.related_model is not m for f in _foreign_keys(m))
        ]
        assert ready, f"a cycle of foreign keys among {sorted(m._meta.label for m in added)}"
        for model in ready:
            ordered.append((model, added.pop(model)))
    return ordered


def _foreign_keys(model):
    fields = [f for f in model._meta.concrete_fields if f.many_to_one or f.one_to_one]
    assert not model._meta.pk.is_relation, f"{model._meta.label}: a primary key that is a relation"
    assert all(f.target_field.primary_key for f in fields), f"{model._meta.label}: a foreign key to a non-key field"
    return fields


@pytest.fixture
def demo(_demo_rows, db):
    """The demo clinic, as `make run` loads it (fixtures/demo-clinic.json): the rows `seed_knowledge` wrote once
    per session (``_demo_rows``), inserted again for this test under fresh primary keys, foreign keys following.
    Inserting is what the load ends in anyway; the parsing, lookups and indexing it spends its time on are not
    repeated. Timestamps (auto_now, auto_now_add) are this test's now, as if it had loaded the file itself.
    tests/test_clinic_file.py checks that a load after this one finds nothing to change."""
    import copy

    from django.db import connection

    assert connection.features.can_return_rows_from_bulk_insert, "bulk_create must return the new primary keys"
    new_pk = {}  # (model, primary key in _demo_rows) -> this test's primary key
    for model, rows in _demo_rows:
        foreign_keys, pk = _foreign_keys(model), model._meta.pk.attname
        objects = []
        for values in rows:
            values = copy.deepcopy(values)
            values.pop(pk)
            for field in foreign_keys:
                old = values.get(field.attname)
                if (field.related_model, old) in new_pk:
                    values[field.attname] = new_pk[field.related_model, old]
            objects.append(model(**values))
        for values, obj in zip(rows, model._base_manager.bulk_create(objects), strict=True):
            new_pk[model, values[pk]] = obj.pk
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
