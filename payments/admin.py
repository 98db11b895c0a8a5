from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from bookings.admin import patient_label
from bookings.services import BookingStateError
from medspa import frontdesk
from medspa.admin import ClinicScopedAdmin, ClinicScopedInline
from medspa.clinic_time import clinic_local_html
from medspa.frontdesk import patient_html, several_clinics
from medspa.models import format_cents
from medspa.queueing import enqueue

from . import services
from .models import OutboxItem, Payment, PaymentConfig


@admin.register(PaymentConfig)
class PaymentConfigAdmin(ClinicScopedAdmin):
    """A clinic's own Square account. Empty: the platform's Square account, else test payments (development)."""

    list_display = ["clinic", "provider", "square_location_id", "currency"]
    list_select_related = ["clinic"]


class OutboxInline(ClinicScopedInline):
    model = OutboxItem
    fields = ["kind", "status", "attempts", "next_attempt_at", "last_error", "done_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


class ReviewFilter(admin.SimpleListFilter):
    title = "needs review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("yes", "Flagged for review")]

    def queryset(self, request, queryset):
        return queryset.filter(needs_review=True) if self.value() == "yes" else queryset


MONEY_FIELDS = {"amount_cents": "amount", "paid_cents": "paid", "refunded_cents": "refunded"}


@admin.register(Payment)
class PaymentAdmin(ClinicScopedAdmin):
    list_display = [
        "patient",
        "appointment",
        "service",
        "provider_name",
        "amount",
        "status_display",
        "flag",
        "clinic",
    ]
    list_display_links = ["patient"]
    list_filter = [ReviewFilter, "status", "provider", "clinic"]
    list_select_related = ["clinic", "booking__service", "booking__provider"]
    date_hierarchy = "created_at"
    search_fields = ["order_id", "payment_id", "link_id", "booking__patient_name", "booking__patient_phone"]
    readonly_fields = [f.name for f in Payment._meta.fields] + ["link", *MONEY_FIELDS.values()]

    def get_fields(self, request, obj=None):
        # Money in dollars ("$50"), not cents; the link as a link.
        shown = [f for f in super().get_fields(request, obj) if f not in (*MONEY_FIELDS.values(), "link")]
        return [MONEY_FIELDS.get(f, "link" if f == "link_url" else f) for f in shown]

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        if not several_clinics(request.user):
            columns.remove("clinic")
        return columns

    @admin.display(description="patient", ordering="booking__patient_name")
    def patient(self, obj):
        return patient_html(obj.booking.patient_name, obj.booking.patient_phone)

    @admin.display(description="appointment", ordering="booking__start")
    def appointment(self, obj):
        return clinic_local_html(obj.booking.start, obj.clinic)

    @admin.display(description="service", ordering="booking__service__name")
    def service(self, obj):
        return obj.booking.service.name

    @admin.display(description="provider", ordering="booking__provider__name")
    def provider_name(self, obj):
        return obj.booking.provider.name

    @admin.display(description="status", ordering="status")
    def status_display(self, obj):
        chip = format_html('<span class="fd-chip fd-payment-{}">{}</span>', obj.status, obj.get_status_display())
        if obj.kept_at:  # a no-show's deposit kept per the clinic's policy (lifecycle)
            return format_html('{} <span class="fd-note">deposit kept (no-show)</span>', chip)
        return chip

    @admin.display(description="paid")
    def paid(self, obj):
        return format_cents(obj.paid_cents)

    @admin.display(description="refunded")
    def refunded(self, obj):
        return format_cents(obj.refunded_cents)

    inlines = [OutboxInline]
    actions = ["refund", "mark_reviewed"]
    show_full_result_count = False

    @admin.display(description="amount", ordering="amount_cents")
    def amount(self, obj):
        return obj.amount_text

    @admin.display(description="payment link")
    def link(self, obj):
        return format_html('<a href="{}" target="_blank" rel="noopener">open</a>', obj.link_url) if obj.link_url else ""

    @admin.display(description="review", boolean=True)
    def flag(self, obj):
        return obj.needs_review

    @admin.action(description="Refund the deposit (through the payment provider)", permissions=["change"])
    def refund(self, request, queryset):
        done = 0
        for payment in queryset:
            try:
                services.payment_refund_request(payment=payment, reason="Refunded by the clinic", user=request.user)
                done += 1
            except BookingStateError as exc:
                self.message_user(request, f"#{payment.pk}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} refund(s) requested; their status updates here.")

    @admin.action(description="Mark reviewed (clear the flag)", permissions=["change"])
    def mark_reviewed(self, request, queryset):
        updated = queryset.filter(needs_review=True).update(needs_review=False)
        self.message_user(request, f"{updated} payment(s) marked reviewed.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(OutboxItem)
class OutboxItemAdmin(ClinicScopedAdmin):
    """The steps after a payment (confirm, text, refund). Failed ones raised a staff alert; retry them here."""

    list_display = ["__str__", "created_at", "clinic", "status", "attempts", "next_attempt_at", "last_error"]
    list_filter = ["status", "kind", "clinic"]
    list_select_related = ["clinic"]
    readonly_fields = [f.name for f in OutboxItem._meta.fields]
    actions = ["retry"]

    @admin.action(description="Run the failed steps again", permissions=["change"])
    def retry(self, request, queryset):
        retried = [item.pk for item in queryset if services.outbox_retry(item=item)]
        for pk in retried:
            enqueue("payments.run_outbox_item", pk)
        self.message_user(request, f"{len(retried)} step(s) queued again.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# --- The home page -----------------------------------------------------------------------------------------------


@frontdesk.needs_person(30)
def _flagged_payments(request, clinics):
    """Payments that did not match what we expected (a smaller amount, a late payment): a person checks."""
    if not request.user.has_perm("payments.view_payment"):
        return
    rows = (
        Payment.objects.for_user(request.user)
        .filter(clinic__in=clinics, needs_review=True)
        .select_related("clinic", "booking")
        .order_by("updated_at")[:100]
    )
    for payment in rows:
        yield frontdesk.Attention(
            key=f"payments.payment:{payment.pk}",
            kind="payment",
            title=f"Deposit {payment.amount_text}: {patient_label(payment.booking)}",
            reason=payment.review_reason or "The payment did not match what was expected: check it",
            since=payment.updated_at,
            url=reverse("admin:payments_payment_change", args=[payment.pk]),
            clinic=payment.clinic,
        )
