"""Security baseline for patient data: encrypted secrets, append-only audit, login lockout, sessions, logs."""

import logging

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connection, transaction
from django.test import RequestFactory

from medspa import fields
from medspa.fields import EncryptedTextField
from medspa.logging import PatientSafeExceptionReporterFilter, RedactPatientDataFilter, redact
from medspa.models import AuditEvent

from .conftest import make_clinic, make_staff


class TestEncryptedTextField:
    def field(self):
        field = EncryptedTextField()
        field.set_attributes_from_name("access_token")
        field.model = AuditEvent  # any model: only used in the error message
        return field

    def test_round_trip_and_nothing_readable_at_rest(self, settings):
        field = self.field()
        stored = field.get_prep_value("sq0atp-SECRET-token")
        assert "SECRET" not in stored and stored != field.get_prep_value("sq0atp-SECRET-token")  # random IV
        assert field.from_db_value(stored, None, connection) == "sq0atp-SECRET-token"
        assert field.get_prep_value("") == "" and field.get_prep_value(None) is None

    def test_rotation_old_key_still_decrypts(self, settings):
        field = self.field()
        old = Fernet.generate_key().decode()
        settings.FIELD_ENCRYPTION_KEY = old
        stored = field.get_prep_value("token")
        settings.FIELD_ENCRYPTION_KEY = f"{Fernet.generate_key().decode()},{old}"
        assert field.from_db_value(stored, None, connection) == "token"
        rotated = field.get_prep_value("token")
        settings.FIELD_ENCRYPTION_KEY = settings.FIELD_ENCRYPTION_KEY.split(",")[0]
        assert field.from_db_value(rotated, None, connection) == "token"

    def test_wrong_key_raises_instead_of_returning_ciphertext(self, settings):
        field = self.field()
        stored = field.get_prep_value("token")
        settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
        with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
            field.from_db_value(stored, None, connection)

    def test_malformed_key_is_a_clear_configuration_error(self, settings):
        settings.FIELD_ENCRYPTION_KEY = "not-a-key"
        with pytest.raises(ImproperlyConfigured, match="Fernet"):
            fields.fernet()


class TestAuditLog:
    @pytest.fixture
    def event(self, db):
        return AuditEvent.objects.create(clinic=make_clinic("c"), actor="x", action="view", object_type="leads.lead")

    def test_model_refuses_update_and_delete(self, event):
        event.actor = "someone else"
        with pytest.raises(PermissionError):
            event.save()
        with pytest.raises(PermissionError):
            event.delete()
        with pytest.raises(PermissionError):
            AuditEvent.objects.all().delete()
        with pytest.raises(PermissionError):
            AuditEvent.objects.update(actor="y")

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigger is PostgreSQL's")
    def test_database_refuses_update_and_delete(self, event):
        for sql in ("UPDATE medspa_auditevent SET actor = 'y'", "DELETE FROM medspa_auditevent"):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as c:
                c.execute(sql)
        assert AuditEvent.objects.get(pk=event.pk).actor == "x"

    def test_admin_is_read_only_even_for_superusers(self, admin_client, event):
        assert admin_client.get(f"/admin/medspa/auditevent/{event.pk}/change/").status_code == 200
        admin_client.post(f"/admin/medspa/auditevent/{event.pk}/change/", {"actor": "edited"})
        assert admin_client.get("/admin/medspa/auditevent/add/").status_code == 403
        assert admin_client.post(f"/admin/medspa/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
        assert AuditEvent.objects.get(pk=event.pk).actor == "x"

    def test_staff_changes_are_recorded_by_field_name_not_value(self, client, db):
        from leads.services import lead_create

        clinic = make_clinic("c")
        lead, _ = lead_create(clinic=clinic, name="Pat", phone="+16175550123")
        client.force_login(make_staff("desk", clinic))
        response = client.post(
            f"/admin/leads/lead/{lead.pk}/change/",
            {"name": "Pat Smith", "phone": "+16175550123", "email": "", "message": ""},
        )
        assert response.status_code == 302
        change = AuditEvent.objects.get(action="change")
        assert change.detail == {"fields": ["name"]} and change.ip_address == "127.0.0.1"
        assert "Smith" not in str(AuditEvent.objects.values_list())


@pytest.mark.django_db
def test_admin_login_locks_out_after_repeated_failures(client, settings):
    make_staff("desk")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "desk", "password": "wrong-password"})
    response = client.post("/admin/login/", {"username": "desk", "password": "a-long-test-password-1"})
    assert response.status_code == 429  # locked out even with the right password
    assert not response.wsgi_request.user.is_authenticated


@pytest.mark.django_db
def test_admin_login_works_with_right_password(client):
    make_staff("desk")
    response = client.post("/admin/login/?next=/admin/", {"username": "desk", "password": "a-long-test-password-1"})
    assert response.status_code == 302 and response.url == "/admin/"


def test_sessions_expire_when_idle(settings):
    assert settings.SESSION_COOKIE_AGE <= 60 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST and settings.SESSION_EXPIRE_AT_BROWSER_CLOSE


def test_weak_staff_passwords_are_refused():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        validate_password("medspa2026")


@pytest.mark.parametrize(
    "text",
    ["+16175550123", "(617) 555-0123", "617-555-0123", "617.555.0123", "1 617 555 0123", "jane.doe+spa@example.com"],
)
def test_log_redaction(text):
    assert redact(f"lead from {text} received") in ("lead from [phone] received", "lead from [email] received")


def test_log_filter_redacts_arguments_but_keeps_ids(caplog):
    logger = logging.getLogger("medspa.test")
    record = logger.makeRecord(
        "medspa.test", logging.INFO, __file__, 1, "inbound %s from %s lead=%s", ("x", "+16175550123", 42), None
    )
    RedactPatientDataFilter().filter(record)
    assert record.getMessage() == "inbound x from [phone] lead=42"


def test_error_reports_hide_posted_values():
    request = RequestFactory().post("/api/leads?phone=6175550123", {"name": "Jane", "phone": "+16175550123"})
    reporter = PatientSafeExceptionReporterFilter()
    assert set(reporter.get_post_parameters(request).values()) == {reporter.cleansed_substitute}
    assert reporter.get_safe_request_meta(request)["QUERY_STRING"] == reporter.cleansed_substitute
