from django.db import models

from medspa.models import Clinic
from medspa.tenancy import ClinicScopedQuerySet


class KnowledgeDocumentQuerySet(ClinicScopedQuerySet):
    def active(self):
        return self.filter(active=True)


class KnowledgeDocument(models.Model):
    """A clinic's own text about itself (policies, treatments, FAQ). Stored exactly as written; to the assistant it
    is data with a title and a source, never instructions. Saved through ``knowledge.services.document_upsert``,
    which re-indexes it (idempotently: unchanged text is not re-chunked)."""

    class Source(models.TextChoices):
        ADMIN = "admin", "Admin"
        API = "api", "API"
        SEED = "seed", "Clinic file"

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="knowledge_documents")
    title = models.CharField(max_length=200)
    body = models.TextField()
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ADMIN)
    active = models.BooleanField(default=True)
    content_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = KnowledgeDocumentQuerySet.as_manager()

    class Meta:
        ordering = ["clinic", "title"]
        constraints = [models.UniqueConstraint(fields=["clinic", "title"], name="knowledge_unique_title_per_clinic")]

    def __str__(self):
        return self.title


class KnowledgeChunk(models.Model):
    """A passage of a document, with the document's title and its position, and its search terms."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="+")
    document = models.ForeignKey(KnowledgeDocument, on_delete=models.CASCADE, related_name="chunks")
    position = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    text = models.TextField()
    terms = models.JSONField(default=list, help_text="Stemmed search terms of title and text.")

    objects = ClinicScopedQuerySet.as_manager()

    class Meta:
        ordering = ["document", "position"]
        constraints = [models.UniqueConstraint(fields=["document", "position"], name="chunk_unique_position")]

    def __str__(self):
        return f"{self.title} #{self.position}"
