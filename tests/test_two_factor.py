"""Two-factor login for staff (medspa/two_factor.py): enrolment, the code step after the password, throttling,
recovery codes, clinics that require it, and the superuser's reset."""

import io
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.contrib.auth.models import User
from django.core.management import call_command
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from medspa.models import AuditEvent, ClinicMembership
from medspa.two_factor import RECOVERY_CODE_COUNT, recovery_codes_issue

from .conftest import make_clinic, make_staff

PASSWORD = "a-long-test-password-1"
ENROL, VERIFY = "/admin/two-factor/", "/admin/two-factor/verify/"


@pytest.fixture
def clock():
    """Codes depend on the time: pin it (5 s into the current 30 s step) and move it by hand."""
    now = datetime.now(UTC).replace(microsecond=0)
    with time_machine.travel(now - timedelta(seconds=now.second % 30 - 5), tick=False) as traveller:
        yield traveller


def code_now(device):
    device.refresh_from_db()
    return f"{totp(device.bin_key, device.step, device.t0, device.digits, device.drift):0{device.digits}d}"


def enrol(user):
    """A confirmed authenticator app and recovery codes, as the enrolment page leaves them."""
    device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=True)
    _, codes = recovery_codes_issue(user)
    return device, codes


def login_verified(client, user, device):
    """force_login skips the code step: mark the session verified by ``device`` as the verify page does."""
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()


def password_login(client, username):
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD})
    assert response.status_code == 302 and response.url == "/admin/"
    return response


def redirects_to(response, page):
    return response.status_code == 302 and response.url.split("?")[0] == page


@pytest.mark.django_db
def test_enrolment_confirms_only_with_the_right_code(client, clock):
    clinic = make_clinic("c")
    user = make_staff("desk", clinic)
    client.force_login(user)

    page = client.get(ENROL)
    assert page.status_code == 200 and b"<svg" in page.content and page.context["secret"]
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed
    assert client.get(ENROL).context["secret"] == page.context["secret"]  # a reload keeps the key just scanned

    wrong = f"{(int(code_now(device)) + 1) % 1_000_000:06d}"
    response = client.post(ENROL, {"code": wrong})
    assert response.status_code == 200 and "not right" in str(response.context["form"].errors)
    device.refresh_from_db()
    assert not device.confirmed and not StaticDevice.objects.filter(user=user).exists()

    clock.shift(timedelta(seconds=30))  # past the one-second throttle, into the next step
    response = client.post(ENROL, {"code": code_now(device)})
    assert response.status_code == 200
    codes = response.context["codes"]
    assert len(codes) == len(set(codes)) == RECOVERY_CODE_COUNT
    device.refresh_from_db()
    assert device.confirmed
    assert set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == set(codes)
    assert "no-store" in response["Cache-Control"]  # the codes are shown once, never cached

    # This session is verified; the page now says two-factor login is on and never shows the secret again.
    assert client.get("/admin/").status_code == 200
    status = client.get(ENROL)
    assert b"Two-factor login is on" in status.content and page.context["secret"].encode() not in status.content
    event = AuditEvent.objects.get(object_type="auth.user", detail__two_factor="enrolled")
    assert (event.actor, event.clinic_id, event.object_id) == ("desk", clinic.pk, str(user.pk))


@pytest.mark.django_db
def test_login_with_a_device_needs_the_code(client, clock):
    clinic = make_clinic("c")
    user = make_staff("desk", clinic)
    device, _ = enrol(user)

    password_login(client, "desk")
    # The password alone opens nothing: every admin page asks for the code, the API sees no session.
    for url in ("/admin/", "/admin/leads/lead/", "/admin/medspa/clinic/", ENROL, "/admin/password_change/"):
        assert redirects_to(client.get(url), VERIFY), url
    assert client.get(f"/api/clinics/{clinic.slug}/leads").status_code in (401, 403)
    assert client.get(VERIFY).status_code == 200

    response = client.post(f"{VERIFY}?next=/admin/leads/lead/", {"code": code_now(device)})
    assert response.status_code == 302 and response.url == "/admin/leads/lead/"
    assert client.get("/admin/").status_code == 200
    assert client.get(f"/api/clinics/{clinic.slug}/leads").status_code == 200

    # Verified lasts the session; logging out ends it, and the next login asks again.
    clock.shift(timedelta(minutes=10))
    assert client.get("/admin/leads/lead/").status_code == 200
    client.post("/admin/logout/")
    password_login(client, "desk")
    assert redirects_to(client.get("/admin/"), VERIFY)


@pytest.mark.django_db
def test_a_wrong_code_is_refused_and_throttled(client, clock):
    user = make_staff("desk", make_clinic("c"))
    device, _ = enrol(user)
    password_login(client, "desk")

    wrong = f"{(int(code_now(device)) + 1) % 1_000_000:06d}"
    response = client.post(VERIFY, {"code": wrong})
    assert response.status_code == 200 and "not right" in str(response.context["form"].errors)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1

    # Within the back-off even the right code is refused, and the refusal is not another failure.
    response = client.post(VERIFY, {"code": code_now(device)})
    assert response.status_code == 200 and "Too many wrong codes" in str(response.context["form"].errors)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    assert redirects_to(client.get("/admin/"), VERIFY)

    # Each further failure doubles the wait: 1, 2, 4 s...
    clock.shift(timedelta(seconds=1))
    client.post(VERIFY, {"code": wrong})
    clock.shift(timedelta(seconds=1))
    assert "Try again in 1 second." in str(client.post(VERIFY, {"code": code_now(device)}).context["form"].errors)

    clock.shift(timedelta(seconds=1))
    response = client.post(VERIFY, {"code": code_now(device)})
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_recovery_code_works_once(client, clock):
    clinic = make_clinic("c")
    user = make_staff("desk", clinic)
    _, codes = enrol(user)

    password_login(client, "desk")
    response = client.post(VERIFY, {"code": f" {codes[0][:4].upper()}-{codes[0][4:]} "}, follow=True)  # as typed
    assert response.redirect_chain[-1][0] == "/admin/" and response.status_code == 200
    assert f"{RECOVERY_CODE_COUNT - 1} left" in response.content.decode()
    assert not StaticToken.objects.filter(token=codes[0]).exists()
    event = AuditEvent.objects.get(detail__two_factor="recovery code used")
    assert event.detail["left"] == RECOVERY_CODE_COUNT - 1 and event.clinic_id == clinic.pk

    client.post("/admin/logout/")
    password_login(client, "desk")
    response = client.post(VERIFY, {"code": codes[0]})
    assert response.status_code == 200 and "not right" in str(response.context["form"].errors)
    assert redirects_to(client.get("/admin/"), VERIFY)
    clock.shift(timedelta(seconds=2))
    assert client.post(VERIFY, {"code": codes[1]}).status_code == 302


@pytest.mark.django_db
def test_new_recovery_codes_replace_the_old_ones(client, clock):
    user = make_staff("desk", make_clinic("c"))
    device, old = enrol(user)
    login_verified(client, user, device)
    new = client.post("/admin/two-factor/recovery-codes/").context["codes"]
    assert len(new) == RECOVERY_CODE_COUNT and not set(new) & set(old)
    assert set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True)) == set(new)
    assert client.get("/admin/").status_code == 200


@pytest.mark.django_db
def test_a_clinic_that_requires_it_sends_a_member_without_it_to_enrolment_from_every_admin_page(client):
    strict, relaxed = make_clinic("strict", require_two_factor=True), make_clinic("relaxed")
    user = make_staff("desk", relaxed, strict)  # one strict clinic is enough
    client.force_login(user)

    for url in (
        "/admin/",
        "/admin/leads/lead/",
        "/admin/medspa/clinic/",
        f"/admin/medspa/clinic/{relaxed.pk}/change/",
        "/admin/medspa/auditevent/",
        "/admin/password_change/",
        "/admin/no-such-page/",
        VERIFY,
    ):
        response = client.get(url)
        assert redirects_to(response, ENROL), url
    assert client.get("/admin/leads/lead/").url == "/admin/two-factor/?next=/admin/leads/lead/"
    assert client.post("/admin/leads/lead/", {"action": "delete_selected"}).status_code == 302
    assert client.get(f"/api/clinics/{relaxed.slug}/leads").status_code in (401, 403)

    # Reachable: the enrolment page, the login page (which sends a logged-in user on) and the logout.
    enrolment = client.get(ENROL)
    assert enrolment.status_code == 200 and b"Your clinic requires two-factor login" in enrolment.content
    assert not redirects_to(client.get("/admin/login/"), ENROL)
    assert client.post("/admin/logout/").status_code == 200
    assert redirects_to(client.get("/admin/"), "/admin/login/")


@pytest.mark.django_db
def test_users_of_clinics_that_do_not_require_it_are_not_forced(client):
    clinic = make_clinic("c")
    make_clinic("strict", require_two_factor=True)  # someone else's clinic
    client.force_login(make_staff("desk", clinic))
    for url in ("/admin/", "/admin/leads/lead/", f"/admin/medspa/clinic/{clinic.pk}/change/", ENROL):
        assert client.get(url).status_code == 200, url
    assert client.get(f"/api/clinics/{clinic.slug}/leads").status_code == 200


@pytest.mark.django_db
def test_superusers_are_forced_only_when_the_setting_says_so(admin_client, settings):
    settings.STAFF_2FA_REQUIRED_FOR_SUPERUSERS = False
    assert admin_client.get("/admin/").status_code == 200
    settings.STAFF_2FA_REQUIRED_FOR_SUPERUSERS = True
    assert redirects_to(admin_client.get("/admin/auth/user/"), ENROL)


@pytest.mark.django_db
def test_the_superuser_reset_action_removes_devices_and_is_audited(clock, client, admin_client, admin_user):
    clinic = make_clinic("c")
    user = make_staff("desk", clinic)
    device, _ = enrol(user)
    desk_client = client.__class__()
    login_verified(desk_client, user, device)
    assert desk_client.get("/admin/").status_code == 200

    changelist = admin_client.get("/admin/auth/user/")
    assert changelist.status_code == 200 and "two_factor" in changelist.context["cl"].list_display
    response = admin_client.post(
        "/admin/auth/user/", {"action": "reset_two_factor", "_selected_action": [user.pk]}, follow=True
    )
    assert response.status_code == 200 and "2 device(s) removed" in response.content.decode()
    assert not TOTPDevice.objects.filter(user=user).exists() and not StaticDevice.objects.filter(user=user).exists()

    event = AuditEvent.objects.get(detail__two_factor="reset")
    assert (event.action, event.object_type, event.object_id) == ("delete", "auth.user", str(user.pk))
    assert (event.actor, event.clinic_id, event.detail["devices"]) == (admin_user.username, clinic.pk, 2)

    # The user's verified session no longer counts; their clinic does not require it, so they simply go on.
    assert desk_client.get("/admin/").status_code == 200
    clinic.require_two_factor = True
    clinic.save()
    assert redirects_to(desk_client.get("/admin/"), ENROL)


@pytest.mark.django_db
def test_only_superusers_can_reset_two_factor(client):
    clinic = make_clinic("c")
    owner = make_staff("owner", clinic, role=ClinicMembership.Role.OWNER)
    device, _ = enrol(make_staff("desk", clinic))
    client.force_login(owner)
    response = client.post("/admin/auth/user/", {"action": "reset_two_factor", "_selected_action": [device.user_id]})
    assert response.status_code == 403
    assert TOTPDevice.objects.filter(pk=device.pk).exists()


@pytest.mark.django_db
def test_the_reset_command_frees_a_locked_out_superuser(admin_user):
    enrol(admin_user)
    out = io.StringIO()
    call_command("two_factor_reset", admin_user.username, stdout=out)
    assert "2 device(s) removed" in out.getvalue()
    assert not TOTPDevice.objects.filter(user=admin_user).exists()
    event = AuditEvent.objects.get(detail__two_factor="reset")
    assert (event.actor, event.channel, event.clinic_id) == ("command", "command", None)


@pytest.mark.django_db
def test_only_the_clinic_owner_can_require_two_factor(client):
    clinic = make_clinic("c")
    for role, editable in ((ClinicMembership.Role.OWNER, True), (ClinicMembership.Role.MANAGER, False)):
        client.force_login(make_staff(f"user-{role}", clinic, role=role))
        form = client.get(f"/admin/medspa/clinic/{clinic.pk}/change/").context["adminform"].form
        assert ("require_two_factor" in form.fields) is editable, role


@pytest.mark.django_db
def test_the_password_step_still_locks_out_a_user_with_a_device(client, settings):
    enrol(make_staff("desk"))
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/admin/login/", {"username": "desk", "password": "wrong-password"})
    response = client.post("/admin/login/", {"username": "desk", "password": PASSWORD})
    assert response.status_code == 429 and not response.wsgi_request.user.is_authenticated
    assert User.objects.get(username="desk").totpdevice_set.exists()
