"""Keep patient data out of logs and error reports.

Code logs ids, never names, phone numbers or message bodies. As a second line of defence every log record
passes ``RedactPatientDataFilter`` (phone numbers and e-mail addresses are masked), and error reports never
include request bodies or query strings.
"""

import logging
import re

from django.views.debug import SafeExceptionReporterFilter

# E.164 and common North American spellings: +16175550123, (617) 555-0123, 617-555-0123, 617.555.0123.
PHONE_RE = re.compile(r"(?<![\w+])(?:\+?1[\s.-]?)?(?:\(\d{3}\)|\d{3})[\s.-]?\d{3}[\s.-]?\d{4}(?!\w)|\+\d{8,15}(?!\d)")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str) -> str:
    return EMAIL_RE.sub("[email]", PHONE_RE.sub("[phone]", text))


class RedactPatientDataFilter(logging.Filter):
    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: keep the record, as logging would
            return True
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


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
