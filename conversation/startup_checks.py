"""System checks of the conversation app (Django's check framework): the engine CONVERSATION_ENGINE names exists, at
start-up rather than on the first patient's text. (conversation/checks.py is another thing: the checks of a reply.)"""

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

from .engines import ENGINES


@register()
def conversation_engine(app_configs, **kwargs):
    errors = []
    for name, path in settings.ENGINES.items():
        try:
            import_string(path)
        except ImportError as exc:
            errors.append(
                Error(
                    f"settings.ENGINES[{name!r}] = {path!r} cannot be imported ({exc}).",
                    hint="A dotted path to an engine class (conversation/engines.py, the Engine protocol).",
                    id="conversation.E001",
                )
            )
    name = settings.CONVERSATION_ENGINE
    if name != "auto" and name not in {**ENGINES, **settings.ENGINES}:
        errors.append(
            Error(
                f"CONVERSATION_ENGINE={name!r} is not an engine.",
                hint=f"One of auto, {', '.join(sorted({**ENGINES, **settings.ENGINES}))}, or a name added in ENGINES.",
                id="conversation.E002",
            )
        )
    return errors
