"""Spanish wording for texts kept GSM-7 safe, shared by the apps that write to patients (bookings, conversation);
Spanish dates and times are in ``medspa.timetext`` (``when_es``) with the English ones.

Written GSM-7-safe: é and ñ are in the GSM-7 alphabet, á, í, ó, ú, ¿ and ¡ are not and would switch the whole text
to UCS-2 (70 characters a segment instead of 160), so the abbreviations avoid them ("sab", not "sáb") and ``gsm7``
takes them out of wording written with them.
"""

_GSM7 = str.maketrans(
    {"á": "a", "í": "i", "ó": "o", "ú": "u", "Á": "A", "Í": "I", "Ó": "O", "Ú": "U", "¿": "", "¡": ""}
)


def gsm7(text: str) -> str:
    """Spanish wording without the letters GSM-7 lacks ("Qué día le conviene?" -> "Qué dia le conviene?"): é, ñ
    and ü stay, they are GSM-7."""
    return text.translate(_GSM7)
