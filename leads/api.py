"""Lead capture (public) and the staff list of a clinic's leads."""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ParseError, PermissionDenied, Throttled
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from medspa.api import ClinicScopedListView
from medspa.http import client_ip
from medspa.models import Clinic
from medspa.queueing import CACHE_ERRORS

from .cors import origin_allowed_for
from .forms import PUBLIC_MESSAGE_MAX_LENGTH, PUBLIC_MESSAGE_TOO_LONG
from .limits import BodyRefused, check_body
from .metrics import LEAD_SUBMISSIONS
from .models import Lead
from .services import lead_create

logger = logging.getLogger(__name__)


class LeadThrottle(ScopedRateThrottle):
    """Per client IP, as medspa.http.client_ip sees it behind TRUSTED_PROXY_COUNT proxies.

    The count lives in the cache (Redis in production). With the cache down the lead is taken unthrottled: a
    patient's request is worth more than a minute of rate limiting (docs/DECISIONS.md, "Leads while Redis is down").
    """

    def get_ident(self, request):
        return client_ip(request) or "unknown"

    def allow_request(self, request, view):
        try:
            return super().allow_request(request, view)
        except CACHE_ERRORS as exc:
            logger.warning("lead rate limit skipped: the cache is unavailable (%s)", type(exc).__name__)
            return True


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class LeadJSONParser(JSONParser):
    """JSON, where a document nested deeper than Python's recursion limit (a few KB of ``[``) is a 400 like any
    other unreadable body, not a server error."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply.") from None


class LeadSubmissionSerializer(serializers.Serializer):
    clinic = serializers.SlugField(
        max_length=60,
        help_text="The clinic's slug, e.g. demo-clinic-001.",
        error_messages={"required": "Say which clinic (its slug).", "invalid": "Unknown clinic."},
    )
    name = serializers.CharField(
        max_length=120, error_messages={"required": "Enter your name.", "blank": "Enter your name."}
    )
    phone = serializers.CharField(
        max_length=32,
        help_text="Mobile number; US numbers may omit +1.",
        error_messages={"required": "Enter a mobile phone number.", "blank": "Enter a mobile phone number."},
    )
    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    service_of_interest = serializers.CharField(required=False, allow_blank=True, max_length=120)
    message = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=PUBLIC_MESSAGE_MAX_LENGTH,
        error_messages={"max_length": PUBLIC_MESSAGE_TOO_LONG},
    )
    sms_consent = serializers.BooleanField(required=False, default=False)
    consent_text = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=PUBLIC_MESSAGE_MAX_LENGTH,
        help_text="The exact consent wording the person saw.",
    )
    source_url = serializers.URLField(required=False, allow_blank=True, max_length=500)

    # Older forms (and the original Go API) used these names.
    ALIASES = {"clinic_slug": "clinic", "clinic_id": "clinic", "service": "service_of_interest"}

    def to_internal_value(self, data):
        if hasattr(data, "dict"):
            data = data.dict()
        elif not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Send a JSON object or a form."]})
        if len(data) > settings.LEAD_MAX_FIELDS:  # forms were counted before parsing (leads/limits.py); JSON here
            raise serializers.ValidationError(
                {"non_field_errors": [f"Too many fields: at most {settings.LEAD_MAX_FIELDS}."]}
            )
        data = dict(data)
        for alias, name in self.ALIASES.items():
            if alias in data and name not in data:
                data[name] = data.pop(alias)
        return super().to_internal_value(data)

    def validate_clinic(self, slug):
        clinic = Clinic.objects.active().filter(slug=slug).first()
        if clinic is None:
            raise serializers.ValidationError("Unknown clinic.")
        return clinic


class LeadCreateView(APIView):
    """POST /api/leads: public, JSON or form encoded. 201 with the lead id; 200 with the same id for a repeat."""

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [LeadJSONParser, FormParser, MultiPartParser]
    throttle_classes = [LeadThrottle]
    throttle_scope = "leads"

    def initial(self, request, *args, **kwargs):
        # The hosted form's limits (leads/limits.py), before DRF parses anything: 413 too large, 400 too many fields.
        try:
            check_body(request._request, endpoint="api_leads")  # Django's request: its content_type is parsed
        except BodyRefused as refused:
            LEAD_SUBMISSIONS.labels("invalid").inc()
            raise (BodyTooLarge if refused.status == 413 else ParseError)(refused.reason) from None
        super().initial(request, *args, **kwargs)

    def throttled(self, request, wait):
        LEAD_SUBMISSIONS.labels("throttled").inc()
        raise Throttled(wait)

    @extend_schema(
        request=LeadSubmissionSerializer,
        responses={
            201: inline_serializer(
                "LeadCreated", {"id": serializers.IntegerField(), "duplicate": serializers.BooleanField()}
            ),
            200: OpenApiResponse(description="The same submission was received moments ago: its lead id."),
            400: OpenApiResponse(description="A message per invalid field."),
            403: OpenApiResponse(description="The page's origin may not send leads for this clinic."),
            413: OpenApiResponse(description="The body is larger than LEAD_MAX_BODY_BYTES."),
            415: OpenApiResponse(description="Neither JSON nor a form."),
            429: OpenApiResponse(description="Too many submissions from this address."),
        },
        auth=[],
    )
    def post(self, request):
        serializer = LeadSubmissionSerializer(data=request.data)
        if not serializer.is_valid():
            LEAD_SUBMISSIONS.labels("invalid").inc()
            return Response(serializer.errors, status=status.HTTP_400_BAD_REQUEST)
        data = dict(serializer.validated_data)
        clinic = data.pop("clinic")
        if not origin_allowed_for(clinic, request.headers.get("Origin", "")):
            LEAD_SUBMISSIONS.labels("origin_refused").inc()
            raise PermissionDenied("This website may not send leads for this clinic.")
        try:
            lead, created = lead_create(
                clinic=clinic,
                source=Lead.Source.WEB_FORM,
                ip=client_ip(request),
                user_agent=request.headers.get("User-Agent", ""),
                **data,
            )
        except DjangoValidationError as exc:
            LEAD_SUBMISSIONS.labels("invalid").inc()
            return Response(exc.message_dict, status=status.HTTP_400_BAD_REQUEST)
        LEAD_SUBMISSIONS.labels("created" if created else "duplicate").inc()
        return Response(
            {"id": lead.pk, "duplicate": not created},
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class LeadSerializer(serializers.ModelSerializer):
    service_of_interest = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Lead
        fields = [
            "id",
            "name",
            "phone",
            "email",
            "service_of_interest",
            "service_text",
            "message",
            "source",
            "source_url",
            "sms_consent",
            "consent_text",
            "consent_at",
            "created_at",
        ]


class ClinicLeadListView(ClinicScopedListView):
    """GET /api/clinics/{slug}/leads: the clinic's leads, newest first (staff token)."""

    model = Lead
    serializer_class = LeadSerializer

    def get_queryset(self):
        return super().get_queryset().select_related("service_of_interest")
