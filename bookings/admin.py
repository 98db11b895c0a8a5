from datetime import datetime, time, timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from emr.base import EmrError
from medspa import frontdesk
from medspa.admin import PatientDataAdmin
from medspa.audit import audit_record
from medspa.clinic_time import clinic_local, clinic_local_html
from medspa.frontdesk import display_phone, patient_html, several_clinics
from medspa.models import AuditEvent, Clinic, format_cents

from . import services
from .models import Booking, ManualBookingRequest


def _local_start(obj):
    return clinic_local(obj.start, obj.clinic)


def patient_label(booking) -> str:
    phone = display_phone(booking.patient_phone)
    return f"{booking.patient_name} ({phone})" if booking.patient_name else phone


def status_chip(booking):
    return format_html('<span class="fd-chip fd-booking-{}">{}</span>', booking.status, booking.get_status_display())


class BookingColumns:
    """The columns a front desk scans: who, what, with whom, when (clinic time, with the zone), status, dollars."""

    @admin.display(description="patient", ordering="patient_name")
    def patient(self, obj):
        return patient_html(obj.patient_name, obj.patient_phone)

    @admin.display(description="starts", ordering="start")
    def local_start(self, obj):
        return clinic_local_html(obj.start, obj.clinic)

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        if obj.patient_confirmed_at:  # the patient answered the confirmation request (lifecycle)
            return format_html('{} <span class="fd-note">patient confirmed</span>', status_chip(obj))
        return status_chip(obj)

    @admin.display(description="deposit", ordering="deposit_cents")
    def deposit(self, obj):
        return format_cents(obj.deposit_cents) if obj.deposit_cents else "none"

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not several_clinics(request.user) and "clinic" in columns:
            columns.remove("clinic")
        return columns


@admin.register(Booking)
class BookingAdmin(BookingColumns, PatientDataAdmin):
    list_display = [
        "patient",
        "local_start",
        "service",
        "provider",
        "status_display",
        "deposit",
        "clinic",
    ]
    list_display_links = ["patient"]
    list_filter = ["clinic", "status", "provider"]
    list_select_related = ["clinic", "service", "provider"]
    date_hierarchy = "start"
    search_fields = ["patient_phone", "patient_name"]
    raw_id_fields = ["conversation"]
    show_full_result_count = False
    actions = ["cancel_bookings", "mark_completed", "mark_no_show"]
    change_list_template = "admin/bookings/booking/change_list.html"

    def has_add_permission(self, request):
        return False  # bookings are made through booking_hold (the assistant)

    def get_readonly_fields(self, request, obj=None):
        # Status, times and EMR ids change only through the booking rules (actions below), never by hand.
        return [f.name for f in Booking._meta.fields if f.name not in ("patient_name",)] + ["deposit"]

    def get_fields(self, request, obj=None):
        # Money in dollars, not "Deposit cents: 5000".
        fields = [f for f in super().get_fields(request, obj) if f != "deposit"]
        return ["deposit" if f == "deposit_cents" else f for f in fields]

    @admin.action(description="Cancel the selected bookings (and in the EMR)", permissions=["change"])
    def cancel_bookings(self, request, queryset):
        done, failed = 0, []
        for booking in queryset:
            try:
                services.booking_cancel(booking_id=booking.pk, by="staff", user=request.user, request=request)
                done += 1
            except (services.BookingStateError, EmrError) as exc:
                failed.append(f"#{booking.pk}: {exc}")
        if done:
            self.message_user(request, f"{done} booking(s) cancelled.")
        if failed:
            self.message_user(request, "Not cancelled: " + "; ".join(failed), messages.ERROR)

    def _mark(self, request, queryset, outcome):
        done, failed = 0, []
        for booking in queryset:
            try:
                services.booking_mark(booking_id=booking.pk, outcome=outcome, user=request.user, request=request)
                done += 1
            except services.BookingStateError as exc:
                failed.append(f"#{booking.pk}: {exc}")
        if done:
            self.message_user(request, f"{done} booking(s) marked {outcome.replace('_', '-')}.")
        if failed:
            self.message_user(request, "Not marked: " + "; ".join(failed), messages.ERROR)

    @admin.action(description="Mark the selected visits completed (the patient came)", permissions=["change"])
    def mark_completed(self, request, queryset):
        self._mark(request, queryset, "completed")

    @admin.action(
        description="Mark the selected visits no-show (the deposit is kept per policy)", permissions=["change"]
    )
    def mark_no_show(self, request, queryset):
        self._mark(request, queryset, "no_show")

    def get_urls(self):
        return [
            path("day/", self.admin_site.admin_view(self.day_view), name="bookings_booking_day"),
            *super().get_urls(),
        ]

    def day_view(self, request):
        """One clinic's day, per provider, in clinic time: what the front desk prints in the morning."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        clinics = Clinic.objects.for_user(request.user)
        form = DayForm(request.GET or None, clinics=clinics)
        clinic, day = None, None
        if form.is_valid():
            clinic, day = form.cleaned_data["clinic"], form.cleaned_data.get("day")
        elif not request.GET and clinics.count() == 1:
            clinic = clinics.get()
        rows, providers = [], {}
        if clinic is not None:
            day = day or timezone.localtime(timezone.now(), clinic.tz).date()
            start = datetime.combine(day, datetime.min.time(), tzinfo=clinic.tz)
            end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=clinic.tz)
            rows = list(
                Booking.objects.for_clinic(clinic)
                .filter(start__lt=end, end__gt=start)
                .select_related("clinic", "service", "provider")
                .order_by("provider__name", "start")
            )
            for row in rows:
                providers.setdefault(row.provider, []).append(row)
            audit_record(
                action=AuditEvent.Action.LIST,
                model=Booking,
                clinic=clinic,
                request=request,
                detail={"view": "day", "count": len(rows)},
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Bookings on {day:%A %B %-d, %Y}" if day else "Bookings by day",
            "form": form,
            "clinic": clinic,
            "day": day,
            "previous": day - timedelta(days=1) if day else None,
            "next": day + timedelta(days=1) if day else None,
            "providers": list(providers.items()),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/bookings/day.html", context)


class DayForm(forms.Form):
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none())
    day = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, clinics, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["clinic"].queryset = clinics


@admin.register(ManualBookingRequest)
class ManualBookingRequestAdmin(BookingColumns, PatientDataAdmin):
    """The front desk's queue for a manual EMR (e.g. Aesthetic Record, which has no API). These bookings are paid
    and their time is held here, but they are NOT in the clinic's EMR until a person enters them there."""

    list_display = ["patient", "local_start", "service", "provider", "deposit", "open", "clinic"]
    list_filter = ["clinic", "provider"]
    list_select_related = ["clinic", "service", "provider"]
    actions = ["mark_confirmed"]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(status=Booking.Status.AWAITING_STAFF)

    @admin.display(description="booking")
    def open(self, obj):
        return format_html('<a href="{}">details</a>', reverse("admin:bookings_booking_change", args=[obj.pk]))

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "subtitle": "Manual integration: nothing here is in your EMR until you enter it there. Enter each "
            "booking in your EMR, then select it and choose \u201cMark confirmed\u201d; the patient gets a text.",
        }
        return super().changelist_view(request, extra_context)

    @admin.action(description="Mark confirmed (I entered it in our EMR); texts the patient", permissions=["change"])
    def mark_confirmed(self, request, queryset):
        done = 0
        for booking in queryset:
            try:
                services.booking_staff_confirm(booking_id=booking.pk, user=request.user, request=request)
                done += 1
            except services.BookingStateError as exc:
                self.message_user(request, f"#{booking.pk}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} booking(s) confirmed; the patients will get a confirmation text.")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return self.has_view_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False


# --- The home page -----------------------------------------------------------------------------------------------

SHOWN_ON_THE_DAY = ["held", "awaiting_deposit", "awaiting_staff", "confirmed"]


@frontdesk.needs_person(20)
def _manual_bookings_to_enter(request, clinics):
    """Paid bookings on a manual EMR: a person must enter each in the clinic's EMR."""
    if not request.user.has_perm("bookings.view_manualbookingrequest"):
        return
    rows = (
        Booking.objects.for_user(request.user)
        .filter(clinic__in=clinics, status=Booking.Status.AWAITING_STAFF)
        .select_related("clinic", "service", "provider")
        .order_by("updated_at")[:100]
    )
    for booking in rows:
        yield frontdesk.Attention(
            key=f"bookings.booking:{booking.pk}",
            kind="manual",
            title=f"{patient_label(booking)}: {booking.service.name}",
            reason=(
                f"Enter it in your EMR: {_local_start(booking)} with {booking.provider.name}, "
                "then mark it confirmed (the patient gets a text)"
            ),
            since=booking.updated_at,
            url=reverse("admin:bookings_manualbookingrequest_change", args=[booking.pk]),
            clinic=booking.clinic,
        )


@frontdesk.panel(20, "admin/bookings/frontdesk_days.html")
def _todays_bookings(request, clinics):
    """Today's and tomorrow's bookings by provider, per clinic, in clinic time."""
    if not request.user.has_perm("bookings.view_booking"):
        return None
    days = []
    for clinic in clinics:
        today = frontdesk.clinic_today(clinic)
        start = datetime.combine(today, time.min, tzinfo=clinic.tz)
        end = datetime.combine(today + timedelta(days=2), time.min, tzinfo=clinic.tz)
        rows = list(
            Booking.objects.for_user(request.user)
            .filter(clinic=clinic, status__in=SHOWN_ON_THE_DAY, start__gte=start, start__lt=end)
            .select_related("service", "provider")
            .order_by("start")
        )
        for label, day in (("Today", today), ("Tomorrow", today + timedelta(days=1))):
            providers = {}
            for booking in rows:
                if timezone.localtime(booking.start, clinic.tz).date() == day:
                    booking.clinic = clinic
                    providers.setdefault(booking.provider.name, []).append(
                        {
                            "url": reverse("admin:bookings_booking_change", args=[booking.pk]),
                            "time": timezone.localtime(booking.start, clinic.tz).strftime("%-I:%M %p"),
                            "patient": patient_html(booking.patient_name, booking.patient_phone),
                            "service": booking.service.name,
                            "status": booking.status,
                            "status_label": booking.get_status_display(),
                        }
                    )
            days.append(
                {
                    "label": label,
                    "date": day,
                    "zone": timezone.localtime(start, clinic.tz).strftime("%Z"),
                    "clinic": clinic,
                    "providers": sorted(providers.items()),
                    "day_url": reverse("admin:bookings_booking_day") + f"?clinic={clinic.pk}&day={day.isoformat()}",
                }
            )
    return {"days": days}
