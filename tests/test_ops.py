"""Operator endpoints: liveness, readiness per dependency, metrics, the OpenAPI schema and its page."""

import pytest
from django.core.cache import cache

from medspa import health


def test_healthz(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_checks_database_and_redis_when_configured(client, db, settings):
    response = client.get("/readyz")
    assert response.status_code == 200
    checks = response.json()["checks"]
    assert checks["database"]["status"] == "ok"
    assert ("redis" in checks) == bool(settings.REDIS_URL)


def test_readyz_names_the_failing_dependency(client, db, monkeypatch):
    def broken():
        raise ConnectionError("refused")

    monkeypatch.setattr(health, "_check_database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == {
        "status": "error",
        "error": "ConnectionError",
        "ms": body["checks"]["database"]["ms"],
    }


def test_readyz_reports_redis_down(client, db, settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": settings.REDIS_URL}
    }
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "error"
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.skipif(not __import__("django.conf").conf.settings.REDIS_URL, reason="needs REDIS_URL")
def test_cache_is_redis_when_configured(db):
    from django.core.cache import caches

    cache.set("probe", 1)
    assert type(caches["default"]).__name__ == "RedisCache" and cache.get("probe") == 1


def test_metrics_exposes_lead_counters_without_patient_data(client, api_client, db):
    api_client.post("/api/leads", {"clinic": "nope", "name": "Jane Doe", "phone": "+16175550123"}, format="json")
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'medspa_lead_submissions_total{outcome="invalid"}' in text
    assert "django_http_requests_total_by_method_total" in text
    assert "Jane" not in text and "5550123" not in text


def test_openapi_schema_and_docs(admin_client):
    """For staff (anyone else: tests/test_csp.py, API_DOCS_PUBLIC)."""
    client = admin_client
    response = client.get("/api/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/leads",
        "/api/clinics/{slug}/leads",
        "/api/clinics/{slug}/bookings",
        "/api/clinics/{slug}/conversations",
    } <= set(schema["paths"])
    assert "post" in schema["paths"]["/api/leads"]
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    # Served from our own static files (drf-spectacular-sidecar), not a CDN: works offline and under a strict CSP.
    assert b"cdn.jsdelivr" not in docs.content


def test_admin_login_page(client, db):
    response = client.get("/admin/login/")
    assert response.status_code == 200 and b"Medspa front desk" in response.content
