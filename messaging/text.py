"""Text fit for SMS: no characters that force UCS-2 (which halves a segment to 70 characters and doubles cost),
and long texts split at sentence or word boundaries."""

import re

# Look-alikes that editors and LLMs produce, mapped to GSM-7 characters.
REPLACEMENTS = {
    "\u00a0": " ",
    "\u2007": " ",
    "\u202f": " ",
    "\u2009": " ",
    "\u200b": "",
    "\ufeff": "",
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2012": "-",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u2022": "-",
    "\u00b7": "-",
}
_TABLE = str.maketrans(REPLACEMENTS)
# One message at most this long; providers join up to 10 parts, we keep messages readable and cheap.
MAX_MESSAGE_CHARS = 612  # four GSM-7 segments of 153


def sms_clean(text: str) -> str:
    text = (text or "").translate(_TABLE)
    return re.sub(r"[ \t]+", " ", text).strip()


def sms_split(text: str, limit: int = MAX_MESSAGE_CHARS) -> list[str]:
    """Split into messages of at most ``limit`` characters, at a paragraph, sentence or word boundary."""
    text = sms_clean(text)
    parts = []
    while len(text) > limit:
        window = text[: limit + 1]
        cut = max(window.rfind("\n"), *(window.rfind(p) + 1 for p in (". ", "? ", "! ")))
        if cut < limit // 2:
            cut = window.rfind(" ")
        if cut <= 0:
            cut = limit
        parts.append(text[:cut].strip())
        text = text[cut:].strip()
    if text:
        parts.append(text)
    return parts
