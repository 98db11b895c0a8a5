from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import path

from medspa.admin import ClinicScopedAdmin
from medspa.models import Clinic

from .models import KnowledgeDocument
from .services import KnowledgeError, document_save, knowledge_search


class TryQuestionForm(forms.Form):
    clinic = forms.ModelChoiceField(queryset=Clinic.objects.none())
    q = forms.CharField(label="Question", max_length=500, widget=forms.TextInput(attrs={"size": 80}))


@admin.register(KnowledgeDocument)
class KnowledgeDocumentAdmin(ClinicScopedAdmin):
    list_display = ["title", "clinic", "active", "source", "chunk_count", "updated_at"]
    list_filter = ["clinic", "active", "source"]
    list_select_related = ["clinic"]
    search_fields = ["title", "body"]
    fields = ["clinic", "title", "body", "active", "source"]
    readonly_fields = ["source"]
    change_list_template = "admin/knowledge/change_list.html"

    @admin.display(description="passages")
    def chunk_count(self, obj):
        return obj.chunks.count()

    def save_model(self, request, obj, form, change):
        try:
            document_save(obj)
        except KnowledgeError as exc:
            raise ValidationError(str(exc)) from None

    def get_urls(self):
        return [
            path("try/", self.admin_site.admin_view(self.try_view), name="knowledge_knowledgedocument_try"),
            *super().get_urls(),
        ]

    def try_view(self, request):
        """A "try a question" box: what search returns for a patient's question, so staff can fix their text."""
        if not self.has_view_permission(request):
            raise admin.sites.PermissionDenied
        form = TryQuestionForm(request.GET or None)
        form.fields["clinic"].queryset = Clinic.objects.for_user(request.user)
        results = None
        if form.is_valid():
            results = knowledge_search(clinic=form.cleaned_data["clinic"], query=form.cleaned_data["q"], k=5)
        context = {
            **self.admin_site.each_context(request),
            "title": "Try a question",
            "form": form,
            "results": results,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/knowledge/try.html", context)
