"""Answering a patient: gather the texts not answered yet, let the clinic's engine decide through the tools, record
the turn, send the reply through messaging (with every compliance rule that applies there).

One conversation is answered by one worker at a time (its row is locked), so texts sent in a row are read
together: the task waits ``CONVERSATION_DEBOUNCE_SECONDS`` before answering, and whoever runs first answers all
texts that have arrived. Staff-owned conversations, clinics with the assistant off and conversations past their
turn cap are left to people. The engine is the one CONVERSATION_ENGINE names (``engines.ENGINES``).
"""

import logging
import time

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from bookings.services import booking_in_spanish
from lifecycle.services import reply_confirm, reply_context, reply_keyword
from medspa.timetext import when_label
from messaging.models import Message
from messaging.services import message_queue

from . import i18n
from .answers import answer_lookup, answer_store, is_idle, question_key
from .engines import EngineContext, EngineReply, EngineUnavailable, engine_for
from .models import Conversation, Turn
from .rules import RulesEngine
from .tools import ToolRefused, Tools

logger = logging.getLogger(__name__)

TURNS = Counter("medspa_assistant_turns_total", "Assistant turns by engine and outcome.", ["engine", "outcome"])
FALLBACKS = Counter("medspa_assistant_fallbacks_total", "LLM turns answered by the rules engine instead.", ["reason"])


# Tools that change nothing: after a failed LLM turn that called only these, the rules engine answers afresh.
READ_ONLY = {"search_knowledge", "lookup_service", "reply_check", "unknown"}


def answer(*, conversation, texts, tools) -> EngineReply:
    """The reply to the patient's texts from the clinic's engine. A guarded engine (the LLM) comes after the
    deterministic safety answers (urgent symptoms, other patients, a person) and a stored answer to the same
    question if nothing is in progress; if it fails, the rules engine answers (a fallback): afresh when the model
    changed nothing, else by saying where the conversation now stands (the times offered, the deposit link)."""
    engine = engine_for(conversation.clinic)
    bodies = [m.body for m in texts]
    context = EngineContext(conversation, before=texts[0].pk)
    if not engine.guarded:
        return engine.respond(conversation=conversation, texts=bodies, tools=tools, context=context)
    rules = RulesEngine()
    joined = " ".join(bodies)
    # The conversation's language first (conversation.i18n): the safety answers read Spanish in the words they know
    # and are said in it, the stored answers are kept per language, the model is told which one to write.
    language = tools.follow_language(joined)
    spanish = language == i18n.ES

    def said(text):
        return _said(conversation, tools, text, spanish=spanish)

    safety = said(rules.safety_reply(conversation, _read(joined, spanish=spanish), tools))
    if safety:
        return EngineReply(text=safety, engine=rules.name)
    history = context.history  # read once: the cache key and the prompt
    key = None
    if is_idle(conversation):
        follows_up = any(item["role"] == "patient" for item in history)
        key = question_key(
            conversation.clinic, joined, version=tools.answers_version, follows_up=follows_up, language=language
        )
    cached = answer_lookup(key)
    if cached:
        tools.calls.append({"tool": "answer_cache", "arguments": {}, "outcome": "hit"})
        return EngineReply(text=cached, engine="cache")
    try:
        reply = engine.respond(conversation=conversation, texts=bodies, tools=tools, context=context)
    except EngineUnavailable as exc:
        FALLBACKS.labels(exc.reason).inc()
        logger.warning("LLM unavailable conversation=%s reason=%s", conversation.pk, exc.reason)
        acted = any(call["tool"] not in READ_ONLY for call in tools.calls)
        text = said(rules.state_reply(conversation, tools)) if acted else ""
        if not text:
            text = rules.respond(conversation=conversation, texts=bodies, tools=tools, context=context).text
        return EngineReply.with_usage(exc.usage, text=text, engine=rules.name, fallback=True, error=f"llm {exc.reason}")
    if key and not reply.error:
        answer_store(key, reply.text, tool_calls=tools.calls)
    return reply


def staff_own_reply(conversation, texts, tools) -> EngineReply:
    """A text while staff own the conversation (``RulesEngine.while_staff_own``), whichever engine the clinic uses:
    the urgent script for urgent symptoms, one acknowledgement after the assistant's own hand-off, else nothing.
    Said in the conversation's language."""
    joined = " ".join(m.body for m in texts)
    spanish = tools.follow_language(joined) == i18n.ES
    text = RulesEngine().while_staff_own(conversation, _read(joined, spanish=spanish), tools)
    return EngineReply(text=_said(conversation, tools, text, spanish=spanish), engine="staff")


def _read(text: str, *, spanish: bool) -> str:
    """The patient's text as the rules engine's checks read it: a Spanish one in the words they know."""
    return i18n.to_parser_text(text) if spanish else text


def _said(conversation, tools, text: str, *, spanish: bool) -> str:
    """A reply of the rules engine's checks, said in the conversation's language."""
    return i18n.reply_es(text, tz=conversation.clinic.tz, now=tools.now) if spanish and text else text


def lifecycle_reply(conversation, texts, tools) -> EngineReply | None:
    """A reply to a confirmation request or reminder (``lifecycle``), whichever engine the clinic uses: C / yes /
    confirm marks the booking patient-confirmed; R / reschedule starts moving it; "cancel ..." asks to confirm the
    cancellation (the clinic's policy applies). None for anything else, and when the conversation is waiting for
    another answer (a cancellation to confirm, a pick among offered times): the engine answers, with the upcoming
    booking in its context. Read in English or Spanish ("confirmo", "cambiar"), answered in the booking's language
    (``Booking.language``, the one its reminder was written in)."""
    c = conversation
    if c.confirming_cancel_id or c.pending_pick or (c.state == Conversation.State.OFFERING and c.offered_slots):
        return None
    if c.state in (Conversation.State.HOLDING, Conversation.State.AWAITING_DEPOSIT):
        return None  # a booking in the making: its own steps answer ("can i move it to another day?")
    keyword = reply_keyword(" ".join(m.body for m in texts))
    if keyword is None:
        return None
    replies = Message.objects.filter(conversation=c, direction=Message.Direction.OUTBOUND, kind=Message.Kind.REPLY)
    last_reply = replies.order_by("-pk").values_list("pk", flat=True).first() or 0
    asked = reply_context(clinic=c.clinic, phone=c.patient_phone, after_message_id=last_reply, now=tools.now)
    if asked is None:
        return None
    tools.calls.append({"tool": "lifecycle_reply", "arguments": {"scheduled_text_id": asked.pk}, "outcome": keyword})
    try:
        if keyword == "confirm":
            return EngineReply(text=reply_confirm(text=asked, now=tools.now), engine="lifecycle")  # in its language
        if keyword == "reschedule":
            booking = tools.start_reschedule()
            when = when_label(booking.start, c.clinic.tz)
            text = f"Sure! Your {booking.service.name} is on {when}. What day and time would work better?"
        else:
            text = RulesEngine()._ask_cancel(c, tools, c.clinic.tz)
    except ToolRefused as refused:
        text = str(refused)
    if booking_in_spanish(asked.booking):  # the text it answers was in Spanish: so is the answer
        text = i18n.reply_es(text, tz=c.clinic.tz, now=tools.now)
    return EngineReply(text=text, engine="lifecycle")


def over_cap(conversation) -> str:
    """Why the assistant must stop answering this conversation (empty when it may go on)."""
    if conversation.turns_count >= settings.ASSISTANT_MAX_TURNS:
        return "the conversation reached the assistant's turn limit"
    if conversation.tool_calls_used >= settings.ASSISTANT_MAX_TOOL_CALLS:
        return "the conversation reached the assistant's tool-call limit"
    if conversation.tokens_used >= settings.ASSISTANT_MAX_TOKENS:
        return "the conversation reached the assistant's token limit"
    return ""


def unanswered(conversation) -> list[Message]:
    """The patient's texts the assistant has not answered (several texts in a row are answered together), leaving
    out what arrived while staff owned the conversation (``handled_through``)."""
    return list(
        Message.objects.filter(
            conversation=conversation,
            direction=Message.Direction.INBOUND,
            kind=Message.Kind.PATIENT,
            turns__isnull=True,
            pk__gt=conversation.handled_through,
        ).order_by("created_at", "pk")
    )


def conversation_respond(*, conversation_id: int, now=None) -> Turn | None:
    """Answer the conversation's unanswered texts, once. Returns the turn, or None when there was nothing to do
    (already answered, staff own it and nothing needs saying, the assistant is off, or the patient opted out
    meanwhile)."""

    with transaction.atomic():
        conversation = (
            Conversation.objects.select_for_update(of=("self",))
            .select_related("clinic", "service", "booking", "rescheduling")
            .get(pk=conversation_id)
        )
        clinic = conversation.clinic
        texts = unanswered(conversation)
        if not texts:
            return None
        if conversation.state == Conversation.State.OPTED_OUT:
            return None
        if not clinic.ai_enabled:
            Conversation.objects.filter(pk=conversation.pk).update(needs_staff=True)
            return None
        tools = Tools(conversation, now=now, photo=any(m.media for m in texts))
        started = time.monotonic()
        cap = over_cap(conversation)
        if conversation.owner == Conversation.Owner.STAFF:
            reply = staff_own_reply(conversation, texts, tools)
            if not reply.text:  # staff answer it; the texts stay unanswered for them (``handled_through``)
                Conversation.objects.filter(pk=conversation.pk).update(needs_staff=True)
                return None
        elif cap:
            tools.hand_off(cap)
            reply = EngineReply(
                text="Thanks for your patience! One of our team will pick this up and text you shortly.",
                engine="cap",
            )
        else:
            reply = lifecycle_reply(conversation, texts, tools) or answer(
                conversation=conversation, texts=texts, tools=tools
            )
        turn = Turn.objects.create(
            clinic=clinic,
            conversation=conversation,
            engine=reply.engine,
            fallback=reply.fallback,
            tool_calls=tools.calls + reply.extra_calls,
            reply=reply.text,
            latency_ms=int((time.monotonic() - started) * 1000),
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            cached_tokens=reply.cached_tokens,
            cost_microdollars=reply.cost_microdollars,
            error=reply.error[:200],
        )
        turn.inbound.add(*texts)  # a new turn: no read of its (empty) set first, as set() does
        Conversation.objects.filter(pk=conversation.pk).update(
            turns_count=conversation.turns_count + 1,
            tokens_used=conversation.tokens_used + reply.prompt_tokens + reply.completion_tokens,
            tool_calls_used=conversation.tool_calls_used + len(tools.calls),
            last_outbound_at=timezone.now() if reply.text else conversation.last_outbound_at,
        )
        if reply.text:
            message_queue(
                clinic=clinic,
                to=conversation.patient_phone,
                body=reply.text,
                kind=Message.Kind.REPLY,
                conversation=conversation,
                in_reply_to=texts[-1],
                idempotency_key=f"turn-{turn.pk}",
                new_key=True,  # the turn was created above, in this transaction
                send_here=True,  # no second task when the sms queue is idle (messaging.send_here_or_enqueue)
            )
    TURNS.labels(reply.engine, "fallback" if reply.fallback else "ok").inc()
    logger.info(
        "assistant turn conversation=%s turn=%s engine=%s tools=%s latency_ms=%s",
        conversation.pk,
        turn.pk,
        reply.engine,
        [c["tool"] for c in turn.tool_calls],
        turn.latency_ms,
    )
    return turn
