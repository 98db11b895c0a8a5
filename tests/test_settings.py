"""The one settings module: embedded defaults without variables, real services with them, a clean deploy check."""

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.core.checks import run_checks

ROOT = Path(__file__).resolve().parent.parent
PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; from medspa.celery import app;"
    "print(json.dumps({'db': s.DATABASES['default']['ENGINE'], 'cache': s.CACHES['default']['BACKEND'],"
    "'eager': app.conf.task_always_eager, 'broker': app.conf.broker_url, 'debug': s.DEBUG}))"
)
CLEAN_ENV = {
    k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY"))
}


def run(code_or_args, **env):
    args = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else [sys.executable, *code_or_args]
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**CLEAN_ENV, "DJANGO_SETTINGS_MODULE": "medspa.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_embedded_defaults_without_variables():
    result = run(PROBE)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.sqlite3",
        "cache": "django.core.cache.backends.locmem.LocMemCache",
        "eager": True,
        "broker": "memory://localhost/",
        "debug": True,
    }


def test_real_services_with_variables():
    result = run(PROBE, DATABASE_URL="postgres://postgres@127.0.0.1:5432/medspa", REDIS_URL="redis://127.0.0.1:6379/3")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "db": "django.db.backends.postgresql",
        "cache": "medspa.cache.RedisCache",
        "eager": False,
        "broker": "redis://127.0.0.1:6379/3",
        "debug": True,
    }


PRODUCTION = {
    "DEBUG": "False",
    "SECRET_KEY": "k" * 20 + "-production-secret-key-with-enough-entropy-9f8e7d6c5b4a",
    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "frontdesk.example.com",
    "PUBLIC_BASE_URL": "https://frontdesk.example.com",
    "METRICS_TOKEN": "prometheus-scrape-token-0123456789abcdef",
}


def test_deploy_check_is_clean_in_production():
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deploy_check_refuses_development_secrets():
    env = {**PRODUCTION, "SECRET_KEY": "", "FIELD_ENCRYPTION_KEY": ""}
    env = {k: v for k, v in env.items() if v}
    result = run(["manage.py", "check", "--deploy"], **env)
    assert result.returncode != 0
    assert "medspa.E001" in result.stderr and "medspa.E002" in result.stderr


def test_secret_from_file(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("from-a-file-secret\n")
    result = run(
        "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)",
        SECRET_KEY_FILE=str(secret),
    )
    assert result.stdout.strip() == "from-a-file-secret"


@pytest.mark.parametrize(
    ("configured", "missing", "check_id"),
    [
        ({"TELNYX_API_KEY": "KEY"}, "TELNYX_PUBLIC_KEY", "medspa.W101"),
        ({"TWILIO_ACCOUNT_SID": "AC1"}, "TWILIO_AUTH_TOKEN", "medspa.W102"),
        ({"SQUARE_ACCESS_TOKEN": "EAAA"}, "SQUARE_WEBHOOK_SIGNATURE_KEY", "medspa.W103"),
    ],
)
def test_provider_without_webhook_secret_warns(settings, configured, missing, check_id):
    for name, value in configured.items():
        setattr(settings, name, value)
    setattr(settings, missing, "")
    messages = [m for m in run_checks() if m.id == check_id]
    assert len(messages) == 1 and missing in messages[0].msg
    setattr(settings, missing, "the-secret")
    assert not [m for m in run_checks() if m.id == check_id]


@pytest.mark.parametrize("hour", [8, 21])
def test_the_sending_window_defaults_pass_the_checks_at_their_own_hour(hour):
    """A fixed time default makes Django warn (fields.W161) within 10 s of it: `check --deploy` failed at 21:00."""
    import time_machine

    from medspa.models import Clinic

    with time_machine.travel(datetime(2026, 12, 3, hour, 0, 3, tzinfo=UTC), tick=False):
        for name in ("sending_window_start", "sending_window_end"):
            assert Clinic._meta.get_field(name).check() == []
