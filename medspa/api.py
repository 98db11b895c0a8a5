"""The base of the staff API: a clinic from the URL, resolved through the caller's memberships (else 404)."""

from django.shortcuts import get_object_or_404
from rest_framework import generics

from .audit import audit_record
from .models import AuditEvent, Clinic


class ClinicScopedListView(generics.ListAPIView):
    """``/api/clinics/{slug}/...`` lists: rows of one clinic the caller belongs to, paginated, audited.

    Subclasses set ``model`` and ``serializer_class``; a clinic the token cannot see is a 404 (not a 403), so
    the API does not even confirm that another clinic exists.
    """

    model = None

    def get_clinic(self):
        if not hasattr(self, "_clinic"):
            self._clinic = get_object_or_404(Clinic.objects.for_user(self.request.user), slug=self.kwargs["slug"])
        return self._clinic

    def get_queryset(self):
        return self.model.objects.for_clinic(self.get_clinic()).order_by("-created_at", "-pk")

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
