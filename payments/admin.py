from django.contrib import admin, messages
from django.utils.html import format_html

from bookings.services import BookingStateError
from medspa.admin import ClinicScopedAdmin, ClinicScopedInline
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


@admin.register(Payment)
class PaymentAdmin(ClinicScopedAdmin):
    list_display = [
        "__str__",
        "created_at",
        "clinic",
        "booking",
        "amount",
        "status",
        "kept_at",
        "provider",
        "link",
        "flag",
    ]
    list_filter = [ReviewFilter, "status", "provider", "clinic"]
    list_select_related = ["clinic", "booking"]
    date_hierarchy = "created_at"
    search_fields = ["order_id", "payment_id", "link_id"]
    readonly_fields = [f.name for f in Payment._meta.fields]
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

    @admin.action(description="Refund the deposit (through the payment provider)")
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

    @admin.action(description="Mark reviewed (clear the flag)")
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

    @admin.action(description="Run the failed steps again")
    def retry(self, request, queryset):
        retried = [item.pk for item in queryset if services.outbox_retry(item=item)]
        for pk in retried:
            enqueue("payments.run_outbox_item", pk)
        self.message_user(request, f"{len(retried)} step(s) queued again.")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
