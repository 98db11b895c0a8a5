"""The clock of the texts after a booking: ``timezone.now()``, moved forward by an offset only when
``settings.CONTROLLABLE_CLOCK`` is on (the end-to-end stack, whose scenarios move time forward by setting the offset
in the cache the processes share, never by sleeping). Off everywhere else: then it is exactly ``timezone.now()``."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

OFFSET_KEY = "clock:offset-seconds"


def now() -> datetime:
    moment = timezone.now()
    if settings.CONTROLLABLE_CLOCK:
        moment += timedelta(seconds=float(cache.get(OFFSET_KEY) or 0))
    return moment


def clock_move_to(moment: datetime) -> None:
    """Set the controllable clock to ``moment`` (it ticks on from there). Refused when the clock is not controllable."""
    if not settings.CONTROLLABLE_CLOCK:
        raise RuntimeError("CONTROLLABLE_CLOCK is off")
    cache.set(OFFSET_KEY, (moment - timezone.now()).total_seconds(), None)


def clock_reset() -> None:
    cache.delete(OFFSET_KEY)
