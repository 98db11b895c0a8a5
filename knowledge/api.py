"""Staff API for a clinic's knowledge: list, add (one or bulk), search."""

from django.db import transaction
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from medspa.api import ClinicScopedListView
from medspa.audit import audit_record
from medspa.models import AuditEvent

from .models import KnowledgeDocument
from .services import BODY_MAX, KnowledgeError, document_upsert, documents_load, knowledge_search

BULK_MAX = 200


class KnowledgeDocumentSerializer(serializers.ModelSerializer):
    content = serializers.CharField(source="body")

    class Meta:
        model = KnowledgeDocument
        fields = ["id", "title", "content", "source", "active", "created_at", "updated_at"]


class KnowledgeInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    content = serializers.CharField(max_length=BODY_MAX)


class KnowledgeView(ClinicScopedListView):
    """GET: the clinic's documents. POST: one ``{title, content}``, or ``{"clinic_id": SLUG, "documents": [...]}``.
    A document with an existing title replaces that document's text.

    GET needs ``knowledge.view_knowledgedocument``, POST ``add_`` and, to replace a text, ``change_``: the front
    desk reads what the assistant knows, managers and owners write it (medspa/roles.py)."""

    model = KnowledgeDocument
    serializer_class = KnowledgeDocumentSerializer

    def get_queryset(self):
        return KnowledgeDocument.objects.for_clinic(self.get_clinic()).order_by("title")

    @extend_schema(
        request=KnowledgeInputSerializer,
        responses={
            201: inline_serializer(
                "KnowledgeAdded",
                {
                    "created": serializers.IntegerField(),
                    "updated": serializers.IntegerField(),
                    "unchanged": serializers.IntegerField(),
                    "ids": serializers.ListField(child=serializers.IntegerField()),
                },
            )
        },
    )
    def post(self, request, slug):
        clinic = self.get_clinic()
        data = request.data if isinstance(request.data, dict) else None
        if data is None:
            raise ValidationError({"detail": "Send a JSON object."})
        if "documents" in data:
            if data.get("clinic_id") not in (None, clinic.slug):
                raise ValidationError({"clinic_id": "Does not match the clinic in the URL."})
            documents = data["documents"]
            if isinstance(documents, list) and len(documents) > BULK_MAX:
                raise ValidationError({"documents": f"At most {BULK_MAX} documents per request."})
        else:
            documents = [{"title": data.get("title", ""), "content": data.get("content", "")}]
        try:
            # Adding needs add (checked before we get here); replacing an existing document's text needs change
            # too. Which titles exist is the upsert's own decision, so it runs in a transaction that a refusal
            # rolls back: nothing is written.
            with transaction.atomic():
                if "documents" in data:
                    results = documents_load(clinic=clinic, documents=documents, source=KnowledgeDocument.Source.API)
                else:
                    results = [
                        document_upsert(
                            clinic=clinic,
                            title=documents[0]["title"],
                            body=documents[0]["content"],
                            source=KnowledgeDocument.Source.API,
                        )
                    ]
                if any(outcome == "updated" for _, outcome in results):
                    self.require_model_permission("change")
        except KnowledgeError as exc:
            raise ValidationError(exc.args[0]) from None
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        for _, outcome in results:
            counts[outcome] += 1
        audit_record(
            action=AuditEvent.Action.ADD,
            model=KnowledgeDocument,
            clinic=clinic,
            request=request,
            channel="api",
            detail=counts,
        )
        code = status.HTTP_201_CREATED if counts["created"] or counts["updated"] else status.HTTP_200_OK
        return Response({**counts, "ids": [d.pk for d, _ in results]}, status=code)


class KnowledgeSearchView(ClinicScopedListView):
    """GET ?q=...&k=5: ranked snippets with title, score and source (catalog or knowledge). Needs
    ``knowledge.view_knowledgedocument`` (the base view's permission for GET on ``model``)."""

    model = KnowledgeDocument
    pagination_class = None

    @extend_schema(
        parameters=[OpenApiParameter("q", str, required=True), OpenApiParameter("k", int, default=5)],
        responses={
            200: inline_serializer(
                "KnowledgeSearch",
                {"query": serializers.CharField(), "results": serializers.ListField(child=serializers.DictField())},
            )
        },
    )
    def get(self, request, slug):
        query = request.query_params.get("q", "").strip()
        if not query:
            raise ValidationError({"q": "Give a question or keywords."})
        if len(query) > 500:
            raise ValidationError({"q": "Keep the question under 500 characters."})
        try:
            k = max(1, min(20, int(request.query_params.get("k", 5))))
        except ValueError:
            raise ValidationError({"k": "A number from 1 to 20."}) from None
        return Response({"query": query, "results": knowledge_search(clinic=self.get_clinic(), query=query, k=k)})
