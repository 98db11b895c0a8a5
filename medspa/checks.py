"""System checks: refuse development secrets in production, warn about providers without webhook secrets and an
unguarded /metrics."""

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register

from .events import check_handlers


@register(Tags.security, deploy=True)
def insecure_defaults(app_configs, **kwargs):
    from . import settings as defaults

    errors = []
    if not settings.DEBUG:
        if settings.SECRET_KEY == defaults.DEV_SECRET_KEY:
            errors.append(Error("SECRET_KEY is the development value.", hint="Set SECRET_KEY.", id="medspa.E001"))
        if settings.FIELD_ENCRYPTION_KEY == defaults.DEV_FIELD_ENCRYPTION_KEY:
            errors.append(
                Error(
                    "FIELD_ENCRYPTION_KEY is the development value: stored credentials would be readable.",
                    hint="Set FIELD_ENCRYPTION_KEY to a Fernet key (Fernet.generate_key()).",
                    id="medspa.E002",
                )
            )
        if settings.CONTROLLABLE_CLOCK:
            errors.append(
                Error(
                    "CONTROLLABLE_CLOCK is on in production: reminders and review requests would follow a clock "
                    "that anyone with cache access can move.",
                    hint="Unset CONTROLLABLE_CLOCK (it is for the end-to-end tests).",
                    id="medspa.E007",
                )
            )
        if settings.PAYMENTS_SANDBOX_ENABLED:
            errors.append(
                Warning(
                    "PAYMENTS_SANDBOX_ENABLED is on in production: clinics without Square take test payments that "
                    "confirm bookings without money.",
                    hint="Unset PAYMENTS_SANDBOX_ENABLED, or configure Square (SQUARE_ACCESS_TOKEN).",
                    id="medspa.W004",
                )
            )
        if settings.PUBLIC_BASE_URL.startswith("http://"):
            errors.append(
                Warning(
                    "PUBLIC_BASE_URL is not https: links to patients and webhook signatures use it.",
                    id="medspa.W003",
                )
            )
        if not settings.METRICS_TOKEN and not settings.METRICS_ALLOWED_IPS:
            errors.append(
                Warning(
                    "/metrics answers anyone: neither METRICS_TOKEN nor METRICS_ALLOWED_IPS is set.",
                    hint="Set METRICS_TOKEN (Prometheus sends it as a bearer token) and/or METRICS_ALLOWED_IPS.",
                    id="medspa.W005",
                )
            )
    return errors


@register(Tags.security)
def metrics_allowed_ips(app_configs, **kwargs):
    """A typo in METRICS_ALLOWED_IPS would shut Prometheus out (medspa.ops lets nobody in rather than everybody)."""
    from .ops import metrics_networks

    try:
        metrics_networks()
    except ValueError as exc:
        return [Error(str(exc), hint="Addresses or networks, comma separated: 10.0.0.5,10.1.0.0/16.", id="medspa.E005")]
    return []


# provider: (setting that turns it on, webhook secret it then needs, what the secret is)
WEBHOOK_SECRETS = [
    ("Telnyx", "TELNYX_API_KEY", "TELNYX_PUBLIC_KEY", "the Ed25519 public key that signs Telnyx webhooks"),
    ("Twilio", "TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "the auth token that signs Twilio webhooks"),
    ("Square", "SQUARE_ACCESS_TOKEN", "SQUARE_WEBHOOK_SIGNATURE_KEY", "the webhook subscription's signature key"),
]


@register(Tags.security)
def webhook_secrets(app_configs, **kwargs):
    """A provider that can send but whose webhooks we cannot verify would make us reject (or trust) every call."""
    warnings = []
    for number, (provider, enabling, secret, what) in enumerate(WEBHOOK_SECRETS, start=101):
        if getattr(settings, enabling, "") and not getattr(settings, secret, ""):
            warnings.append(
                Warning(
                    f"{provider} is configured ({enabling}) but {secret} is empty: its webhooks cannot be verified "
                    "and will be rejected.",
                    hint=f"Set {secret} to {what}.",
                    id=f"medspa.W{number}",
                )
            )
    return warnings


@register()
def event_handlers(app_configs, **kwargs):
    """settings.EVENT_HANDLERS names only declared events and handlers that import (medspa/events.py)."""
    return [Error(problem, id="medspa.E006") for problem in check_handlers()]
