from django.contrib import admin

from medspa.admin import ClinicScopedAdmin, ClinicScopedInline

from .models import EmrConfig, Provider, TimeOff, WorkingHours


class WorkingHoursInline(ClinicScopedInline):
    model = WorkingHours
    fields = ["weekday", "start", "end"]


class TimeOffInline(ClinicScopedInline):
    model = TimeOff
    fields = ["start", "end", "reason"]


@admin.register(Provider)
class ProviderAdmin(ClinicScopedAdmin):
    list_display = ["name", "title", "clinic", "active", "emr_ref"]
    list_filter = ["clinic", "active"]
    list_select_related = ["clinic"]
    search_fields = ["name"]
    filter_horizontal = ["services"]
    inlines = [WorkingHoursInline, TimeOffInline]

    def save_formset(self, request, form, formset, change):
        # Inline rows belong to the provider's clinic.
        for row in formset.save(commit=False):
            row.clinic_id = form.instance.clinic_id
            row.save()
        for row in formset.deleted_objects:
            row.delete()
        formset.save_m2m()


@admin.register(EmrConfig)
class EmrConfigAdmin(ClinicScopedAdmin):
    """Which scheduling system a clinic uses. "Manual" means staff book each request in their EMR by hand and
    confirm it here: there is no API connection for those systems."""

    list_display = ["clinic", "kind", "slot_minutes", "buffer_minutes", "min_notice_minutes", "horizon_days"]
    list_filter = ["kind"]
    list_select_related = ["clinic"]
