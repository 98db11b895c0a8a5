"""Conversation rules that messaging calls. The conversation engine (its own issue) takes over from
``conversation_receive``; until then an inbound text that compliance let through waits for staff."""

import logging

from django.db import IntegrityError, transaction
from django.utils import timezone

from .models import Conversation

logger = logging.getLogger(__name__)


def conversation_for(*, clinic, patient_phone: str, origin: str) -> Conversation:
    """The (clinic, patient) conversation, created on first contact; concurrent first contacts make one row."""
    conversation = Conversation.objects.filter(clinic=clinic, patient_phone=patient_phone).first()
    if conversation is not None:
        return conversation
    try:
        with transaction.atomic():
            return Conversation.objects.create(clinic=clinic, patient_phone=patient_phone, origin=origin)
    except IntegrityError:
        return Conversation.objects.get(clinic=clinic, patient_phone=patient_phone)


def conversation_receive(*, message) -> None:
    """An inbound text that compliance let through. Records it on the conversation and, with no engine to answer
    yet, flags the conversation for staff (the admin lists conversations that need a person)."""
    conversation = message.conversation
    updates = {"last_inbound_at": timezone.now(), "needs_staff": True, "updated_at": timezone.now()}
    if conversation.state in (Conversation.State.NEW, Conversation.State.OPTED_OUT):
        updates["state"] = Conversation.State.ENGAGED
    Conversation.objects.filter(pk=conversation.pk).update(**updates)
    logger.info("conversation inbound conversation=%s message=%s", conversation.pk, message.pk)
