"""The back office. Every clinic-owned admin inherits ``ClinicScopedAdmin``; platform admins are superuser-only.

Scoping (medspa/tenancy.py) reaches list views, change/delete/history views (another clinic's row is a 404),
foreign-key and many-to-many choices, list filters, autocomplete (through the target admin's queryset) and
actions (they receive the scoped changelist queryset). tests/test_tenant_isolation.py walks every registered
admin to prove it.
"""

import zoneinfo
from contextlib import nullcontext

from django import forms
from django.contrib import admin
from django.http import Http404
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone

from . import frontdesk
from .alerts import staff_alert_resolve, staff_notified_set
from .audit import audit_record
from .fields import CommaSeparatedListField, DollarsField
from .models import AuditEvent, Clinic, ClinicMembership, Service, StaffAlert
from .roles import role_groups_sync
from .tenancy import is_clinic_scoped, user_clinic_ids
from .two_factor import admin_setup as two_factor_admin_setup
from .two_factor import can_require

admin.site.site_header = "Medspa front desk"
admin.site.site_title = "Front desk admin"
admin.site.index_title = "Back office"
# The index is today's front desk (medspa/frontdesk.py, templates/admin/frontdesk_index.html), with a link to each
# user's two-factor login page (medspa/two_factor.py).
admin.site.index_template = "admin/frontdesk_index.html"


def scoped_choices(model, user):
    """The rows of ``model`` that ``user`` may pick in a form, or None when ``model`` is not clinic-owned."""
    if is_clinic_scoped(model):
        return model._default_manager.for_user(user)
    return None


class ClinicScopedFormMixin:
    """Limits foreign-key and many-to-many choices to the user's clinics (for ModelAdmins and inlines)."""

    @staticmethod
    def _scope_choices(db_field, request, kwargs):
        if "queryset" not in kwargs:
            queryset = scoped_choices(db_field.remote_field.model, request.user)
            if queryset is not None:
                kwargs["queryset"] = queryset
        return kwargs

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        return super().formfield_for_foreignkey(db_field, request, **self._scope_choices(db_field, request, kwargs))

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        return super().formfield_for_manytomany(db_field, request, **self._scope_choices(db_field, request, kwargs))


class ClinicScopedAdmin(ClinicScopedFormMixin, admin.ModelAdmin):
    """Base for every clinic-owned ModelAdmin."""

    def get_queryset(self, request):
        return super().get_queryset(request).for_user(request.user)

    def get_object(self, request, object_id, from_field=None):
        # Django answers a missing object with a redirect to the index; another clinic's row must look absent: 404.
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such object.")
        return obj

    def get_list_filter(self, request):
        filters = []
        for spec in super().get_list_filter(request):
            if isinstance(spec, str) and "__" not in spec:
                field = self.model._meta.get_field(spec)
                if field.is_relation and is_clinic_scoped(field.related_model):
                    spec = (spec, admin.RelatedOnlyFieldListFilter)
            filters.append(spec)
        return filters

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        # A member of clinics in several zones sees a row in its own clinic's zone (others: ClinicTimeMiddleware).
        zone = None
        if object_id is not None and getattr(request, "clinic_zone", True) is None:
            zone = self._clinic_zone_of(object_id)
        with timezone.override(zone) if zone else nullcontext():
            response = super().changeform_view(request, object_id, form_url, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def _clinic_zone_of(self, object_id):
        field = "timezone" if self.model is Clinic else "clinic__timezone"
        try:
            name = self.model._default_manager.filter(pk=object_id).values_list(field, flat=True).first()
        except (ValueError, TypeError):
            return None
        return zoneinfo.ZoneInfo(name) if name else None

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        ids = user_clinic_ids(request.user)
        if ids and len(ids) == 1 and "clinic" in {f.name for f in self.model._meta.fields}:
            initial.setdefault("clinic", ids[0])
        return initial


class ClinicScopedInline(ClinicScopedFormMixin, admin.TabularInline):
    extra = 0


class PatientDataAdmin(ClinicScopedAdmin):
    """A clinic-scoped admin over patient data: every list, view, change and delete goes to the audit log."""

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        if request.method == "GET" and getattr(response, "status_code", None) == 200:
            audit_record(action=AuditEvent.Action.LIST, model=self.model, request=request, detail=dict(request.GET))
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        response = super().change_view(request, object_id, form_url, extra_context)
        if request.method == "GET" and response.status_code == 200:
            obj = self.get_object(request, object_id)
            audit_record(action=AuditEvent.Action.VIEW, obj=obj, request=request)
        return response

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        action = AuditEvent.Action.CHANGE if change else AuditEvent.Action.ADD
        audit_record(action=action, obj=obj, request=request, detail={"fields": list(form.changed_data)})

    def delete_model(self, request, obj):
        audit_record(action=AuditEvent.Action.DELETE, obj=obj, request=request)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for obj in queryset:
            audit_record(action=AuditEvent.Action.DELETE, obj=obj, request=request)
        super().delete_queryset(request, queryset)


class PlatformAdmin(admin.ModelAdmin):
    """Platform-wide tables (users, tokens, lockouts): superusers only; clinic staff never see them."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = lambda self, request, obj=None: (
        request.user.is_active and request.user.is_superuser
    )


# --- The tenant core ------------------------------------------------------------------------------------------------


class ServiceAdminForm(forms.ModelForm):
    """Staff type dollars; the catalog stores cents."""

    aliases = CommaSeparatedListField(required=False, help_text="Other names patients use, comma separated.")
    price_cents = DollarsField(
        label="Price ($)", required=False, help_text="Fixed price, price per unit, or the low end of a range."
    )
    price_max_cents = DollarsField(label="Up to ($)", required=False, help_text="High end of a range.")
    deposit_cents = DollarsField(label="Deposit ($)", help_text="To hold a time; 0 for none.")

    class Meta:
        model = Service
        fields = "__all__"


class ClinicAdminForm(forms.ModelForm):
    allowed_origins = CommaSeparatedListField(
        required=False, help_text="Other web origins allowed to post this clinic's leads, comma separated."
    )
    notified_staff = forms.ModelMultipleChoiceField(
        queryset=ClinicMembership.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Email these staff",
        help_text="When a patient needs a person (hand-off, urgent, a failed text) or the system needs one.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            return  # a new clinic has no staff yet: everyone added later is told (``notify`` defaults on)
        members = ClinicMembership.objects.filter(clinic=self.instance).select_related("user").order_by("pk")
        self.fields["notified_staff"].queryset = members
        self.fields["notified_staff"].initial = [m.pk for m in members if m.notify]

    class Meta:
        model = Clinic
        fields = "__all__"


PRICE_FIELDS = ["price_type", "price_cents", "price_max_cents", "unit_name", "typical_units_min", "typical_units_max"]


class ServiceInline(ClinicScopedInline):
    model = Service
    form = ServiceAdminForm
    fields = [
        "name",
        "aliases",
        *PRICE_FIELDS,
        "duration_minutes",
        "deposit_cents",
        "deposit_new_clients_only",
        "active",
    ]
    show_change_link = True


class MembershipInline(ClinicScopedInline):
    model = ClinicMembership
    autocomplete_fields = ["user"]
    verbose_name_plural = "staff"

    def _platform_only(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = _platform_only


@admin.register(Clinic)
class ClinicAdmin(ClinicScopedAdmin):
    form = ClinicAdminForm
    list_display = ["name", "slug", "city", "state", "timezone", "ai_enabled", "active", "service_count"]
    list_filter = ["active", "ai_enabled", "state"]
    search_fields = ["name", "slug", "city"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [ServiceInline, MembershipInline]
    fieldsets = [
        (None, {"fields": ["name", "slug", "active", "ai_enabled"]}),
        ("Location", {"fields": ["street", "city", "state", "postal_code", "timezone"]}),
        ("Contact", {"fields": ["front_desk_phone", "website", "allowed_origins"]}),
        (
            "Texting",
            {
                "fields": [
                    "intro_message",
                    "lead_intro_message",
                    "help_message",
                    "spanish",
                    "sending_window_start",
                    "sending_window_end",
                ]
            },
        ),
        ("Policies", {"fields": ["deposit_policy", "cancellation_policy", "cancellation_notice_hours"]}),
        ("Security", {"fields": ["require_two_factor"]}),
        ("Staff notifications", {"fields": ["notified_staff", "staff_mobile"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if not can_require(request.user, obj):
            readonly.append("require_two_factor")  # the owner's decision (or a superuser's)
        return readonly

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "notified_staff" in form.changed_data:
            staff_notified_set(clinic=obj, memberships=form.cleaned_data["notified_staff"])
        if change and "require_two_factor" in form.changed_data:
            audit_record(
                action=AuditEvent.Action.CHANGE, obj=obj, request=request, detail={"fields": ["require_two_factor"]}
            )

    @admin.display(description="services")
    def service_count(self, obj):
        return obj.services.filter(active=True).count()

    def save_formset(self, request, form, formset, change):
        users = _membership_users(formset) if formset.model is ClinicMembership else set()
        super().save_formset(request, form, formset, change)
        if formset.model is ClinicMembership:
            _sync_role_groups(users | _membership_users(formset))

    def has_add_permission(self, request):
        # Onboarding a new clinic is a platform task.
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


@admin.register(Service)
class ServiceAdmin(ClinicScopedAdmin):
    form = ServiceAdminForm
    list_display = ["name", "clinic", "price_display", "duration_minutes", "deposit_display", "active"]
    list_filter = ["clinic", "active", "price_type"]
    list_select_related = ["clinic"]
    search_fields = ["name", "aliases"]
    fieldsets = [
        (None, {"fields": ["clinic", "name", "aliases", "description", "active"]}),
        ("Price", {"fields": PRICE_FIELDS}),
        ("Booking", {"fields": ["duration_minutes", "deposit_cents", "deposit_new_clients_only", "emr_service_id"]}),
    ]

    @admin.display(description="price")
    def price_display(self, obj):
        return obj.price_text()

    @admin.display(description="deposit")
    def deposit_display(self, obj):
        if not obj.deposit_cents:
            return "none"
        who = " (new clients)" if obj.deposit_new_clients_only else ""
        return f"${obj.deposit_cents / 100:,.2f}{who}"


@admin.register(ClinicMembership)
class ClinicMembershipAdmin(ClinicScopedAdmin):
    list_display = ["user", "clinic", "role", "notify", "created_at"]
    list_filter = ["clinic", "role", "notify"]
    list_select_related = ["user", "clinic"]
    autocomplete_fields = ["user"]
    search_fields = ["user__username", "user__email"]

    def _platform_only(self, request, obj=None):
        return request.user.is_superuser

    has_add_permission = has_change_permission = has_delete_permission = _platform_only

    # A role is a permission group (medspa/roles.py): every save or delete re-syncs the user's groups, and the
    # previous user's when the membership was moved to someone else.
    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        _sync_role_groups({obj.user_id, form.initial.get("user")})

    def delete_model(self, request, obj):
        super().delete_model(request, obj)
        _sync_role_groups({obj.user_id})

    def delete_queryset(self, request, queryset):
        users = set(queryset.values_list("user_id", flat=True))
        super().delete_queryset(request, queryset)
        _sync_role_groups(users)


def _membership_users(formset):
    """Users a membership formset touches: each row's user before and after the edit, and deleted rows'."""
    users = set()
    for row_form in formset.forms:
        users.add(row_form.initial.get("user"))
        users.add(row_form.instance.user_id)
    users.update(obj.user_id for obj in getattr(formset, "deleted_objects", []))
    return users


def _sync_role_groups(user_ids):
    from django.contrib.auth import get_user_model

    for user in get_user_model().objects.filter(pk__in={pk for pk in user_ids if pk}):
        role_groups_sync(user)


@admin.register(AuditEvent)
class AuditEventAdmin(ClinicScopedAdmin):
    list_display = ["at", "actor", "action", "object_type", "object_id", "channel", "clinic"]
    list_filter = ["action", "channel", "clinic"]
    list_select_related = ["clinic"]
    search_fields = ["actor", "object_id"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class OpenAlertFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", "Needs attention"), ("no", "Resolved")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(StaffAlert)
class StaffAlertAdmin(ClinicScopedAdmin):
    """Needs attention: manual EMR bookings to enter, payments to review, urgent messages. Raised by the system
    (medspa.alerts.staff_alert); staff resolve them here."""

    list_display = ["created_at", "kind", "text", "related", "resolved", "clinic"]
    list_filter = [OpenAlertFilter, "kind", "clinic"]
    list_select_related = ["clinic"]
    date_hierarchy = "created_at"
    actions = ["resolve"]
    readonly_fields = [f.name for f in StaffAlert._meta.fields]

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not frontdesk.several_clinics(request.user):
            columns.remove("clinic")  # one clinic: the column says nothing
        return columns

    @admin.display(description="resolved", ordering="resolved_at")
    def resolved(self, obj):
        if obj.resolved_at is None:
            return "open"
        return f"{formats.localize(timezone.template_localtime(obj.resolved_at))} by {obj.resolved_by or 'staff'}"

    @admin.display(description="about")
    def related(self, obj):
        from django.urls import NoReverseMatch, reverse
        from django.utils.html import format_html

        if not obj.object_type:
            return ""
        app_label, _, model = obj.object_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[obj.object_id])
        except NoReverseMatch:
            return f"{obj.object_type} #{obj.object_id}"
        return format_html('<a href="{}">{} #{}</a>', url, model, obj.object_id)

    @admin.action(description="Mark resolved", permissions=["change"])
    def resolve(self, request, queryset):

        done = sum(staff_alert_resolve(alert=alert, user=request.user) for alert in queryset)
        self.message_user(request, f"{done} alert(s) resolved.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser


ALERT_KINDS = {
    StaffAlert.Kind.HANDOFF: "handoff",
    StaffAlert.Kind.URGENT: "urgent",
    StaffAlert.Kind.EMR_ERROR: "emr",
    StaffAlert.Kind.PAYMENT: "payment",
    StaffAlert.Kind.REFUND: "payment",
    StaffAlert.Kind.MANUAL_BOOKING: "manual",
    StaffAlert.Kind.MANUAL_CANCEL: "manual",
}


def admin_change_url(object_type: str, object_id) -> str | None:
    """The admin page of ``"app_label.model"`` #``object_id``, or None when it has none."""
    app_label, _, model = object_type.partition(".")
    try:
        return reverse(f"admin:{app_label}_{model}_change", args=[object_id])
    except NoReverseMatch:
        return None


@frontdesk.needs_person(90)
def _open_alerts(request, clinics):
    """Open staff alerts (EMR errors, payments, manual bookings, provider events...). The apps' own entries come
    first, so an alert about a conversation or a booking they list is shown there, with the patient's name."""
    if not request.user.has_perm("medspa.view_staffalert"):
        return
    alerts = StaffAlert.objects.for_user(request.user).filter(clinic__in=clinics, resolved_at__isnull=True)
    for alert in alerts.select_related("clinic").order_by("created_at")[:100]:
        key = f"{alert.object_type}:{alert.object_id}" if alert.object_type else f"medspa.staffalert:{alert.pk}"
        url = admin_change_url(alert.object_type, alert.object_id) if alert.object_type else None
        yield frontdesk.Attention(
            key=key,
            kind=ALERT_KINDS.get(alert.kind, "other"),
            title=alert.get_kind_display(),
            reason=alert.text,
            since=alert.created_at,
            url=url or reverse("admin:medspa_staffalert_change", args=[alert.pk]),
            clinic=alert.clinic,
        )


# --- Platform tables, re-registered superuser-only ------------------------------------------------------------------


# Apps listed before medspa in INSTALLED_APPS (auth, authtoken, axes) have registered their admins by now; each
# becomes superuser-only. Our own apps come after medspa and register ClinicScopedAdmin subclasses.
for _model, _model_admin in list(admin.site._registry.items()):
    if not isinstance(_model_admin, ClinicScopedAdmin):
        _base = type(_model_admin)
        admin.site.unregister(_model)
        admin.site.register(_model, type(f"Platform{_base.__name__}", (PlatformAdmin, _base), {}))

# Two-factor login: no admin for the OTP device tables (secrets); the user admin shows who has it and lets a
# superuser reset it.
two_factor_admin_setup(admin.site)
