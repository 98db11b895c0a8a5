from django.db import models

from medspa.fields import EncryptedTextField
from medspa.models import Clinic, Service
from medspa.tenancy import ClinicScopedQuerySet, validate_same_clinic


class EmrConfig(models.Model):
    """A clinic's scheduling system and the rules of its calendar. Credentials are stored encrypted."""

    class Kind(models.TextChoices):
        BUILTIN = "builtin", "Built-in calendar"
        NEXTECH = "nextech", "Nextech (FHIR API)"
        BOULEVARD = "boulevard", "Boulevard (Client API)"
        SQUARE = "square", "Square Appointments (Bookings API)"
        ZENOTI = "zenoti", "Zenoti (service booking API)"
        MANUAL = "manual", "Manual: staff book it in their EMR (e.g. Aesthetic Record)"

    clinic = models.OneToOneField(Clinic, on_delete=models.CASCADE, related_name="emr_config")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.BUILTIN)
    credentials = EncryptedTextField(blank=True, help_text="JSON with the EMR's credentials; stored encrypted.")
    location_ref = models.CharField("EMR location id", max_length=100, blank=True)
    slot_minutes = models.PositiveIntegerField(default=15, help_text="Start times are offered on this grid.")
    buffer_minutes = models.PositiveIntegerField(default=0, help_text="Kept free after each appointment.")
    min_notice_minutes = models.PositiveIntegerField(default=120, help_text="No booking closer than this to now.")
    horizon_days = models.PositiveIntegerField(default=60, help_text="No booking further ahead than this.")
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        verbose_name = "EMR configuration"

    def __str__(self):
        return f"{self.clinic}: {self.get_kind_display()}"


class Provider(models.Model):
    """A person who performs treatments, with the services they do and (on the built-in calendar) their hours."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="providers")
    name = models.CharField(max_length=120)
    title = models.CharField(max_length=120, blank=True, help_text="e.g. MD, Nurse injector")
    services = models.ManyToManyField(Service, related_name="providers", blank=True)
    emr_ref = models.CharField("EMR practitioner id", max_length=100, blank=True)
    active = models.BooleanField(default=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["clinic", "name"]
        constraints = [models.UniqueConstraint(fields=["clinic", "name"], name="provider_unique_name_per_clinic")]

    def __str__(self):
        return self.name


class WorkingHours(models.Model):
    class Weekday(models.IntegerChoices):
        MONDAY = 0, "Monday"
        TUESDAY = 1, "Tuesday"
        WEDNESDAY = 2, "Wednesday"
        THURSDAY = 3, "Thursday"
        FRIDAY = 4, "Friday"
        SATURDAY = 5, "Saturday"
        SUNDAY = 6, "Sunday"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="hours")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start = models.TimeField()
    end = models.TimeField()

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["provider", "weekday", "start"]
        verbose_name_plural = "working hours"
        constraints = [
            models.CheckConstraint(condition=models.Q(start__lt=models.F("end")), name="hours_start_before_end")
        ]

    def __str__(self):
        return f"{self.get_weekday_display()} {self.start:%H:%M}-{self.end:%H:%M}"

    def clean(self):
        validate_same_clinic(self, "provider")


class TimeOff(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey(Provider, on_delete=models.CASCADE, related_name="time_off")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=120, blank=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["start"]
        verbose_name_plural = "time off"
        constraints = [
            models.CheckConstraint(condition=models.Q(start__lt=models.F("end")), name="timeoff_start_before_end")
        ]

    def __str__(self):
        return f"{self.provider}: {self.start:%Y-%m-%d %H:%M} - {self.end:%Y-%m-%d %H:%M}"

    def clean(self):
        validate_same_clinic(self, "provider")
