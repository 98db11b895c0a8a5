"""POST /api/leads: good input is stored with its consent record; bad input gets a 4xx with a reason per field."""

import json

import pytest
from django.core.cache import cache

from leads.models import Lead
from medspa.models import AuditEvent

from .conftest import CONSENT, DEAD_CACHE, log_text, make_clinic, make_service

URL = "/api/leads"


@pytest.fixture
def clinic(db):
    clinic = make_clinic(
        "demo-clinic-001", website="https://www.glow.example.com", allowed_origins=["https://book.glow.example.com"]
    )
    make_service(clinic, name="Botox", aliases=["tox", "wrinkle relaxer"])
    return clinic


def good(**overrides):
    return {
        "clinic": "demo-clinic-001",
        "name": "  Jane   Doe ",
        "phone": "(617) 555-0123",
        "email": "Jane@Example.com",
        "service_of_interest": "tox",
        "message": "Do you have anything Thursday?",
        "sms_consent": True,
        "consent_text": CONSENT,
        "source_url": "https://www.glow.example.com/contact",
        **overrides,
    }


def post(api_client, data, **headers):
    return api_client.post(URL, data=json.dumps(data), content_type="application/json", **headers)


def test_good_lead_is_stored_with_consent_record(api_client, clinic):
    response = post(api_client, good(), HTTP_USER_AGENT="Mozilla/5.0 test", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 201, response.content
    lead = Lead.objects.get(pk=response.json()["id"])
    assert response.json() == {"id": lead.pk, "duplicate": False}
    assert (lead.clinic, lead.name, lead.phone, lead.email) == (clinic, "Jane Doe", "+16175550123", "jane@example.com")
    assert lead.service_of_interest.name == "Botox" and lead.service_text == "tox"
    assert lead.message == "Do you have anything Thursday?"
    assert lead.source == Lead.Source.WEB_FORM and lead.source_url == "https://www.glow.example.com/contact"
    assert lead.sms_consent and lead.consent_text == CONSENT and lead.consent_at is not None
    assert (lead.consent_ip, lead.consent_user_agent) == ("203.0.113.9", "Mozilla/5.0 test")


def test_form_encoded_and_trailing_slash(api_client, clinic):
    data = {**good(), "sms_consent": "on"}
    response = api_client.post(URL + "/", data)  # multipart, as a plain HTML form posts
    assert response.status_code == 201
    response = api_client.post(
        URL, "clinic=demo-clinic-001&name=Sam&phone=6175550124", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 201
    lead = Lead.objects.get(pk=response.json()["id"])
    assert (lead.phone, lead.sms_consent, lead.consent_at) == ("+16175550124", False, None)


def test_older_field_names_are_accepted(api_client, clinic):
    data = good()
    data["clinic_slug"], data["service"] = data.pop("clinic"), data.pop("service_of_interest")
    assert post(api_client, data).status_code == 201


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"phone": "12345"}, "phone", "valid phone number"),
        ({"phone": "+1 555 555 0100"}, "phone", "does not exist"),
        ({"phone": "call me maybe"}, "phone", "valid phone number"),
        ({"clinic": "no-such-clinic"}, "clinic", "Unknown clinic"),
        ({"consent_text": ""}, "consent_text", "consent wording"),
        ({"email": "not-an-email"}, "email", "valid email"),
        ({"name": "   "}, "name", "name"),
        ({"message": "x" * 1601}, "message", "1600"),
        ({"source_url": "javascript:alert(1)"}, "source_url", "valid URL"),
    ],
)
def test_bad_field_gets_400_naming_it(api_client, clinic, overrides, field, fragment):
    response = post(api_client, good(**overrides))
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    assert fragment.lower() in " ".join(body[field]).lower()
    assert Lead.objects.count() == 0


def test_missing_fields_are_each_named(api_client, clinic):
    response = post(api_client, {})
    assert response.status_code == 400
    assert {"clinic", "name", "phone"} <= set(response.json())


def test_inactive_clinic_is_unknown(api_client, clinic):
    clinic.active = False
    clinic.save()
    response = post(api_client, good())
    assert response.status_code == 400 and "clinic" in response.json()


def test_wrong_content_type_is_415(api_client, clinic):
    response = api_client.post(URL, data="name=Jane", content_type="text/plain")
    assert response.status_code == 415
    assert "text/plain" in response.json()["detail"]


def test_malformed_json_is_400(api_client, clinic):
    response = api_client.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


@pytest.mark.parametrize("body", [[1, 2], "just a string"])
def test_json_that_is_not_an_object_is_400(api_client, clinic, body):
    response = post(api_client, body)
    assert response.status_code == 400
    assert Lead.objects.count() == 0


def test_one_megabyte_body_is_refused_before_parsing(api_client, clinic):
    response = post(api_client, good(message="x" * (1024 * 1024)))
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert Lead.objects.count() == 0


def test_duplicate_submission_returns_the_first_lead(api_client, clinic):
    first = post(api_client, good())
    second = post(api_client, good(name="Jane Doe", phone="+1 617-555-0123"))  # same person, spelled differently
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json() == {"id": first.json()["id"], "duplicate": True}
    assert Lead.objects.count() == 1
    # A different message is a new lead.
    assert post(api_client, good(message="Actually, Friday?")).status_code == 201
    assert Lead.objects.count() == 2


def test_duplicate_window_expires(api_client, clinic, time_machine):
    time_machine.move_to("2026-11-24 15:00:00+00:00", tick=False)
    assert post(api_client, good()).status_code == 201
    time_machine.move_to("2026-11-24 15:11:00+00:00", tick=False)
    assert post(api_client, good()).status_code == 201
    assert Lead.objects.count() == 2


def test_rate_limited_per_ip(api_client, clinic, settings):
    for n in range(10):
        assert post(api_client, good(phone=f"+1617555{n:04d}"), REMOTE_ADDR="198.51.100.7").status_code == 201
    response = post(api_client, good(phone="+16175559999"), REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429
    assert "Retry-After" in response.headers
    # Another address is not affected; X-Forwarded-For from a client (no trusted proxy) does not dodge the limit.
    assert post(api_client, good(phone="+16175559998"), REMOTE_ADDR="198.51.100.8").status_code == 201
    spoofed = post(api_client, good(phone="+16175559997"), REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert spoofed.status_code == 429
    assert Lead.objects.count() == 11


def test_rate_limit_uses_forwarded_address_behind_trusted_proxy(api_client, clinic, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = post(api_client, good(), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="spoof, 203.0.113.50")
    assert response.status_code == 201
    assert Lead.objects.get().consent_ip == "203.0.113.50"


class TestCors:
    def preflight(self, api_client, origin):
        return api_client.options(
            URL,
            HTTP_ORIGIN=origin,
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
            HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type",
        )

    def test_clinic_website_and_listed_origins_are_allowed(self, api_client, clinic):
        for origin in ("https://www.glow.example.com", "https://book.glow.example.com"):
            response = self.preflight(api_client, origin)
            assert response.headers.get("Access-Control-Allow-Origin") == origin
            response = post(
                api_client, good(phone="+16175550177" if "book" in origin else "+16175550178"), HTTP_ORIGIN=origin
            )
            assert response.status_code == 201
            assert response.headers.get("Access-Control-Allow-Origin") == origin

    def test_unknown_origin_gets_no_cors_headers(self, api_client, clinic):
        response = self.preflight(api_client, "https://evil.example.net")
        assert "Access-Control-Allow-Origin" not in response.headers

    def test_other_clinics_website_cannot_post_this_clinics_leads(self, api_client, clinic):
        make_clinic("other-clinic", website="https://other.example.org")
        cache.clear()
        response = post(api_client, good(), HTTP_ORIGIN="https://other.example.org")
        assert response.status_code == 403
        assert "may not send leads" in response.json()["detail"]
        assert Lead.objects.count() == 0

    def test_cors_is_only_on_the_lead_endpoint(self, api_client, clinic):
        response = api_client.options(
            "/api/clinics/demo-clinic-001/leads",
            HTTP_ORIGIN="https://www.glow.example.com",
            HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        )
        assert "Access-Control-Allow-Origin" not in response.headers


def test_get_is_not_allowed(api_client, clinic):
    assert api_client.get(URL).status_code == 405


def test_no_patient_data_in_logs(api_client, clinic, caplog):
    caplog.set_level("DEBUG")
    post(api_client, good())
    post(api_client, good(phone="nope"))
    text = log_text(caplog)
    assert "lead created" in text
    for secret in ("Jane", "617", "5550123", "555-0123", "example.com", "Thursday"):
        assert secret not in text


def test_lead_creation_is_not_an_audit_event_but_staff_views_are(client, api_client, clinic):
    from .conftest import make_staff

    lead_id = post(api_client, good()).json()["id"]
    assert not AuditEvent.objects.exists()
    staff = make_staff("front-desk", clinic)
    client.force_login(staff)
    assert client.get(f"/admin/leads/lead/{lead_id}/change/").status_code == 200
    event = AuditEvent.objects.get(action="view")
    assert (event.object_type, event.object_id, event.actor, event.clinic_id) == (
        "leads.lead",
        str(lead_id),
        "front-desk",
        clinic.pk,
    )


def test_a_lead_is_taken_while_the_cache_is_down(api_client, clinic, settings, caplog):
    """Redis down (nothing listens on port 1): the rate limit and the CORS list are skipped, the lead is stored."""
    settings.CACHES = DEAD_CACHE
    response = post(api_client, good(), HTTP_ORIGIN="https://www.glow.example.com")
    assert response.status_code == 201, response.content
    assert Lead.objects.filter(pk=response.json()["id"]).exists()
    assert "lead rate limit skipped: the cache is unavailable (ConnectionError)" in caplog.text
