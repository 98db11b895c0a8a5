"""Recording access to patient data. Call ``audit_record`` from the admin, the API and the assistant's tools."""

from .http import client_ip
from .models import AuditEvent


def audit_record(*, action, obj=None, model=None, clinic=None, user=None, request=None, channel="admin", detail=None):
    """Append one audit event. ``obj`` (or ``model`` for list/bulk actions) names what was touched.

    ``detail`` must hold names and counts only (e.g. changed field names), never field values.
    """
    model = model or type(obj)
    user = user or (getattr(request, "user", None) if request is not None else None)
    if clinic is None and obj is not None:
        clinic_id = getattr(obj, "clinic_id", None)
    else:
        clinic_id = getattr(clinic, "pk", clinic)
    authenticated = user is not None and user.is_authenticated
    return AuditEvent.objects.create(
        clinic_id=clinic_id,
        actor_id=user.pk if authenticated else None,
        actor=user.get_username() if authenticated else channel,
        action=action,
        object_type=model._meta.label_lower,
        object_id=str(obj.pk) if obj is not None and obj.pk is not None else "",
        channel=channel,
        ip_address=client_ip(request) if request is not None else None,
        detail=detail or {},
    )
