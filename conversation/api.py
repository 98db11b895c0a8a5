from rest_framework import serializers

from medspa.api import ClinicScopedListView

from .models import Conversation


class ConversationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Conversation
        fields = [
            "id",
            "patient_phone",
            "state",
            "origin",
            "needs_staff",
            "last_inbound_at",
            "last_outbound_at",
            "created_at",
            "updated_at",
        ]


class ClinicConversationListView(ClinicScopedListView):
    """GET /api/clinics/{slug}/conversations: the clinic's conversations, newest first (staff token)."""

    model = Conversation
    serializer_class = ConversationSerializer
