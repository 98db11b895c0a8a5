from django.db import models

from medspa.models import Clinic
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet


class OptOutQuerySet(ClinicScopedQuerySet):
    def active(self):
        return self.filter(active=True)


class OptOut(models.Model):
    """The opt-out ledger: one row per (clinic, phone). While ``active``, that clinic sends that number nothing but
    the single opt-out confirmation. Rows are never deleted: an opt-in clears ``active`` and keeps the history."""

    class Source(models.TextChoices):
        KEYWORD = "keyword", "Opt-out keyword"
        PHRASE = "phrase", "Revocation in plain words"
        UNCLEAR = "unclear", "Unclear text, taken as opt-out"
        PROVIDER = "provider", "Carrier/provider block"
        STAFF = "staff", "Staff"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="opt_outs")
    phone = models.CharField(max_length=16, validators=[validate_e164])
    active = models.BooleanField(default=True, help_text="Opted out now.")
    source = models.CharField(max_length=10, choices=Source.choices)
    detail = models.CharField(
        max_length=120, blank=True, help_text="Why: the rule that matched or the provider error code; never the text."
    )
    needs_review = models.BooleanField(
        default=False,
        help_text="Taken as an opt-out without being a clear one (e.g. 'cancel' alone): check with staff.",
    )
    opted_out_at = models.DateTimeField()
    opted_in_at = models.DateTimeField(null=True, blank=True)
    times_opted_out = models.PositiveIntegerField(default=1)
    updated_at = models.DateTimeField(auto_now=True)

    objects = OptOutQuerySet.as_manager()

    class Meta:
        verbose_name = "opt-out"
        ordering = ["-opted_out_at"]
        constraints = [models.UniqueConstraint(fields=["clinic", "phone"], name="optout_unique_phone_per_clinic")]

    def __str__(self):
        return f"Opt-out #{self.pk}"
