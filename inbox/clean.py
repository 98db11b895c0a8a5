"""What a provider sends is data we store: cleaned or refused before it reaches the database.

PostgreSQL refuses NUL in text and in jsonb, and a lone surrogate cannot be encoded as UTF-8; both arrive in
signed bodies (a carrier passes them on, a hostile sender crafts them). Deep nesting exhausts the parser and
the database. Text is cleaned (NUL dropped, a lone surrogate becomes U+FFFD), so a patient's message is never
lost over one bad character; structure that is too deep is refused.
"""

import re

MAX_DEPTH = 32
SURROGATE_RE = re.compile("[\ud800-\udfff]")


class TooDeep(ValueError):
    pass


def clean_text(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "")
    return SURROGATE_RE.sub("\ufffd", value)


def clean_payload(value, depth: int = 0):
    """A copy of a parsed JSON value with every string (keys too) cleaned; TooDeep past MAX_DEPTH levels."""
    if depth > MAX_DEPTH:
        raise TooDeep(f"nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(k)): clean_payload(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [clean_payload(v, depth + 1) for v in value]
    return value


def clean_id(value, *, name: str = "event id", max_length: int = 120) -> str:
    """A provider's event or message id as we store it; ValueError (with a reason for the 400) when unusable:
    missing or null (never the string "None"), not a scalar, not printable, or longer than ``max_length``."""
    if value is None or isinstance(value, (dict, list, bool)):
        raise ValueError(f"{name} is missing")
    text = clean_text(str(value)).strip()
    if not text:
        raise ValueError(f"{name} is missing")
    if len(text) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    if not text.isprintable():
        raise ValueError(f"{name} has control characters")
    return text
