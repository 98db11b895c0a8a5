"""What an anonymous client may send to the public lead endpoints: the hosted form (``/l/<slug>/``) and
``POST /api/leads`` alike.

- one body limit, LEAD_MAX_BODY_BYTES, checked on the declared Content-Length before a byte of the body is read
  (Django reads no more than that; a body without one is read as empty): 413;
- at most LEAD_MAX_FIELDS fields and no file at all (neither endpoint takes one), counted on the bounded body
  before Django or DRF parse it: 400;
- the text fields' own caps (``leads.forms.PUBLIC_MESSAGE_MAX_LENGTH``: a text carriers deliver) in the form and
  the serializer.

Django's own DATA_UPLOAD_MAX_MEMORY_SIZE / DATA_UPLOAD_MAX_NUMBER_FIELDS / _FILES are global and sized for the
staff admin; these are the public endpoints' much smaller ones. A refusal is logged at WARNING, without a
traceback and without anything from the body.
"""

import logging

from django.conf import settings

logger = logging.getLogger(__name__)


class BodyRefused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status, self.reason = status, reason


def check_body(request, *, endpoint: str) -> None:
    """Raise BodyRefused (413: too large; 400: malformed length, too many fields, a file) or return."""
    limit = settings.LEAD_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not declared.isdigit():
        _refuse(400, "invalid Content-Length", endpoint)
    if int(declared) > limit:
        _refuse(413, f"Request body too large: at most {limit} bytes.", endpoint)
    if request.method not in ("POST", "PUT", "PATCH"):
        return
    fields, files = _count_parts(request)
    if files:
        _refuse(400, "Files are not accepted here.", endpoint)
    if fields > settings.LEAD_MAX_FIELDS:
        _refuse(400, f"Too many fields: at most {settings.LEAD_MAX_FIELDS}.", endpoint)


def _count_parts(request) -> tuple[int, int]:
    """Fields and files in a form body (urlencoded or multipart), read within the limit above; (0, 0) otherwise
    (JSON is counted by the serializer once parsed)."""
    content_type = request.content_type or ""
    if content_type == "application/x-www-form-urlencoded":
        body = request.body
        return (body.count(b"&") + 1 if body else 0), 0
    if content_type == "multipart/form-data":
        boundary = (request.content_params.get("boundary") or "").encode("ascii", "ignore")
        if not boundary:
            return 0, 0
        parts = request.body.split(b"--" + boundary)[1:-1]  # before the first and after the closing: not parts
        files = sum(1 for part in parts if b"filename=" in part.split(b"\r\n\r\n", 1)[0].lower())
        return len(parts) - files, files
    return 0, 0


def _refuse(status: int, reason: str, endpoint: str):
    logger.warning("public body refused endpoint=%s status=%s reason=%s", endpoint, status, reason)
    raise BodyRefused(status, reason)
