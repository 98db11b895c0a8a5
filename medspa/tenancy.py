"""Tenant scoping in one place.

Every clinic-owned model has a ``clinic`` foreign key and uses ``ClinicScopedQuerySet`` as its manager, so that
staff views, the API and the engine ask for rows the same way::

    Lead.objects.for_user(request.user)      # the user's clinics (superusers: all)
    Lead.objects.for_clinic(clinic)          # one clinic

The admin mixin (medspa/admin.py) and the API base view (medspa/api.py) are built on these two methods.
"""

from django.core.exceptions import ValidationError
from django.db import models


def user_clinic_ids(user):
    """The ids of the active-membership clinics of ``user``; ``None`` means all (superuser)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return []
    if user.is_superuser:
        return None
    cache_attr = "_medspa_clinic_ids"
    ids = getattr(user, cache_attr, None)
    if ids is None:
        from medspa.models import ClinicMembership

        ids = list(ClinicMembership.objects.filter(user=user).values_list("clinic_id", flat=True))
        setattr(user, cache_attr, ids)
    return ids


class ClinicScopedQuerySet(models.QuerySet):
    """Querysets of clinic-owned rows. ``clinic_field`` names the path to the clinic (``pk`` for Clinic)."""

    clinic_field = "clinic"

    def for_clinic(self, clinic):
        return self.filter(**{f"{self.clinic_field}": clinic})

    def for_user(self, user):
        ids = user_clinic_ids(user)
        if ids is None:
            return self.all()
        return self.filter(**{f"{self.clinic_field}__in": ids})


class ClinicQuerySet(ClinicScopedQuerySet):
    clinic_field = "pk"

    def active(self):
        return self.filter(active=True)


def is_clinic_scoped(model):
    """True for Clinic and for every model whose default manager scopes by clinic."""
    return isinstance(model._default_manager.all(), ClinicScopedQuerySet)


def validate_same_clinic(instance, *field_names):
    """Raise ValidationError when a related clinic-owned row belongs to another clinic than ``instance``."""
    errors = {}
    for name in field_names:
        related = getattr(instance, name, None)
        if related is not None and instance.clinic_id and related.clinic_id != instance.clinic_id:
            errors[name] = "Belongs to another clinic."
    if errors:
        raise ValidationError(errors)
