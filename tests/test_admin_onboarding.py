"""Onboarding from the admin: a clinic with its services and staff in one form; prices typed in dollars."""

import pytest
from django.contrib.auth.models import User

from medspa.models import Clinic, ClinicMembership, Service

from .conftest import make_clinic


def inline(prefix, rows):
    data = {f"{prefix}-TOTAL_FORMS": len(rows), f"{prefix}-INITIAL_FORMS": 0}
    for index, row in enumerate(rows):
        data.update({f"{prefix}-{index}-{key}": value for key, value in row.items()})
    return data


@pytest.mark.django_db
def test_superuser_creates_clinic_with_services_and_staff(admin_client):
    desk = User.objects.create_user("desk", password="a-long-test-password-1", is_staff=True)
    data = {
        "name": "Harbor Aesthetics",
        "slug": "harbor-aesthetics",
        "active": "on",
        "ai_enabled": "on",
        "timezone": "America/Chicago",
        "state": "IL",
        "front_desk_phone": "+13125550100",
        "website": "https://harbor.example.com",
        "allowed_origins": "https://book.harbor.example.com, https://harbor.example.com",
        "intro_message": "Hi from {clinic}, sorry we missed your call!",
        "lead_intro_message": "Hi from {clinic}, thanks for your message!",
        "help_message": "{clinic} help: {phone}. Reply STOP to opt out.",
        "sending_window_start": "09:00",
        "sending_window_end": "20:00",
        "cancellation_notice_hours": 48,
        **inline(
            "services",
            [
                {
                    "name": "Botox",
                    "aliases": "tox, Tox, wrinkle relaxer",
                    "price_type": "per_unit",
                    "price_cents": "13.50",
                    "unit_name": "unit",
                    "typical_units_min": 20,
                    "typical_units_max": 40,
                    "duration_minutes": 30,
                    "deposit_cents": "75",
                    "deposit_new_clients_only": "on",
                    "active": "on",
                },
                {
                    "name": "Filler",
                    "aliases": "",
                    "price_type": "range",
                    "price_cents": "700",
                    "price_max_cents": "900",
                    "unit_name": "syringe",
                    "duration_minutes": 60,
                    "deposit_cents": "0",
                    "active": "on",
                },
            ],
        ),
        **inline("memberships", [{"user": desk.pk, "role": "front_desk"}]),
        **inline(
            "phone_numbers",
            [{"number": "+13125550199", "provider": "telnyx", "sms": "on", "voice": "on", "status": "active"}],
        ),
    }
    response = admin_client.post("/admin/medspa/clinic/add/", data)
    assert response.status_code == 302, response.context and response.context["errors"]

    clinic = Clinic.objects.get(slug="harbor-aesthetics")
    assert clinic.allowed_origins == ["https://book.harbor.example.com", "https://harbor.example.com"]
    botox = Service.objects.get(clinic=clinic, name="Botox")
    assert (botox.price_cents, botox.deposit_cents, botox.aliases) == (1350, 7500, ["tox", "wrinkle relaxer"])
    assert botox.price_text() == "$13.50 per unit (most treatments use 20-40 units, about $270-$540)"
    assert Service.objects.get(clinic=clinic, name="Filler").price_text() == "$700-$900 per syringe"
    assert ClinicMembership.objects.get(clinic=clinic).user == desk
    assert clinic.phone_numbers.get().number == "+13125550199"


@pytest.mark.django_db
def test_bad_service_price_is_shown_on_the_form_and_nothing_saved(admin_client):
    clinic = make_clinic("c")
    data = {
        "clinic": clinic.pk,
        "name": "Peel",
        "price_type": "range",
        "price_cents": "200",
        "price_max_cents": "100",
        "duration_minutes": 30,
        "deposit_cents": "0",
    }
    response = admin_client.post("/admin/medspa/service/add/", data)
    assert response.status_code == 200
    assert "price_max_cents" in response.context["adminform"].form.errors
    assert not Service.objects.exists()


@pytest.mark.django_db
def test_list_pages_render_for_staff(client, admin_client):
    from django.core.management import call_command

    call_command("seed_knowledge", verbosity=0)
    for url in (
        "/admin/",
        "/admin/medspa/clinic/",
        "/admin/medspa/service/",
        "/admin/leads/lead/",
        "/admin/medspa/auditevent/",
        "/admin/medspa/clinicmembership/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
    assert b"$12 per unit" in admin_client.get("/admin/medspa/service/").content


@pytest.mark.parametrize(
    ("model", "actions"),
    [
        ("bookings.booking", ["cancel_bookings", "mark_completed", "mark_no_show"]),
        ("conversation.conversation", ["take_over", "hand_back"]),
        ("payments.payment", ["refund", "mark_reviewed"]),
        ("medspa.staffalert", ["resolve"]),
    ],
)
def test_actions_that_change_something_need_the_change_permission(db, client, model, actions):
    """A user who may only view a list sees none of its actions that act (cancel, refund, take over...); with the
    change permission too, they are offered."""
    from django.contrib.auth.models import Permission, User

    from .conftest import make_clinic, make_staff

    clinic = make_clinic("view-only-clinic")
    app_label, model_name = model.split(".")
    viewer = make_staff("viewer", clinic, all_permissions=False)
    viewer.groups.clear()

    def offered(*codenames):
        viewer.user_permissions.set(
            Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )
        client.force_login(User.objects.get(pk=viewer.pk))  # a fresh user: no cached permissions
        page = client.get(f"/admin/{app_label}/{model_name}/")
        assert page.status_code == 200
        form = page.context["action_form"]
        return {name for name, *_ in form.fields["action"].choices} if form else set()

    assert not set(actions) & offered(f"view_{model_name}")
    assert set(actions) <= offered(f"view_{model_name}", f"change_{model_name}")
