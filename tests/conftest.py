import pytest
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from medspa.models import Clinic, ClinicMembership, Service

CONSENT = (
    "By checking this box I agree to receive appointment texts from {clinic}. "
    "Msg & data rates may apply. Reply STOP to opt out."
)


@pytest.fixture(autouse=True)
def _isolated_cache():
    """Each test starts with an empty cache (throttles, CORS origins), locmem or Redis alike."""
    from django.core.cache import cache

    cache.clear()


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


@pytest.fixture
def api_client():
    return APIClient()


@pytest.fixture
def token_client():
    def build(user):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return client

    return build
