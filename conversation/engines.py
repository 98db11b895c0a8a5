"""The engine protocol: what answers a patient's texts (through the tools), what it returns, and how it fails.

``ENGINES`` maps a CONVERSATION_ENGINE name to its engine class, built with no arguments (``engine_for``);
``settings.ENGINES`` (name -> dotted path) adds an engine or replaces one.

``engine.answer`` runs the clinic's engine. A ``guarded`` engine (a model: it may fail, or be asked what it already
answered) is run behind the rules engine's safety answers and the answer cache, and when it raises
``EngineUnavailable`` the rules engine answers instead (a fallback, recorded with the usage the failure cost).
"""

from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import ClassVar, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .context import recent_context

ENGINES = {
    "rules": "conversation.rules.RulesEngine",  # deterministic, no network: the default and the fallback
    "openai": "conversation.llm.OpenAIEngine",  # OpenAI chat completions with tool calling (OPENAI_*)
}


@dataclass(frozen=True)
class Usage:
    """What a turn cost in model tokens (and microdollars at the OPENAI_PRICE_* rates)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_microdollars: int = 0


@dataclass
class EngineReply:
    text: str
    engine: str
    fallback: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_microdollars: int = 0
    error: str = ""
    extra_calls: list = field(default_factory=list)

    @classmethod
    def with_usage(cls, usage: Usage, **fields) -> "EngineReply":
        return cls(**fields, **asdict(usage))


class EngineUnavailable(Exception):
    """The engine could not answer this turn. ``reason``: a short label for the fallback metric; ``usage``: what
    the failed attempt cost, recorded on the fallback turn."""

    def __init__(self, reason: str, detail: str = "", *, usage: Usage | None = None):
        super().__init__(detail or reason)
        self.reason = reason
        self.usage = usage or Usage()


class EngineContext:
    """What an engine may read besides the new texts. Read on first use, so an engine that ignores it costs
    nothing. ``history``: the earlier texts of the conversation (``context.recent_context``), oldest first."""

    def __init__(self, conversation, *, before: int):
        self.conversation, self.before = conversation, before

    @cached_property
    def history(self) -> list[dict]:
        return recent_context(self.conversation, before=self.before)


class Engine(Protocol):
    name: ClassVar[str]  # recorded on the turn (Turn.engine) and the metrics
    # Guarded: run behind the safety answers and the answer cache, with the rules engine as its fallback.
    guarded: ClassVar[bool] = False

    def respond(self, *, conversation, texts: list[str], tools, context: EngineContext) -> EngineReply:
        """The reply to ``texts`` (the patient's new texts, oldest first), acting only through ``tools``. A guarded
        engine may raise ``EngineUnavailable``."""
        ...


def engine_name() -> str:
    """CONVERSATION_ENGINE: ``auto`` is openai when an API key is set, else rules."""
    name = settings.CONVERSATION_ENGINE
    if name == "auto":
        return "openai" if settings.OPENAI_API_KEY else "rules"
    return name


def engine_class(name: str) -> type:
    """The class registered as ``name``; ImproperlyConfigured when there is none."""
    path = {**ENGINES, **settings.ENGINES}.get(name)
    if path is None:
        raise ImproperlyConfigured(f"CONVERSATION_ENGINE={name!r} is not an engine (ENGINES or settings.ENGINES).")
    return import_string(path)


def engine_for(clinic) -> Engine:
    """The engine CONVERSATION_ENGINE names (the same for every clinic)."""
    return engine_class(engine_name())()
