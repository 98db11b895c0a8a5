"""Spanish dates and times for texts, shared by the apps that write to patients (bookings, conversation).

Written GSM-7-safe: é and ñ are in the GSM-7 alphabet, á, í, ó, ú, ¿ and ¡ are not and would switch the whole text
to UCS-2 (70 characters a segment instead of 160), so the abbreviations avoid them ("sab", not "sáb") and ``gsm7``
takes them out of wording written with them.
"""

from django.utils import timezone

from .timetext import zone_label

DAYS = ("lun", "mar", "mié", "jue", "vie", "sab", "dom")
DAYS_LONG = ("lunes", "martes", "miércoles", "jueves", "viernes", "sabado", "domingo")
MONTHS = ("ene", "feb", "mar", "abr", "may", "jun", "jul", "ago", "sept", "oct", "nov", "dic")


def when_es(value, tz, *, zone: bool = True) -> str:
    """ "jue 3 dic, 1:30 PM ET": the weekday and month abbreviated as Spanish calendars do, the clock as the
    English texts say it (12-hour with AM/PM, which US Spanish speakers read), and the clinic's zone label."""
    local = timezone.localtime(value, tz)
    text = f"{DAYS[local.weekday()]} {local.day} {MONTHS[local.month - 1]}, {local:%-I:%M %p}"
    return f"{text} {zone_label(value, tz)}" if zone else text


_GSM7 = str.maketrans(
    {"á": "a", "í": "i", "ó": "o", "ú": "u", "Á": "A", "Í": "I", "Ó": "O", "Ú": "U", "¿": "", "¡": ""}
)


def gsm7(text: str) -> str:
    """Spanish wording without the letters GSM-7 lacks ("Qué día le conviene?" -> "Qué dia le conviene?"): é, ñ
    and ü stay, they are GSM-7."""
    return text.translate(_GSM7)
