"""Assistant tasks: ids only; answering twice is prevented by the conversation's row lock and the turn record."""

from celery import shared_task

from . import engine
from .services import conversations_resume_unanswered


@shared_task(name="conversation.respond", acks_late=True, reject_on_worker_lost=True)
def respond(conversation_id, **kwargs):
    turn = engine.conversation_respond(conversation_id=conversation_id)
    return turn.pk if turn else None


@shared_task(name="conversation.resume_unanswered")
def resume_unanswered(**kwargs):
    """Beat: texts whose answering task died with its worker."""

    return len(conversations_resume_unanswered())
