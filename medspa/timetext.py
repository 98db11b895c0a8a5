"""How a text to a patient states a time: "Thu Dec 3, 1:30 PM ET", on the clinic's wall clock, with its zone.

One place for it, so that every text that names a time (offers, holds, confirmations, reminders, cancellations,
moves) carries the zone: a patient who is travelling, or a clinic near a zone line, must not have to guess.

The label comes from zoneinfo. A zone that switches between a standard and a daylight name of the usual shape
(EST/EDT, CST/CDT, PST/PDT, AKST/AKDT, AEST/AEDT...) is written with the generic name patients know ("ET", "CT",
"PT"): it is right on both sides of a DST change, and the hour beside it is the local hour of that date. A zone
without DST keeps its one name (Arizona's "MST" all year, where "MT" would be wrong in summer); any other zone
keeps the exact name of the moment ("GMT" / "BST"), and a zone zoneinfo names only by its offset ("-03") is
written "UTC-3".
"""

import re
from datetime import datetime, tzinfo
from functools import lru_cache

from django.utils import timezone

_PAIRED = re.compile(r"^([A-Z]{1,4})[SD]T$")
_OFFSET = re.compile(r"^([+-])(\d{2})(\d{2})?$")


@lru_cache(maxsize=256)
def _generic_name(tz: tzinfo, year: int) -> str | None:
    """ "ET" for a zone whose standard and daylight names that year are "EST" and "EDT"; None otherwise."""
    names = {datetime(year, month, 15, 12, tzinfo=tz).tzname() or "" for month in (1, 7)}
    matches = [_PAIRED.match(name) for name in names]
    if len(names) == 2 and all(matches) and len({m.group(1) for m in matches}) == 1:
        return f"{matches[0].group(1)}T"
    return None


def zone_label(value: datetime, tz: tzinfo) -> str:
    """The zone's name for this moment in ``tz``: "ET", "MST", "BST", "UTC-3"."""
    local = timezone.localtime(value, tz)
    name = local.tzname() or ""
    if _PAIRED.match(name):
        generic = _generic_name(tz, local.year)
        if generic and name.startswith(generic[:-1]):
            return generic
    offset = _OFFSET.match(name)
    if offset:
        sign, hours, minutes = offset.groups()
        return f"UTC{sign}{int(hours)}" + (f":{minutes}" if minutes and minutes != "00" else "")
    return name


def time_label(value: datetime, tz: tzinfo) -> str:
    """The clock time with its zone: "1:30 PM ET"."""
    local = timezone.localtime(value, tz)
    return f"{local:%-I:%M %p} {zone_label(value, tz)}"


def when_label(value: datetime, tz: tzinfo) -> str:
    """Day and time with its zone: "Thu Dec 3, 1:30 PM ET"."""
    local = timezone.localtime(value, tz)
    return f"{local:%a %b} {local.day}, {time_label(value, tz)}"


# Spanish: the weekday and month abbreviated GSM-7 safe ("sab", not "sáb"; medspa/spanish.py says why).
_ES_DAYS = ("lun", "mar", "mié", "jue", "vie", "sab", "dom")
_ES_MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic")


def when_es(value, tz) -> str:
    """ "jue 3 dic, 1:30 PM ET": the weekday and month abbreviated as Spanish calendars do, the clock as the
    English texts say it (12-hour with AM/PM, which US Spanish speakers read), and the clinic's zone label."""
    local = timezone.localtime(value, tz)
    text = f"{_ES_DAYS[local.weekday()]} {local.day} {_ES_MONTHS[local.month - 1]}, {local:%-I:%M %p}"
    return f"{text} {zone_label(value, tz)}"
