from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from medspa.admin import PatientDataAdmin
from medspa.audit import audit_record
from medspa.models import AuditEvent
from medspa.phones import normalize_phone

from .models import OptOut
from .services import optout_record


class StaffOptOutForm(forms.ModelForm):
    """A patient asked by phone or in person: staff record the opt-out (consent may be revoked by any means)."""

    class Meta:
        model = OptOut
        fields = ["clinic", "phone", "detail"]
        help_texts = {"detail": "How the patient asked, e.g. 'phoned the front desk'. No health details."}

    def clean_phone(self):
        try:
            return normalize_phone(self.cleaned_data["phone"])
        except ValidationError as exc:
            raise ValidationError(exc.messages) from None

    def clean(self):
        cleaned = super().clean()
        # An existing row for (clinic, phone) is updated by optout_record, not reported as a duplicate.
        existing = OptOut.objects.filter(clinic=cleaned.get("clinic"), phone=cleaned.get("phone")).first()
        if existing is not None:
            self.instance = existing
        return cleaned


@admin.register(OptOut)
class OptOutAdmin(PatientDataAdmin):
    """The ledger is evidence: written by the compliance code (or a staff entry), never edited or deleted here.
    Opting back in is the patient's act (START), so there is no staff action for it."""

    list_display = ["__str__", "phone", "clinic", "active", "source", "needs_review", "opted_out_at", "opted_in_at",
                    "times_opted_out"]  # fmt: skip
    list_filter = ["clinic", "active", "source", "needs_review"]
    list_select_related = ["clinic"]
    search_fields = ["phone"]
    date_hierarchy = "opted_out_at"
    show_full_result_count = False
    readonly_fields = ["clinic", "phone", "active", "source", "detail", "needs_review", "opted_out_at", "opted_in_at",
                       "times_opted_out"]  # fmt: skip

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = StaffOptOutForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else ["clinic", "phone", "detail"]

    def save_model(self, request, obj, form, change):
        row, _ = optout_record(
            clinic=obj.clinic, phone=obj.phone, source=OptOut.Source.STAFF, detail=obj.detail or "entered by staff"
        )
        obj.pk = row.pk
        audit_record(action=AuditEvent.Action.ADD, obj=row, request=request, detail={"fields": ["opt_out"]})

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
