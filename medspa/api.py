"""The base of the staff API: a clinic from the URL, resolved through the caller's memberships (else 404)."""

from django.shortcuts import get_object_or_404
from rest_framework import generics
from rest_framework.exceptions import PermissionDenied
from rest_framework.permissions import DjangoModelPermissions

from .audit import audit_record
from .models import AuditEvent, Clinic

VIEW_PERMISSION = "%(app_label)s.view_%(model_name)s"


class ClinicModelPermissions(DjangoModelPermissions):
    """Membership first, then the Django model permission of the view's ``model`` for the method.

    Unlike DRF's DjangoModelPermissions, reads need ``view_<model>`` (the same permission the admin asks for). The
    clinic is resolved before any permission is looked at, so a clinic the caller cannot see is a 404 whatever
    their permissions, and a 403 only ever answers a member. A method the view does not have is left to DRF's 405.
    """

    perms_map = {
        **DjangoModelPermissions.perms_map,
        "GET": [VIEW_PERMISSION],
        "HEAD": [VIEW_PERMISSION],
        "OPTIONS": [VIEW_PERMISSION],
    }

    def has_permission(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return False
        view.get_clinic()  # Http404 for a clinic outside the caller's memberships
        if request.method not in view.allowed_methods:
            return True
        return request.user.has_perms(self.get_required_permissions(request.method, view.model))


class ClinicScopedListView(generics.ListAPIView):
    """``/api/clinics/{slug}/...`` lists: rows of one clinic the caller belongs to, paginated, audited.

    Subclasses set ``model`` and ``serializer_class``; a clinic the token cannot see is a 404 (not a 403), so
    the API does not even confirm that another clinic exists. A member also needs the model permission for the
    method (``ClinicModelPermissions``: view to read, add to post, ...), else 403; roles grant them through their
    groups (medspa/roles.py).
    """

    model = None
    permission_classes = [ClinicModelPermissions]

    def get_clinic(self):
        if not hasattr(self, "_clinic"):
            self._clinic = get_object_or_404(Clinic.objects.for_user(self.request.user), slug=self.kwargs["slug"])
        return self._clinic

    def get_queryset(self):
        return self.model.objects.for_clinic(self.get_clinic()).order_by("-created_at", "-pk")

    def require_model_permission(self, action):
        """403 unless the caller may ``action`` (add, change, delete, view) this view's model; for a step that
        needs more than the method's permission (an upsert that replaces a row needs change as well as add)."""
        opts = self.model._meta
        if not self.request.user.has_perm(f"{opts.app_label}.{action}_{opts.model_name}"):
            raise PermissionDenied(f"You do not have permission to {action} {opts.verbose_name_plural}.")

    def list(self, request, *args, **kwargs):
        response = super().list(request, *args, **kwargs)
        results = response.data.get("results", response.data) if isinstance(response.data, dict) else response.data
        audit_record(
            action=AuditEvent.Action.LIST,
            model=self.model,
            clinic=self.get_clinic(),
            request=request,
            channel="api",
            detail={"rows": len(results), "page": request.query_params.get("page", "1")},
        )
        return response
