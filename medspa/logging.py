"""Keep patient data out of logs and error reports.

Code logs ids, never names, phone numbers or message bodies. As a second line of defence every log record
passes ``RedactPatientDataFilter`` (phone numbers and e-mail addresses are masked, query strings and PostgreSQL's
DETAIL/CONTEXT/LINE lines removed, in the message and in the traceback alike), and error reports never include
request bodies or query strings. ``ClientErrorFilter`` makes what any client can provoke (Django's
``django.security.*`` records, 4xx lines) a WARNING without a traceback.

Where the filters run: the ``console`` handler of LOGGING (medspa/settings.py), which every Django, Celery and app
logger reaches; Celery's own handlers in workers and beat (``filter_celery_handlers``, medspa/celery.py); gunicorn's
access and error logs in each gunicorn worker (``filter_gunicorn_logs``, medspa/gunicorn.conf.py).
"""

import logging
import re

from django.views.debug import SafeExceptionReporterFilter

# E.164 and common North American spellings: +16175550123, (617) 555-0123, 617-555-0123, 617.555.0123.
PHONE_RE = re.compile(r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)|\+\d{8,15}(?!\d)")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# The same, percent-encoded as a query string or a form carries them: %2B16175550123, alice%40example.com.
ENCODED_PHONE_RE = re.compile(r"%2B\d{8,15}(?!\d)", re.IGNORECASE)
ENCODED_EMAIL_RE = re.compile(r"[\w.%+-]+%40[\w-]+(?:\.[\w-]+)+", re.IGNORECASE)


# A URL's or request line's query string (admin searches, ?src=, API filters carry numbers, names, e-mails).
QUERY_RE = re.compile(r"((?:https?://[^\s/?#\"']+)?/[^\s?#\"']*)\?[^\s#\"']*")
# The lines PostgreSQL adds to an error's first line (psycopg puts them in the exception's message): they quote the
# values (the failing row, the key, about 40 characters of a JSON document, the SQL with its literals). Also the
# same lines escaped inside a repr ("...\\nDETAIL:  Key (phone)=(...)").
_PG_FIELDS = r"(?:LINE \d+|DETAIL|CONTEXT|HINT|QUERY|STATEMENT|WHERE|LOCATION):"
PG_DETAIL_RE = re.compile(rf"(?:^|\r?\n)[ \t]*(?:{_PG_FIELDS}[^\r\n]*|\^[ \t]*(?=\r?\n|$))")
PG_DETAIL_ESCAPED_RE = re.compile(rf"\\n[ \t]*(?:{_PG_FIELDS}(?:(?!\\n)[^\n])*|\^[ \t]*(?=\\n))")


def redact(text: str) -> str:
    """Phone numbers and e-mail addresses masked; query strings and database DETAIL/CONTEXT lines removed."""
    text = PG_DETAIL_ESCAPED_RE.sub("", PG_DETAIL_RE.sub("", text))
    text = QUERY_RE.sub(r"\1?[query]", text)
    text = ENCODED_EMAIL_RE.sub("[email]", ENCODED_PHONE_RE.sub("[phone]", text))
    return EMAIL_RE.sub("[email]", PHONE_RE.sub("[phone]", text))


def _exception_chain(exc):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def database_error_texts(exc_info) -> dict[str, str]:
    """What to put in place of each database error's message in a log record: its first line only.

    psycopg's message (and so that of the Django exception wrapping it, which has the same arguments) is PostgreSQL's
    whole report, whose DETAIL and CONTEXT lines quote values, over several lines that a value may continue; the
    error's ``diag.message_primary`` is the first line, without values. Keys are the message and its repr as a
    traceback or a Celery failure line shows them."""
    if not exc_info or not isinstance(exc_info, tuple) or exc_info[1] is None:
        return {}
    chain = list(_exception_chain(exc_info[1]))
    primaries = {}
    for exc in chain:
        primary = getattr(getattr(exc, "diag", None), "message_primary", None)
        full = str(exc)
        if primary and full != primary:
            primaries[full] = f"{primary} [database detail removed]"
    texts = dict(primaries)
    for exc in chain:
        short = primaries.get(str(exc))
        if short is not None:
            texts[repr(exc)] = f"{type(exc).__name__}({short!r})"
    return texts


_FORMATTER = logging.Formatter()


def _replace(text: str, texts: dict[str, str]) -> str:
    for full in sorted(texts, key=len, reverse=True):  # a repr contains its message: the longer first
        text = text.replace(full, texts[full])
    return redact(text)


class RedactPatientDataFilter(logging.Filter):
    """The message, the traceback and the stack: redacted (``redact``), database errors cut to their first line.

    A record leaves with its traceback as text only (``exc_text``, which formatters print), ``exc_info`` cleared, so
    no formatter or handler further on can format the exception again from the original."""

    def filter(self, record):
        texts = database_error_texts(record.exc_info)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record, as logging would
            message = None
        if message is not None:
            redacted = _replace(message, texts)
            if redacted != message:
                record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)  # what any formatter would print
        if record.exc_text:
            record.exc_text = _replace(record.exc_text, texts)
        record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class ClientErrorFilter(logging.Filter):
    """What any client can make the app log, at will, is a WARNING line without a traceback.

    Django logs a SuspiciousOperation (DisallowedHost, RequestDataTooBig, TooManyFieldsSent, a bad session or file
    name...) to ``django.security.<its class>`` at ERROR with the exception, and some 4xx answers to
    ``django.request`` with it. The request is answered 400 either way; the line keeps the logger name (the
    exception's class), the reason and the path."""

    def filter(self, record):
        name = record.name
        expected = name.startswith("django.security.") or (
            name == "django.request" and 400 <= (getattr(record, "status_code", None) or 0) < 500
        )
        if expected:
            if record.levelno > logging.WARNING:
                record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


def _add_filters(target) -> None:
    """Put the two filters on a handler or logger (once), the client-error one first."""
    for cls in (ClientErrorFilter, RedactPatientDataFilter):
        if not any(isinstance(f, cls) for f in target.filters):
            target.addFilter(cls())


def filter_celery_handlers(logger=None, **kwargs) -> None:
    """Celery's ``after_setup_logger`` / ``after_setup_task_logger``: in a worker or beat, Celery replaces the root
    logger's handlers with its own (and gives ``celery.task`` one); they get the filters the console has."""
    for handler in getattr(logger, "handlers", ()):
        _add_filters(handler)


def filter_gunicorn_logs() -> None:
    """In a gunicorn worker (its ``post_worker_init`` hook): gunicorn's access and error loggers, which propagate
    nowhere and have their own handlers, get the filters too. The access format has no query string already
    (medspa/gunicorn.conf.py); this is the second line, and covers "Error handling request /path?query"."""
    for name in ("gunicorn.access", "gunicorn.error"):
        _add_filters(logging.getLogger(name))


class PatientSafeExceptionReporterFilter(SafeExceptionReporterFilter):
    """Error reports (debug pages, admin e-mails) show no POST values and no query string values."""

    def is_active(self, request):
        return True

    def get_post_parameters(self, request):
        if request is None:
            return {}
        return dict.fromkeys(request.POST, self.cleansed_substitute)

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        if "QUERY_STRING" in meta:
            meta["QUERY_STRING"] = self.cleansed_substitute
        return meta
