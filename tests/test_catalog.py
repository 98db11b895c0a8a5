"""The tenant core's rules: prices as data, deposits, sending windows, phone numbers."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from medspa.models import Clinic, Service
from medspa.phones import normalize_phone

from .conftest import make_clinic, make_service


@pytest.fixture
def clinic(db):
    return make_clinic("c")


@pytest.mark.parametrize(
    ("fields", "text"),
    [
        (
            {
                "price_type": "per_unit",
                "price_cents": 1200,
                "unit_name": "unit",
                "typical_units_min": 20,
                "typical_units_max": 30,
            },
            "$12 per unit (most treatments use 20-30 units, about $240-$360)",
        ),
        (
            {
                "price_type": "per_unit",
                "price_cents": 450,
                "unit_name": "unit",
                "typical_units_min": None,
                "typical_units_max": None,
            },
            "$4.50 per unit",
        ),
        (
            {"price_type": "range", "price_cents": 65000, "price_max_cents": 85000, "unit_name": "syringe"},
            "$650-$850 per syringe",
        ),
        ({"price_type": "fixed", "price_cents": 19900, "unit_name": ""}, "$199"),
        (
            {"price_type": "fixed", "price_cents": 0, "unit_name": ""},
            "free",
        ),  # a free consultation is said "free", never "$0"
        ({"price_type": "consult", "price_cents": None, "unit_name": ""}, "priced at a consultation"),
    ],
)
def test_price_text_comes_only_from_the_fields(clinic, fields, text):
    defaults = {"typical_units_min": None, "typical_units_max": None, "price_max_cents": None}
    service = Service(clinic=clinic, name="S", **{**defaults, **fields})
    service.full_clean()
    assert service.price_text() == text


@pytest.mark.parametrize(
    ("fields", "error_field"),
    [
        ({"price_type": "fixed", "price_cents": None}, "price_cents"),
        ({"price_type": "range", "price_cents": 500, "price_max_cents": 400}, "price_max_cents"),
        ({"price_type": "per_unit", "price_cents": 1200, "unit_name": ""}, "unit_name"),
        ({"price_type": "consult", "price_cents": 1000}, "price_cents"),
        (
            {"price_type": "fixed", "price_cents": 100, "typical_units_min": 30, "typical_units_max": 20},
            "typical_units_max",
        ),
    ],
)
def test_inconsistent_prices_are_refused(clinic, fields, error_field):
    with pytest.raises(ValidationError) as exc:
        Service(clinic=clinic, name="S", **fields).full_clean()
    assert error_field in exc.value.message_dict


def test_database_refuses_inconsistent_prices_too(clinic):
    with pytest.raises(IntegrityError), transaction.atomic():
        Service.objects.create(clinic=clinic, name="S", price_type="range", price_cents=500, price_max_cents=None)


def test_deposit_for_new_and_returning_clients(clinic):
    service = make_service(clinic, deposit_cents=5000, deposit_new_clients_only=True)
    assert service.deposit_for(new_client=True) == 5000 and service.deposit_for(new_client=False) == 0
    service.deposit_new_clients_only = False
    assert service.deposit_for(new_client=False) == 5000


def test_service_matches_name_and_aliases(clinic):
    service = make_service(clinic, name="Botox", aliases=["tox", "wrinkle relaxer"])
    assert service.matches("BOTOX") and service.matches("  wrinkle   relaxer ") and not service.matches("filler")


def test_service_names_are_unique_per_clinic(clinic):
    make_service(clinic, name="Botox")
    make_service(make_clinic("other"), name="Botox")
    with pytest.raises(IntegrityError), transaction.atomic():
        make_service(clinic, name="Botox")


def test_sending_window_can_narrow_but_not_widen_the_federal_one(clinic):
    from datetime import time

    clinic.sending_window_start, clinic.sending_window_end = time(9), time(20)
    clinic.full_clean()
    clinic.sending_window_start = time(7, 30)
    with pytest.raises(ValidationError):
        clinic.full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        clinic.save()


def test_clinic_rejects_unknown_time_zone_and_bad_phone(clinic):
    clinic.timezone, clinic.front_desk_phone = "Mars/Olympus", "617-555-0100"
    with pytest.raises(ValidationError) as exc:
        clinic.full_clean()
    assert {"timezone", "front_desk_phone"} <= set(exc.value.message_dict)


def test_intro_and_help_are_filled_in(clinic):
    clinic.name, clinic.front_desk_phone, clinic.website = "Glow", "+16175550100", "https://glow.example.com"
    assert clinic.render_intro().startswith("Hi, this is Glow.")
    help_text = clinic.render_help()
    for needed in ("Glow", "+16175550100", "STOP", "Msg & data rates may apply", "frequency"):
        assert needed in help_text


def test_lead_origins_are_normalised(clinic):
    clinic.website, clinic.allowed_origins = "https://WWW.Glow.example.com/contact", ["http://localhost:3000/x", "junk"]
    assert clinic.lead_origins() == {"https://www.glow.example.com", "http://localhost:3000"}


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("(617) 555-0123", "+16175550123"),
        ("617.555.0123", "+16175550123"),
        ("+1 617 555 0123", "+16175550123"),
        ("+44 20 7946 0958", "+442079460958"),
    ],
)
def test_normalize_phone(raw, e164):
    assert normalize_phone(raw) == e164


def test_clinic_queryset_for_user_scopes_by_membership(clinic, django_user_model):
    from .conftest import make_staff

    other = make_clinic("other")
    staff = make_staff("s", clinic)
    assert list(Clinic.objects.for_user(staff)) == [clinic]
    assert list(Service.objects.for_user(staff)) == []
    make_service(other)
    assert list(Service.objects.for_user(staff)) == []
    superuser = django_user_model.objects.create_superuser("root", password="x" * 16)
    assert set(Clinic.objects.for_user(superuser)) == {clinic, other}
