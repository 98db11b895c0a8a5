from django.core.validators import MaxLengthValidator
from django.db import models

from medspa.models import Clinic, Service
from medspa.phones import validate_e164
from medspa.tenancy import ClinicScopedQuerySet, validate_same_clinic

MESSAGE_MAX_LENGTH = 2000


class Lead(models.Model):
    """A person who asked a clinic to contact them, with the record of their consent to be texted.

    Created only by ``leads.services.lead_create``. The consent fields are the clinic's evidence under the TCPA
    and are never edited after creation.
    """

    class Source(models.TextChoices):
        WEB_FORM = "web_form", "Web form"
        API = "api", "API"
        STAFF = "staff", "Staff"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="leads")
    name = models.CharField(max_length=120)
    phone = models.CharField(max_length=16, validators=[validate_e164], help_text="E.164")
    email = models.EmailField(blank=True)
    service_of_interest = models.ForeignKey(
        Service, on_delete=models.SET_NULL, null=True, blank=True, related_name="leads"
    )
    service_text = models.CharField(max_length=120, blank=True, help_text="The service as the person wrote it.")
    message = models.TextField(blank=True, validators=[MaxLengthValidator(MESSAGE_MAX_LENGTH)])
    source = models.CharField(max_length=20, choices=Source.choices, default=Source.WEB_FORM)
    source_url = models.URLField(max_length=500, blank=True, help_text="The page the form was on.")
    fingerprint = models.CharField(max_length=64, db_index=True, editable=False)

    sms_consent = models.BooleanField("consented to texts", default=False)
    consent_text = models.TextField("consent wording shown", blank=True)
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_ip = models.GenericIPAddressField(null=True, blank=True)
    consent_user_agent = models.CharField(max_length=400, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["clinic", "phone"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(sms_consent=False)
                | (~models.Q(consent_text="") & models.Q(consent_at__isnull=False)),
                name="lead_consent_has_wording_and_time",
            )
        ]

    def __str__(self):
        # Never the name or phone: this string lands in admin history and messages.
        return f"Lead #{self.pk}"

    def clean(self):
        validate_same_clinic(self, "service_of_interest")
