"""Two-factor login for staff (django-otp): an authenticator app (TOTP) and ten one-time recovery codes.

The password step is Django's own admin login, so django-axes' lockout is unchanged. A user with a confirmed device
is then asked for a code (``verify``); a user who must use two-factor login and has no device yet is sent to
enrolment (``enrol``). Until that step is done, every admin page redirects to it (the login and logout pages stay
open) and the session counts as anonymous everywhere else (the staff API's session authentication included).
Who must: members of any clinic with ``Clinic.require_two_factor`` and, with
``STAFF_2FA_REQUIRED_FOR_SUPERUSERS``, superusers. Everyone else may enrol. Verified lasts the session.

Wrong codes are throttled by django-otp per device (1, 2, 4, 8... seconds after each consecutive failure). A
superuser resets a user's devices with the user admin's action (``two_factor_reset``, audited) or
``manage.py two_factor_reset USERNAME``.
"""

import math
from base64 import b32encode

import django_otp
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST
from django_otp.models import VerifyNotAllowed
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import audit_record
from .models import AuditEvent, ClinicMembership

RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"

VERIFY, ENROL = "verify", "enrol"


# --- Who must do what ---------------------------------------------------------------------------------------------


def is_enrolled(user):
    """A confirmed authenticator app (recovery codes come with it)."""
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def is_required(user):
    """Must ``user`` use two-factor login: a member of a clinic that requires it, or a superuser when required."""
    if user.is_superuser and getattr(settings, "STAFF_2FA_REQUIRED_FOR_SUPERUSERS", False):
        return True
    return ClinicMembership.objects.filter(user=user, clinic__require_two_factor=True).exists()


def pending_step(user):
    """``VERIFY`` (has a device, this session has not given a code), ``ENROL`` (must, has none) or None."""
    if not (user.is_authenticated and user.is_active):
        return None
    if getattr(user, "otp_device", None) is not None:
        return None
    if django_otp.user_has_device(user, confirmed=True):
        return VERIFY
    if is_required(user):
        return ENROL
    return None


def can_require(user, clinic):
    """Only the clinic's owner (or a superuser) decides that its staff must use two-factor login."""
    if user.is_superuser:
        return True
    if clinic is None or clinic.pk is None:
        return False
    return ClinicMembership.objects.filter(user=user, clinic=clinic, role=ClinicMembership.Role.OWNER).exists()


class TwoFactorMiddleware:
    """After django-otp's OTPMiddleware. A session that still owes a code or an enrolment sees only that page, the
    login and the logout page in the admin, and is anonymous outside it (token authentication is unaffected)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.path.startswith(reverse("admin:index")):
            step = pending_step(request.user)
            if step is not None:
                target = reverse("two_factor_verify" if step == VERIFY else "two_factor")
                if request.path not in (target, reverse("admin:login"), reverse("admin:logout")):
                    return redirect_to_login(request.get_full_path(), target)
        else:
            user = request.user
            request.user = SimpleLazyObject(lambda: AnonymousUser() if pending_step(user) else user)
        return self.get_response(request)


# --- Codes --------------------------------------------------------------------------------------------------------


def _normalise(code):
    return "".join(code.split()).replace("-", "").lower()


def code_check(device, code):
    """Verify ``code`` on ``device`` under a row lock. Returns None when accepted, else the message to show.

    The failure is counted (throttle) inside the transaction, so nothing here may raise after verify_token.
    """
    with transaction.atomic():
        device = type(device).objects.select_for_update().get(pk=device.pk)
        allowed, info = device.verify_is_allowed()
        if not allowed:
            if info and info.get("reason") == VerifyNotAllowed.N_FAILED_ATTEMPTS:
                wait = max(1, math.ceil((info["locked_until"] - timezone.now()).total_seconds()))
                return f"Too many wrong codes. Try again in {wait} second{'s' if wait != 1 else ''}."
            return "Codes cannot be checked right now. Try again later."
        if device.verify_token(code):
            return None
    return "That code is not right. Check the app's current code (or a recovery code) and try again."


def device_for_code(user, code):
    """Six digits are the authenticator app's; anything else is a recovery code (each device throttles its own)."""
    model = TOTPDevice if (len(code) == 6 and code.isdigit()) else StaticDevice
    return model.objects.devices_for_user(user, confirmed=True).order_by("pk").first()


def recovery_codes_issue(user):
    """Replace the user's recovery codes with ``RECOVERY_CODE_COUNT`` new ones; returns them (shown once)."""
    device = StaticDevice.objects.filter(user=user).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME, confirmed=True)
    StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
    device.token_set.all().delete()
    device.throttle_reset()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return device, codes


def _audit(user, what, *, request, action, actor=None, channel="admin", **counts):
    """One event per clinic the user belongs to (so each clinic's log shows it), or one without a clinic."""
    clinic_ids = list(ClinicMembership.objects.filter(user=user).values_list("clinic_id", flat=True)) or [None]
    for clinic_id in clinic_ids:
        audit_record(
            action=action,
            obj=user,
            model=get_user_model(),  # request.user is a lazy object: type() would not be the model
            clinic=clinic_id,
            user=actor,
            request=request,
            channel=channel,
            detail={"two_factor": what, **counts},
        )


def two_factor_reset(user, *, actor=None, request=None, channel="admin"):
    """Remove every OTP device of ``user`` (audited). Their verified sessions fall back to the code or enrol step."""
    with transaction.atomic():
        removed = 0
        for model in django_otp.device_classes():
            devices = model.objects.filter(user=user)
            removed += devices.count()
            devices.delete()
        _audit(
            user,
            "reset",
            request=request,
            actor=actor,
            channel=channel,
            action=AuditEvent.Action.DELETE,
            devices=removed,
        )
    return removed


# --- Pages (under /admin/two-factor/, wrapped by admin_view: staff only, never cached) -----------------------------


class CodeForm(forms.Form):
    code = forms.CharField(
        label="Code",
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )

    def clean_code(self):
        return _normalise(self.cleaned_data["code"])


def _context(request, title, **extra):
    context = {**admin.site.each_context(request), "title": title, **extra}
    if pending_step(request.user) is not None:
        context.update(available_apps=[], is_nav_sidebar_enabled=False)
    return context


def _next_url(request):
    url = request.POST.get("next") or request.GET.get("next") or ""
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, require_https=request.is_secure()):
        return url
    return reverse("admin:index")


def _login_device(request, device):
    """Mark the session verified by ``device``, under a new session key (the privilege changed)."""
    request.session.cycle_key()
    django_otp.login(request, device)


def qr_svg(data):
    """An inline SVG QR code (white background and quiet zone, so it scans in dark mode too)."""
    import qrcode
    import qrcode.image.svg

    image = qrcode.make(data, image_factory=qrcode.image.svg.SvgPathFillImage, box_size=12, border=4)
    return mark_safe(image.to_string(encoding="unicode"))  # noqa: S308 (generated by qrcode, no user markup)


def _secret_text(device):
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def enrol_view(request):
    """Set up the authenticator app: scan (or type) the secret, confirm with a code, get the recovery codes."""
    user = request.user
    if is_enrolled(user):
        recovery = StaticDevice.objects.devices_for_user(user, confirmed=True).first()
        app = TOTPDevice.objects.devices_for_user(user, confirmed=True).first()
        return TemplateResponse(
            request,
            "medspa/two_factor/status.html",
            _context(
                request,
                "Two-factor login",
                app=app,
                recovery_left=recovery.token_set.count() if recovery else 0,
                recovery_total=RECOVERY_CODE_COUNT,
                required=is_required(user),
            ),
        )

    device = TOTPDevice.objects.devices_for_user(user, confirmed=False).order_by("pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        error = code_check(device, form.cleaned_data["code"])
        if error is None:
            with transaction.atomic():
                device.refresh_from_db()
                device.confirmed = True
                device.save(update_fields=["confirmed"])
                TOTPDevice.objects.filter(user=user, confirmed=False).delete()
                _, codes = recovery_codes_issue(user)
                _audit(user, "enrolled", request=request, action=AuditEvent.Action.ADD)
            _login_device(request, device)
            return TemplateResponse(
                request,
                "medspa/two_factor/recovery_codes.html",
                _context(request, "Your recovery codes", codes=codes, enrolled=True, next=_next_url(request)),
            )
        form.add_error("code", error)
    return TemplateResponse(
        request,
        "medspa/two_factor/enrol.html",
        _context(
            request,
            "Set up two-factor login",
            form=form,
            qr=qr_svg(device.config_url),
            secret=_secret_text(device),
            issuer=getattr(settings, "OTP_TOTP_ISSUER", ""),
            required=is_required(user),
            next=_next_url(request),
        ),
    )


def verify_view(request):
    """The second step of the login: a code from the app, or a recovery code (which is then used up)."""
    user = request.user
    if pending_step(user) != VERIFY:
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        code = form.cleaned_data["code"]
        device = device_for_code(user, code)
        error = code_check(device, code) if device is not None else "That code is not right."
        if error is None:
            _login_device(request, device)
            if isinstance(device, StaticDevice):
                left = device.token_set.count()
                _audit(user, "recovery code used", request=request, action=AuditEvent.Action.CHANGE, left=left)
                messages.warning(
                    request,
                    f"You used a recovery code; {left} left. Make new ones from Two-factor login if you are low, "
                    "and ask your administrator to reset your authenticator app if you lost it.",
                )
            return redirect(_next_url(request))
        form.add_error("code", error)
    return TemplateResponse(
        request,
        "medspa/two_factor/verify.html",
        _context(request, "Enter your code", form=form, next=_next_url(request)),
    )


@require_POST
def recovery_codes_view(request):
    """New recovery codes for an enrolled, verified user (the old ones stop working)."""
    user = request.user
    if not (is_enrolled(user) and getattr(user, "otp_device", None) is not None):
        return redirect("two_factor")
    with transaction.atomic():
        _, codes = recovery_codes_issue(user)
        _audit(user, "recovery codes replaced", request=request, action=AuditEvent.Action.CHANGE)
    return TemplateResponse(
        request,
        "medspa/two_factor/recovery_codes.html",
        _context(request, "Your recovery codes", codes=codes, enrolled=False, next=reverse("admin:index")),
    )


def urlpatterns():
    """Mounted at admin/two-factor/ in medspa/urls.py, before the admin itself."""
    view = admin.site.admin_view
    return [
        path("", view(enrol_view), name="two_factor"),
        path("verify/", view(verify_view), name="two_factor_verify"),
        path("recovery-codes/", view(recovery_codes_view), name="two_factor_recovery_codes"),
    ]


# --- The user admin: who has it, and the superuser's reset ----------------------------------------------------------


class TwoFactorUserAdminMixin:
    actions = ["reset_two_factor"]

    def get_queryset(self, request):
        enrolled = TOTPDevice.objects.filter(user=OuterRef("pk"), confirmed=True)
        return super().get_queryset(request).annotate(two_factor_on=Exists(enrolled))

    def get_list_display(self, request):
        return [*super().get_list_display(request), "two_factor"]

    @admin.display(description="two-factor", boolean=True, ordering="two_factor_on")
    def two_factor(self, obj):
        return getattr(obj, "two_factor_on", None)

    def has_reset_two_factor_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    @admin.action(
        description="Reset two-factor login (remove the authenticator app and recovery codes)",
        permissions=["reset_two_factor"],
    )
    def reset_two_factor(self, request, queryset):
        users = list(queryset)
        removed = sum(two_factor_reset(user, actor=request.user, request=request) for user in users)
        self.message_user(
            request,
            f"Two-factor login reset for {len(users)} user(s) ({removed} device(s) removed). Where it is required "
            "they set it up again at their next login.",
            messages.SUCCESS,
        )


def admin_setup(site):
    """Called by medspa/admin.py after the platform re-registration: the device tables get no admin of their own
    (django-otp's would show TOTP secrets and recovery codes); the user admin gets the column and the reset."""
    for model in (TOTPDevice, StaticDevice, StaticToken):
        if site.is_registered(model):
            site.unregister(model)
    user_model = get_user_model()
    base = type(site._registry[user_model])
    site.unregister(user_model)
    site.register(user_model, type(f"TwoFactor{base.__name__}", (TwoFactorUserAdminMixin, base), {}))
