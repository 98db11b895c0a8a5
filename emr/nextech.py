"""Nextech Select API adapter (FHIR STU3 over HTTPS; docs PROVIDERS.md "Nextech Select API", and Nextech's own
documents, github.com/NextechSystems/selectapidocspub source/includes/, whose samples are in
tests/data/providers/nextech/vendor-samples/).

Auth is an Azure AD password grant; the token is cached on the instance and in Django's cache (shared by workers),
refreshed with the refresh token a minute before it expires, and renewed once when the API answers 401.
429, 5xx and transport errors are retried with exponential backoff (honouring ``Retry-After``) for reads and PUTs.
POSTs (patient and appointment creation) are never retried once they may have reached the server: a timeout raises
a transient ``EmrError`` so the caller checks ``find_appointment`` before writing again.

Resources go through ``fhir.resources``' STU3 models both ways: what we send is built and validated by the model and
serialised from it (an invalid resource is an ``EmrError`` before anything is sent), and what Nextech answers is
validated before we read it, so a malformed answer is an ``EmrError`` naming the resource and the failing fields,
never a KeyError deep in here. Validation errors are reduced to field paths and error kinds: their values may be PHI.

Nextech's answers are looser than STU3 in ways its own samples show, and the reading validates what we rely on and
reads past the rest (docs/DECISIONS.md, "Nextech as its documents describe it"): empty strings (``"given": ["Sherri",
""]`` in every name) are read as absent; Appointment participants without ``status``, and Appointments without one
(a Select status with no FHIR word), are read with ``NextechAppointment``; a Bundle without ``type`` is a searchset;
contained resources, which we never read, are dropped when they still fail their own model; elements STU3 does not
define are dropped. Slot searches skip one bad Slot (or Bundle entry), logged by id and counted in
``medspa_emr_resources_skipped_total`` (a time not offered is better than no times at all), and so is a Slot whose
start or end has no UTC offset. A Patient or Appointment search stays strict otherwise: a skipped one could mean a
duplicate chart or a second booking.

Writes follow _appointment.md and _patient.md: references in their documented forms (``appointment-type/87``),
the appointment purpose of the Slot Nextech offers, a new patient as a contained Patient when POST /Patient's required
fields are not all known, a 409 to POST /Patient resolved to the patient Nextech matched, and a 409 to POST
/Appointment read from the AppointmentResponse ``comment`` (``_refused``). Phone searches send the number as Nextech
stores it, "(813) 555-5555".
Log lines carry ids, methods and paths only: never names, phones or query strings (patient searches hold PHI).
"""

import copy
import hashlib
import hmac
import logging
import re
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

import fhir_core.constraints
import httpx
from django.conf import settings
from django.core.cache import cache
from pydantic import Field, ValidationError

from .base import (
    WRITE,
    Appointment,
    AppointmentRequest,
    EmrClient,
    EmrError,
    PatientInfo,
    Slot,
    SlotTakenError,
    from_credentials,
)
from .metrics import RESOURCES_SKIPPED

# Nextech's ids are not always FHIR ids: its Schedules are "location_1_practitioner_9", and an underscore fails the
# STU3 id pattern ([A-Za-z0-9.-]). fhir_core reads this (documented) setting when a model class is built, so it is set
# before the first model import below; nothing else in the project loads fhir.resources. Ids are opaque to us.
fhir_core.constraints.TYPES_ID_PATTERN = r"^[A-Za-z0-9\-._]+$"

from fhir.resources.STU3 import get_fhir_model_class  # noqa: E402
from fhir.resources.STU3.appointment import Appointment as FhirAppointment  # noqa: E402
from fhir.resources.STU3.appointment import AppointmentParticipant as FhirAppointmentParticipant  # noqa: E402
from fhir.resources.STU3.bundle import Bundle as FhirBundle  # noqa: E402
from fhir.resources.STU3.bundle import BundleEntry as FhirBundleEntry  # noqa: E402
from fhir.resources.STU3.patient import Patient as FhirPatient  # noqa: E402
from fhir.resources.STU3.slot import Slot as FhirSlot  # noqa: E402

logger = logging.getLogger(__name__)


class NextechAppointmentParticipant(FhirAppointmentParticipant):
    """A participant as Nextech answers it: without ``status``, which STU3 requires (1..1). Nextech's own Appointment
    sample (_appointment.md, "### Sample") has none on any participant. We read nothing of a participant."""

    def get_required_fields(self):
        return []


class NextechAppointment(FhirAppointment):
    """An Appointment as Nextech answers it, STU3 otherwise: participants without status, and no ``status`` at all
    for a Select status with no FHIR equivalent (_appointment.md, Fields: "this field is omitted if the appointment
    is in a status that doesn't correspond to any of the listed statuses"). Only for reading: what we send is a
    plain STU3 Appointment."""

    participant: list[NextechAppointmentParticipant] = Field(
        default=..., alias="participant", json_schema_extra={"element_property": True}
    )

    def get_required_fields(self):
        return []


BASE_URL = "https://select.nextech-api.com/api"
TOKEN_URL = "https://login.microsoftonline.com/nextech-api.com/oauth2/token"  # noqa: S105 (a URL)
RESOURCE = "https://select.nextech-api.com/api"
EXTENSION_PREFIX = "https://select.nextech-api.com/api/structuredefinition/"
PAGE_SIZE = 50  # Nextech's maximum _count
MAX_PAGES = 40
MAX_WINDOW = timedelta(days=60)  # Nextech refuses longer Slot windows
REFRESH_MARGIN = 60  # seconds before expiry when the token is renewed
MAX_RETRY_AFTER = 60.0  # a worker never sleeps longer than this on one Retry-After
TOKEN_CACHE_SECONDS = 13 * 24 * 3600  # refresh tokens live 14 days
FREE = "free"
CLOSED_STATUSES = {"cancelled", "entered-in-error", "noshow"}
SAFE_ID = re.compile(r"[A-Za-z0-9\-._]{1,64}")  # what a skipped resource's id must look like to be logged
# A 409 reason that speaks of the time itself (Nextech's reasons are not published: the re-check decides otherwise).
TIME_TAKEN = re.compile(r"no longer available|not available|unavailable|already (booked|scheduled)|double.?book", re.I)


# httpx logs every request URL (with Patient search queries) at INFO: settings.LOGGING keeps it at WARNING.


def _aware(value: datetime | None) -> datetime | None:
    """A validated FHIR instant with the standard library's fixed-offset timezone (the models give pydantic's TzInfo),
    or None."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        return None
    return value.replace(tzinfo=timezone(value.utcoffset()))


def _problems(exc: ValidationError) -> str:
    """Where a resource failed its STU3 model: field paths and error kinds only, never the values (PHI)."""
    found = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        item = f"{'.'.join(str(part) for part in error['loc']) or 'resource'} ({error['type']})"
        if item not in found:
            found.append(item)
    return "; ".join(found[:3]) + ("; ..." if len(found) > 3 else "")


def _parse(model, data, what: str, *, loose: bool = False):
    """An answer from Nextech validated by its STU3 model; EmrError (not transient) naming ``what`` when it is not.
    ``loose`` for the resources we read (see ``_forgiven``). ``from None``: the ValidationError's text carries the
    values, which may be PHI."""
    try:
        return _validate(model, data, what, loose=loose)
    except ValidationError as exc:
        problems = _problems(exc)
    except KeyError:  # fhir_core looking up a contained resourceType it does not know
        problems = "resourceType (unknown)"
    raise EmrError(f"Nextech answered a malformed {what}: {problems}", transient=False) from None


def _validate(model, data, what: str, *, loose: bool = False):
    """``model.model_validate``, forgiving what we never read (``_read``)."""
    return _read(model, data, what, loose=loose)[0]


def _read(model, data, what: str, *, loose: bool):
    """(the validated ``model``, the data it was validated from). Forgiven: contained resources that fail their own
    model are dropped (``_valid_contained``), then what ``_forgiven`` forgives."""
    try:
        return model.model_validate(data), data
    except (ValidationError, KeyError) as exc:
        contained = _valid_contained(data, what)
        if contained is not None:  # all valid now: the next failure, if any, is not theirs
            rest = {k: v for k, v in data.items() if k != "contained"}
            return _read(model, {**rest, "contained": contained} if contained else rest, what, loose=loose)
        if isinstance(exc, KeyError):
            raise
        return _forgiven(model, data, exc, what, loose=loose)


def _forgiven(model, data, exc: ValidationError, what: str, *, loose: bool):
    """The resource validated again without what Nextech sends looser than STU3 and we can read past, as ``_read``
    returns it:
    - elements STU3 does not define (a vendor's additions), dropped and logged by path: a new field in Nextech's
      answers must not stop every booking;
    - with ``loose`` (what Nextech answers, not what we send), empty strings, read as absent: FHIR JSON has no empty
      strings (an absent value is left out), and Nextech puts one in every name it answers (``"given": ["Gregory",
      ""]`` in its Patient, Slot and Appointment samples).
    Anything else malformed re-raises ``exc``. A few rounds: pydantic checks a nested model's own rules (required
    elements) only once its fields pass."""
    for _round in range(4):
        errors = exc.errors(include_url=False, include_context=False)
        extras = [tuple(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
        empties = [tuple(e["loc"]) for e in errors if loose and e.get("input") == "" and e["loc"]]
        if not (extras or empties) or len(extras) + len(empties) != len(errors) or not isinstance(data, dict):
            raise exc
        if extras:
            logger.warning("nextech %s: ignoring elements STU3 does not define: %s", what, _problems(exc))
        data = _without(data, extras + empties)
        try:
            return model.model_validate(data), data
        except ValidationError as again:
            exc = again
    raise exc


def _valid_contained(data, what: str) -> list | None:
    """The contained resources of ``data`` as read by their own STU3 model (as loosely as the resource around them:
    an empty given name, as on every Practitioner Nextech contains, is read as absent), or None when each passes as
    it is. We read nothing in them, so one that still fails is dropped, logged by type and id and counted, rather
    than losing the resource around it."""
    contained = data.get("contained") if isinstance(data, dict) else None
    if not isinstance(contained, list):
        return None
    read = [_contained_read(item, what) for item in contained]
    if all(new is old for new, old in zip(read, contained, strict=True)):
        return None
    return [item for item in read if item is not None]


def _contained_read(item, what: str):
    """A contained resource as read (``item`` itself when it passes as it is), or None when it fails."""
    kind = item.get("resourceType") if isinstance(item, dict) else None
    try:
        return _read(get_fhir_model_class(kind), item, f"{kind} contained in {what}", loose=True)[1]
    except ValidationError as exc:
        problems = _problems(exc)
    except (KeyError, ValueError, TypeError):  # no STU3 model for its resourceType (or none given)
        problems, kind = "resourceType (unknown)", "unknown"
    _skipped(kind, item, "invalid", f"contained in {what}: {problems}")
    return None


def _skipped(resource_type: str, resource, reason: str, detail: str = "") -> None:
    """Log (by id only, when it looks like one) and count a resource left out of an answer."""
    ident = resource.get("id") if isinstance(resource, dict) else getattr(resource, "id", None)
    ident = ident if isinstance(ident, str) and SAFE_ID.fullmatch(ident) else "(no id)"
    logger.warning("nextech %s %s skipped (%s)%s", resource_type, ident, reason, f": {detail}" if detail else "")
    RESOURCES_SKIPPED.labels("nextech", resource_type, reason).inc()


def _without(data, paths):
    """A copy of ``data`` without the elements at ``paths`` (pydantic error locations: keys and list indexes). A list
    or object left empty goes too (FHIR JSON has no empty arrays)."""
    data = copy.deepcopy(data)
    # Deepest and highest index first, so removing one item does not shift another path's index.
    for path in sorted(set(paths), key=lambda p: (len(p), [str(x).zfill(6) for x in p]), reverse=True):
        parents = [data]
        for part in path[:-1]:
            try:
                parents.append(parents[-1][part])
            except (KeyError, IndexError, TypeError):
                parents = []
                break
        if not parents:
            continue
        node, last = parents[-1], path[-1]
        if isinstance(node, dict):
            node.pop(last, None)
        elif isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
            del node[last]
        else:
            continue
        for depth in range(len(parents) - 1, 0, -1):  # drop containers the removal emptied
            if parents[depth] in ({}, []):
                container, key = parents[depth - 1], path[depth - 1]
                if isinstance(container, dict):
                    container.pop(key, None)
                elif isinstance(container, list) and isinstance(key, int) and key < len(container):
                    del container[key]
            else:
                break
    return data


def _build(model, data: dict):
    """A resource we send, validated by its STU3 model before anything leaves."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise EmrError(
            f"Refusing to send an invalid STU3 {data.get('resourceType')} to Nextech: {_problems(exc)}",
            transient=False,
        ) from None


def _require_aware(value: datetime, name: str) -> None:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{name} must be an aware datetime")


def nextech_phone(e164: str) -> str:
    """A number as Nextech stores it, which is the form its phone search needs: the search matches the start of the
    stored value (_gettingstarted.md, "Searching": "The default search attempts to match with just the start of the
    data"), and Nextech's Patient sample holds "(813) 555-5555". So a US (+1) number is "(NPA) NXX-XXXX"; any other
    is its digits. Empty for no number."""
    digits = re.sub(r"\D", "", e164 or "")
    if (e164 or "").startswith("+1") and len(digits) == 11:
        return f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return digits


def _digits(value) -> str:
    """A phone's digits without a US country code, to compare numbers however they are written."""
    digits = re.sub(r"\D", "", value or "")
    return digits[1:] if len(digits) == 11 and digits.startswith("1") else digits


def _plain_id(reference, kind: str) -> str:
    """An id as a clinic's mapping may hold it, bare ("87") or in Nextech's reference form ("appointment-type/87", as
    its docs write it): the bare id."""
    reference = str(reference or "").strip()
    return _ref_id(reference, kind) or reference


def booking_marker(booking_id) -> str:
    return f"booking:{booking_id}"


def _has_marker(comment, booking_id) -> bool:
    # booking:12 must not match booking:123.
    return bool(re.search(rf"(?<![\w:]){re.escape(booking_marker(booking_id))}(?!\w)", comment or ""))


def _error_message(response: httpx.Response) -> str:
    """The server's own words: OperationOutcome issue[0].diagnostics (or details.text), an Azure AD
    error_description, a message field, else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        if body.get("resourceType") == "AppointmentResponse" and body.get("comment"):
            return str(body["comment"])  # a refused create: "the reason ... in the AppointmentResponse Comment"
        issues = body.get("issue")
        if isinstance(issues, list) and issues and isinstance(issues[0], dict):
            issue = issues[0]
            text = issue.get("diagnostics") or (issue.get("details") or {}).get("text")
            if text:
                return str(text)
        for key in ("error_description", "message", "Message", "error"):
            if body.get(key):
                return str(body[key])
    return (response.text or response.reason_phrase or "")[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP-date (or nothing): use our own backoff
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def _bundle_resources(body, model, *, skip_bad: bool = False) -> tuple[list, str]:
    """The ``model`` resources of a searchset Bundle (each validated by its STU3 model) and the next page's URL.

    The Bundle itself is validated without its entries, then each entry on its own (``_entry``): cheaper than
    validating the whole Bundle (which resolves every entry's class), the error names the entry, and resources of
    other types (an OperationOutcome in search mode "outcome") are left alone. With ``skip_bad`` a malformed entry
    is skipped (logged, counted) instead of failing the page; an answer that is not a Bundle always fails."""
    resource_type = model.get_resource_type()
    if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
        raise EmrError(f"Nextech answered something other than a Bundle for {resource_type}", transient=False)
    bundle = _parse(FhirBundle, _envelope(body), f"Bundle for {resource_type}")
    entries = body.get("entry") or []
    resources = [_entry(entry, model, index, skip_bad=skip_bad) for index, entry in enumerate(entries)]
    next_url = next((link.url for link in bundle.link or [] if link.relation == "next" and link.url), "")
    return [resource for resource in resources if resource is not None], next_url


def _envelope(body: dict) -> dict:
    """The Bundle without its entries (each is read on its own), as a searchset when it has no ``type``: STU3
    requires one, and Nextech's own Slot and Appointment samples omit it (its other search samples carry it)."""
    envelope = {"type": "searchset", **body}
    if isinstance(body.get("entry"), list):
        del envelope["entry"]
    return envelope


def _entry(entry, model, index: int, *, skip_bad: bool):
    """One Bundle entry's resource of the searched type, validated; None for other types (and entries without a
    resource). A malformed one is an EmrError, or with ``skip_bad`` None, logged by id and counted."""
    resource_type = model.get_resource_type()
    resource = entry.get("resource") if isinstance(entry, dict) else None
    if isinstance(resource, dict) and resource.get("resourceType") != resource_type:
        return None
    envelope = {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry
    try:
        _parse(FhirBundleEntry, envelope, f"Bundle entry {index} for {resource_type}")
        what = f"{resource_type} (Bundle entry {index})"
        return None if resource is None else _parse(model, resource, what, loose=True)
    except EmrError as exc:
        if not skip_bad:
            raise
        _skipped(resource_type, resource, _skip_reason(resource), str(exc))
        return None


def _skip_reason(resource) -> str:
    """The metric's reason for a resource that failed its model: "no_offset" when its start or end is a date-time
    without a UTC offset (skipped, not guessed: docs/DECISIONS.md), else "invalid"."""
    if isinstance(resource, dict) and any(_offsetless(resource.get(key)) for key in ("start", "end")):
        return "no_offset"
    return "invalid"


def _offsetless(value) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        return datetime.fromisoformat(value).utcoffset() is None
    except ValueError:
        return False


def _ref_id(reference, kind: str) -> str:
    """'patient/12' -> '12' for kind 'patient' (case-insensitive), else ''."""
    if isinstance(reference, str) and "/" in reference:
        prefix, _, ident = reference.rpartition("/")
        if prefix.rsplit("/", 1)[-1].lower() == kind.lower():
            return ident
    return ""


def _extension_reference(resource, name: str) -> str:
    """The valueReference.reference of one of Nextech's extensions on a validated resource, else ''. The URL is
    compared without case: Nextech writes "appointment-purpose" on Slots and "appointment-Purpose" elsewhere."""
    for extension in resource.extension or []:
        if (extension.url or "").lower() == (EXTENSION_PREFIX + name).lower() and extension.valueReference is not None:
            return extension.valueReference.reference or ""
    return ""


class NextechClient(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(
        self,
        *,
        client_id,
        username,
        password,
        practice_id,
        location_id,
        base_url=BASE_URL,
        token_url=TOKEN_URL,
        timeout=10.0,
        max_attempts=4,
        sleep=time.sleep,
    ):
        self.client_id, self.username, self._password = client_id, username, password
        self.practice_id, self.location_id = str(practice_id), _plain_id(location_id, "location")
        self._last_offered: tuple = ((), "")  # (slot key, purpose) of the last time re-checked: see _purpose
        self.base_url, self.token_url = base_url.rstrip("/"), token_url
        self.max_attempts, self.sleep = max(1, int(max_attempts)), sleep
        self._http = httpx.Client(timeout=timeout, headers={"Accept": "application/fhir+json, application/json"})
        self._token: dict | None = None  # access_token, refresh_token, expires_at (epoch seconds)
        self._token_lock = threading.Lock()
        # Keyed by the whole credential set (password included, through an HMAC with the secret key): new
        # credentials never reuse a token granted to the old ones.
        account = f"{client_id}\0{username}\0{password}\0{practice_id}".encode()
        digest = hmac.new(settings.SECRET_KEY.encode(), account, hashlib.sha256).hexdigest()[:32]
        self.cache_key = f"emr:nextech:token:{digest}"

    @classmethod
    def from_config(cls, clinic, config):
        """Credentials ``{client_id, username, password, practice_id}``; the location is ``location_ref``."""
        return from_credentials(cls, config, location_id=config.location_ref)

    def close(self) -> None:
        self._http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<NextechClient practice={self.practice_id} location={self.location_id}>"

    # --- token ---------------------------------------------------------------------------------------------------

    @staticmethod
    def _fresh(token) -> bool:
        return bool(token and token.get("access_token") and token.get("expires_at", 0) - REFRESH_MARGIN > time.time())

    def _access_token(self) -> str:
        with self._token_lock:
            if not self._fresh(self._token):
                shared = self._cache_get()
                if self._fresh(shared):
                    self._token = shared  # another worker renewed it
                else:
                    self._renew(shared or self._token)
            return self._token["access_token"]

    def _force_renew(self, rejected: str) -> None:
        """After a 401: renew unless another thread already replaced the rejected token."""
        with self._token_lock:
            if self._token and self._token.get("access_token") != rejected and self._fresh(self._token):
                return
            self._renew(self._token)

    def _renew(self, previous) -> None:
        refresh_token = (previous or {}).get("refresh_token")
        if refresh_token:
            try:
                self._token = self._grant({"grant_type": "refresh_token", "refresh_token": refresh_token})
                logger.info("nextech token refreshed practice=%s", self.practice_id)
            except EmrError as exc:
                logger.warning(
                    "nextech token refresh failed practice=%s status=%s; using the password grant",
                    self.practice_id,
                    exc.status,
                )
                refresh_token = None
        if not refresh_token:
            self._token = self._grant({"grant_type": "password", "username": self.username, "password": self._password})
            logger.info("nextech token issued practice=%s", self.practice_id)
        self._cache_set(self._token)

    def _grant(self, fields: dict) -> dict:
        form = {**fields, "client_id": self.client_id, "resource": RESOURCE}
        response = self._send("POST", self.token_url, idempotent=True, data=form)
        if response.status_code != 200:
            raise EmrError(
                f"Nextech sign-in failed: {_error_message(response)}", transient=False, status=response.status_code
            )
        try:
            body = response.json()
            access_token = body["access_token"]
            expires_in = int(body.get("expires_in") or 3600)  # Azure AD may send it as a string
        except (ValueError, KeyError, TypeError) as exc:
            raise EmrError("Nextech sign-in answered without an access token", transient=True) from exc
        if not isinstance(access_token, str) or not access_token:
            raise EmrError("Nextech sign-in answered without an access token", transient=True)
        return {
            "access_token": access_token,
            "refresh_token": body.get("refresh_token") or fields.get("refresh_token") or "",
            "expires_at": time.time() + expires_in,
        }

    def _cache_get(self):
        try:
            return cache.get(self.cache_key)
        except Exception:  # a cache outage must not stop bookings
            logger.warning("nextech token cache unavailable practice=%s", self.practice_id, exc_info=True)
            return None

    def _cache_set(self, token) -> None:
        try:
            cache.set(self.cache_key, token, TOKEN_CACHE_SECONDS)
        except Exception:
            logger.warning("nextech token cache unavailable practice=%s", self.practice_id, exc_info=True)

    # --- HTTP ----------------------------------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, idempotent: bool, **kwargs) -> httpx.Response:
        """One request with retries: 429 always (the server did not act on it); 5xx and transport errors only when
        repeating the request is harmless. Returns the last response that is not retried."""
        path = urlsplit(url).path  # never the query: patient searches carry names and phones
        for attempt in range(1, self.max_attempts + 1):
            delay = 0.5 * 2 ** (attempt - 1)
            try:
                response = self._http.request(method, url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # The request never reached the server: safe to repeat even a POST.
                failure = f"{type(exc).__name__}"
                status = None
            except httpx.TransportError as exc:
                if not idempotent:
                    logger.warning("nextech %s %s failed after sending: %s", method, path, type(exc).__name__)
                    raise EmrError(
                        f"Nextech did not answer {method} {path} ({type(exc).__name__}); it may have been applied",
                        transient=True,
                    ) from exc
                failure = f"{type(exc).__name__}"
                status = None
            else:
                status = response.status_code
                if status == 429 or (status >= 500 and idempotent):
                    asked = _retry_after(response)
                    delay = delay if asked is None else asked
                elif status >= 500:
                    logger.warning("nextech %s %s answered %s", method, path, status)
                    raise EmrError(
                        f"Nextech answered {status} to {method} {path}: {_error_message(response)}",
                        transient=True,
                        status=status,
                    )
                else:
                    return response
                failure = f"status {status}"
            logger.warning("nextech %s %s attempt %s/%s: %s", method, path, attempt, self.max_attempts, failure)
            if attempt < self.max_attempts:
                self.sleep(delay)
        raise EmrError(
            f"Nextech {method} {path} failed after {self.max_attempts} attempts ({failure})",
            transient=True,
            status=status,
        )

    def _api(self, method: str, path: str, *, params=None, json=None, resource=None, url=None) -> httpx.Response:
        """An authenticated API call; a 401 renews the token and retries once. Other 4xx raise EmrError.
        ``resource`` (an STU3 model) is sent as the model's own JSON, without empty elements."""
        idempotent = method != "POST"
        target = url or f"{self.base_url}{path}"
        content = None if resource is None else resource.model_dump_json(exclude_none=True)
        for renewed in (False, True):
            token = self._access_token()
            headers = {"Authorization": f"Bearer {token}", "nx-practice-id": self.practice_id}
            if content is not None:
                headers["Content-Type"] = "application/json"
            response = self._send(
                method, target, idempotent=idempotent, params=params, json=json, content=content, headers=headers
            )
            if response.status_code != 401 or renewed:
                break
            logger.info("nextech %s %s answered 401; renewing the token", method, urlsplit(target).path)
            self._force_renew(token)
        if response.status_code >= 400:
            raise EmrError(
                f"Nextech answered {response.status_code} to {method} {urlsplit(target).path}: "
                f"{_error_message(response)}",
                transient=False,
                status=response.status_code,
            )
        return response

    @staticmethod
    def _json(response: httpx.Response):
        try:
            return response.json()
        except ValueError as exc:
            raise EmrError(f"Nextech answered {response.status_code} without JSON", transient=True) from exc

    def _search(self, model, params, *, skip_bad: bool = False) -> list:
        """Every resource of a search (validated ``model`` instances), following link[relation=next] (only on our
        own API host: the bearer token goes nowhere else). ``skip_bad``: see ``_bundle_resources``."""
        path = f"/{model.get_resource_type()}"
        response = self._api("GET", path, params=params)
        found = []
        for _page in range(MAX_PAGES):
            resources, next_url = _bundle_resources(self._json(response), model, skip_bad=skip_bad)
            found.extend(resources)
            if not next_url:
                return found
            if not next_url.startswith(self.base_url + "/"):
                raise EmrError("Nextech's next page link points outside the API", transient=False)
            response = self._api("GET", path, url=next_url)
        logger.warning("nextech %s search stopped after %s pages", path, MAX_PAGES)
        return found

    # --- availability --------------------------------------------------------------------------------------------

    def availability(self, *, service_ref: str, start: datetime, end: datetime, provider_ref: str = "") -> list[Slot]:
        _require_aware(start, "start")
        _require_aware(end, "end")
        if not service_ref:
            raise ValueError("service_ref (the Nextech appointment type) is required")
        if end <= start:
            return []
        if end - start > MAX_WINDOW:
            raise ValueError("Nextech searches at most 60 days of slots at a time")
        service_ref = _plain_id(service_ref, "appointment-type")
        provider_ref = _plain_id(provider_ref, "practitioner")
        params = [
            ("start", f"ge{start.isoformat()}"),
            ("start", f"lt{end.isoformat()}"),
            ("schedule.actor", f"location/{self.location_id}"),
        ]
        if provider_ref:
            params.append(("schedule.actor", f"practitioner/{provider_ref}"))
        # In the reference form, as _slot.md's example sends it: appointment-type=appointment-type/87.
        params += [("appointment-type", f"appointment-type/{service_ref}"), ("_count", str(PAGE_SIZE))]
        slots = {}
        for resource in self._search(FhirSlot, params, skip_bad=True):
            slot = self._slot(resource, service_ref=service_ref, provider_ref=provider_ref)
            if slot and start <= slot.start < end:
                slots[(slot.start, slot.provider_ref, slot.emr_slot_id)] = slot
        return sorted(slots.values(), key=lambda slot: (slot.start, slot.provider_ref))

    def _slot(self, resource: FhirSlot, *, service_ref: str, provider_ref: str) -> Slot | None:
        """Our Slot from a validated STU3 Slot (the model guarantees schedule, status and offset-carrying start/end;
        Nextech's schedule reference names the location and practitioner: schedule/location_1_practitioner_9)."""
        if resource.status != FREE:
            return None
        slot_start, slot_end = _aware(resource.start), _aware(resource.end)
        if not slot_start or not slot_end or slot_end <= slot_start:
            _skipped("Slot", resource, "bad_times", "end not after start")
            return None
        schedule = resource.schedule.reference or ""
        practitioner = re.search(r"practitioner_([^_/]+)", schedule)
        location = re.search(r"location_([^_/]+)", schedule)
        practitioner_id = practitioner.group(1) if practitioner else provider_ref
        if not practitioner_id:
            _skipped("Slot", resource, "no_practitioner", "no practitioner in its schedule")
            return None
        if provider_ref and practitioner_id != str(provider_ref):
            return None
        appointment_type = _ref_id(_extension_reference(resource, "appointment-type"), "appointment-type")
        return Slot(
            start=slot_start,
            end=slot_end,
            provider_ref=practitioner_id,
            service_ref=appointment_type or service_ref,
            location_ref=location.group(1) if location else self.location_id,
            emr_slot_id=str(resource.id or ""),  # Nextech's Slot sample has no id
            purpose_ref=_ref_id(_extension_reference(resource, "appointment-purpose"), "appointment-purpose"),
        )

    def is_time_free(self, slot: Slot) -> bool:
        """Whether Nextech still offers this time (asked right before writing). The Slot it offers carries the
        appointment purpose, which the create that follows sends (``_purpose``)."""
        return self._offered(slot) is not None

    def _offered(self, slot: Slot) -> Slot | None:
        offered = self.availability(
            service_ref=slot.service_ref, start=slot.start, end=slot.end, provider_ref=slot.provider_ref
        )
        match = next((s for s in offered if s.start == slot.start), None)
        self._last_offered = (self._slot_key(slot), match.purpose_ref if match else "")
        return match

    @staticmethod
    def _slot_key(slot: Slot) -> tuple:
        return (
            slot.start,
            _plain_id(slot.provider_ref, "practitioner"),
            _plain_id(slot.service_ref, "appointment-type"),
        )

    def _purpose(self, slot: Slot, booking_id) -> str:
        """The appointment purpose to book with: the slot's own, else that of the Slot Nextech offers at this time
        (from the re-check just made, else asked now). Nextech requires one up to version 16.2 (issue 18); when
        Nextech offers none, or cannot be asked, the appointment goes without and Nextech's answer decides."""
        if slot.purpose_ref:
            return _plain_id(slot.purpose_ref, "appointment-purpose")
        key, purpose = self._last_offered
        if key == self._slot_key(slot):
            return purpose
        try:
            match = self._offered(slot)
        except EmrError as exc:
            logger.warning("nextech purpose lookup failed booking=%s status=%s", booking_id, exc.status)
            return ""
        return match.purpose_ref if match else ""

    # --- patients ------------------------------------------------------------------------------------------------

    def find_or_create_patient(self, patient: PatientInfo) -> str:
        phone = nextech_phone(patient.phone)
        if phone:
            # Family members often share a phone: a phone match counts only with the same family name (preferring
            # the same given name too); given names vary too much (Liz, Elizabeth) to require them.
            # Nextech matches the start of any of the patient's numbers: the number itself is checked here too.
            found = [
                p
                for p in self._search(FhirPatient, [("phone", phone)])
                if self._family_matches(p, patient) and self._has_phone(p, patient.phone)
            ]
            if found:
                chosen = next((p for p in found if self._name_matches(p, patient)), found[0])
                logger.info("nextech patient %s found by phone", chosen.id)
                return self._patient_id(chosen)
        found = self._search(FhirPatient, [("family", patient.last_name), ("given", patient.first_name)])
        for candidate in found:
            if self._same_person(candidate, patient):
                logger.info("nextech patient %s found by name", candidate.id)
                return self._patient_id(candidate)
        missing = self.patient_create_missing(patient)
        if missing:
            # POST /Patient would be refused: the patient is created with the appointment instead (a prospect from
            # the Appointment's contained Patient), so "" here.
            logger.info("nextech patient not on file; created with the appointment (no %s)", ", ".join(missing))
            return ""
        return self._create_patient(patient, phone)

    @staticmethod
    def patient_create_missing(patient: PatientInfo) -> list[str]:
        """What POST /Patient requires and we do not know (_patient.md, "Create Patient": first and last name, one of
        home, work or mobile phone, an email address, birthDate, address.postalCode)."""
        required = {
            "first name": patient.first_name.strip(),
            "last name": patient.last_name.strip(),
            "phone": nextech_phone(patient.phone),
            "email": (patient.email or "").strip(),
            "birth date": patient.birth_date,
            "postal code": (patient.postal_code or "").strip(),
        }
        return [name for name, value in required.items() if not value]

    @staticmethod
    def _has_phone(resource: FhirPatient, e164: str) -> bool:
        wanted = _digits(e164)
        return any(t.system == "phone" and _digits(t.value) == wanted for t in resource.telecom or [])

    @staticmethod
    def _names(resource: FhirPatient) -> list[tuple[str, list[str]]]:
        # STU3 HumanName: family is one string, given a list.
        return [
            ((name.family or "").strip().lower(), [g.strip().lower() for g in name.given or []])
            for name in resource.name or []
        ]

    def _family_matches(self, resource: FhirPatient, patient: PatientInfo) -> bool:
        return any(f == patient.last_name.strip().lower() for f, _ in self._names(resource))

    def _name_matches(self, resource: FhirPatient, patient: PatientInfo) -> bool:
        family, given = patient.last_name.strip().lower(), patient.first_name.strip().lower()
        return any(f == family and given in g for f, g in self._names(resource))

    def _same_person(self, resource: FhirPatient, patient: PatientInfo) -> bool:
        """A name match is only trusted when nothing on file contradicts it: the same email, or no phone at all.
        Someone with the same name and another phone is more likely another person than the same one, and writing
        into another person's chart is worse than a duplicate the front desk can merge."""
        if not self._name_matches(resource, patient):
            return False
        telecom = resource.telecom or []
        emails = {(t.value or "").strip().lower() for t in telecom if t.system == "email"}
        phones = [t for t in telecom if t.system == "phone" and t.value]
        if patient.email and patient.email.strip().lower() in emails:
            return True
        return not phones

    @staticmethod
    def _patient_id(resource: FhirPatient) -> str:
        if not resource.id:
            raise EmrError("Nextech answered a Patient without an id", transient=False)
        return str(resource.id)

    def _create_patient(self, patient: PatientInfo, phone: str) -> str:
        """POST /Patient with everything it requires (``patient_create_missing`` is empty). A 409 means Nextech
        matched an existing patient on those fields ("the patient will not be created and a 409 Conflict with a
        message indicating the patient already exists"): that patient is looked up and used."""
        body = {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": patient.last_name.strip(), "given": [patient.first_name.strip()]}],
            "telecom": [
                {"system": "phone", "value": phone, "use": "mobile"},
                {"system": "email", "value": patient.email.strip()},
            ],
            "birthDate": patient.birth_date.isoformat(),
            "address": [{"use": "home", "postalCode": patient.postal_code.strip()}],
        }
        try:
            response = self._api("POST", "/Patient", resource=_build(FhirPatient, body))
        except EmrError as exc:
            if exc.status != 409:
                raise
            return self._existing_patient(patient)
        ident = ""
        if response.content:
            try:
                ident = _parse(FhirPatient, self._json(response), "Patient to POST /Patient", loose=True).id or ""
            except EmrError as exc:
                # It may have been created: the next attempt searches (phone, then name) before creating again.
                logger.warning("nextech POST /Patient answered %s with a malformed body", response.status_code)
                raise EmrError(
                    f"{exc}; the patient may have been created", transient=True, status=response.status_code
                ) from None
        ident = ident or _ref_id(response.headers.get("Location", "").split("/_history")[0], "patient")
        if not ident:
            raise EmrError("Nextech created a patient but answered no id", transient=False)
        logger.info("nextech patient %s created", ident)
        return str(ident)

    def _existing_patient(self, patient: PatientInfo) -> str:
        """The patient Nextech's duplicate check matched (a 409 to POST /Patient): searched by name and birth date, and
        taken only with the same email or phone."""
        params = [
            ("family", patient.last_name.strip()),
            ("given", patient.first_name.strip()),
            ("birthdate", f"eq{patient.birth_date.isoformat()}"),
        ]
        email = patient.email.strip().lower()
        for candidate in self._search(FhirPatient, params):
            emails = {(t.value or "").strip().lower() for t in candidate.telecom or [] if t.system == "email"}
            if email in emails or self._has_phone(candidate, patient.phone):
                logger.info("nextech patient %s already on file (409 to POST /Patient)", candidate.id)
                return self._patient_id(candidate)
        raise EmrError(
            "Nextech answered that this patient already exists (409 to POST /Patient), but no patient with the same "
            "name, birth date and email or phone is found: book this one in Nextech by hand",
            transient=False,
            status=409,
        )

    # --- appointments --------------------------------------------------------------------------------------------

    def appointment_body(self, request: AppointmentRequest, patient_id: str, purpose: str = "") -> dict:
        """The Appointment as it is sent (the STU3 model's JSON, as a dict)."""
        resource = self.appointment_resource(request, patient_id, purpose)
        return resource.model_dump(mode="json", exclude_none=True)

    def appointment_resource(self, request: AppointmentRequest, patient_id: str, purpose: str = "") -> FhirAppointment:
        """The STU3 Appointment for a booking, as _appointment.md's "Book Appointment" examples write it: status
        proposed, lower-case references, the appointment-type (and -purpose) extensions in the reference form, and
        appointment-schedule "book". With ``patient_id`` "" the patient goes as a contained Patient, from which Nextech
        creates a prospect linked to the appointment. EmrError (not transient) when the model refuses it."""
        slot = request.slot
        _require_aware(slot.start, "slot.start")
        _require_aware(slot.end, "slot.end")
        if slot.end <= slot.start:
            raise ValueError("slot.end must be after slot.start")
        service = _plain_id(slot.service_ref, "appointment-type")
        practitioner = _plain_id(slot.provider_ref, "practitioner")
        if not service or not practitioner:
            raise ValueError("a Nextech appointment needs the slot's service_ref and provider_ref")
        comment = booking_marker(request.booking_id)
        if request.comment:
            comment = f"{comment} {request.comment}"
        location = _plain_id(slot.location_ref, "location") or self.location_id
        participants = [
            {"actor": {"reference": f"location/{location}"}, "status": "accepted"},
            {"actor": {"reference": f"practitioner/{practitioner}"}, "status": "accepted"},
        ]
        if patient_id:
            participants.insert(0, {"actor": {"reference": f"patient/{patient_id}"}, "status": "accepted"})
        type_reference = {"reference": f"appointment-type/{service}"}
        extensions = [{"url": EXTENSION_PREFIX + "appointment-type", "valueReference": type_reference}]
        if purpose:
            extensions.append(
                {
                    "url": EXTENSION_PREFIX + "appointment-purpose",
                    "valueReference": {"reference": f"appointment-purpose/{_plain_id(purpose, 'appointment-purpose')}"},
                }
            )
        extensions.append({"url": EXTENSION_PREFIX + "appointment-schedule", "valueString": "book"})
        body = {
            "resourceType": "Appointment",
            "status": "proposed",
            "start": slot.start.isoformat(),
            "end": slot.end.isoformat(),
            "comment": comment,
            "participant": participants,
            "extension": extensions,
        }
        if not patient_id:
            body["contained"] = [self._prospect(request.patient)]
        return _build(FhirAppointment, body)

    @staticmethod
    def _prospect(patient: PatientInfo) -> dict:
        """The contained Patient of an appointment for someone Nextech does not have (_appointment.md, "Book
        Appointment", option 2: given and family name, at least one phone, an email address; birth date and zip code
        recommended). Without an email it still goes (we may not have one): Nextech's 409 reason then says why."""
        first, last, phone = patient.first_name.strip(), patient.last_name.strip(), nextech_phone(patient.phone)
        if not first or not last or not phone:
            raise EmrError("A new Nextech patient needs a first name, a last name and a phone number", transient=False)
        telecom = [{"system": "phone", "value": phone, "use": "mobile"}]
        if (patient.email or "").strip():
            telecom.append({"system": "email", "value": patient.email.strip()})
        resource = {
            "resourceType": "Patient",
            "name": [{"use": "official", "family": last, "given": [first]}],
            "telecom": telecom,
        }
        if patient.birth_date:
            resource["birthDate"] = patient.birth_date.isoformat()
        if (patient.postal_code or "").strip():
            resource["address"] = [{"use": "home", "postalCode": patient.postal_code.strip()}]
        return resource

    def create_appointment(self, request: AppointmentRequest) -> Appointment:
        patient_id = request.emr_patient_id or self.find_or_create_patient(request.patient)
        purpose = self._purpose(request.slot, request.booking_id)
        resource = self.appointment_resource(request, patient_id, purpose)  # an invalid one never leaves
        if not patient_id:
            logger.info(
                "nextech appointment for a new patient (contained Patient, %s email) booking=%s",
                "with" if (request.patient.email or "").strip() else "without",
                request.booking_id,
            )
        try:
            response = self._api("POST", "/Appointment", resource=resource)
        except EmrError as exc:
            if exc.status == 409:
                raise self._refused(exc, request) from exc
            raise
        try:
            appointment = self._appointment(self._json(response))
        except EmrError as exc:
            # Nextech accepted the POST, so the appointment probably exists: never written again blindly. Transient,
            # like a timed-out create: the caller's next attempt looks it up by booking:<id> (find_appointment).
            logger.warning(
                "nextech POST /Appointment answered %s with a malformed body booking=%s",
                response.status_code,
                request.booking_id,
            )
            raise EmrError(
                f"{exc} (to POST /Appointment, answered {response.status_code}); it may have been created: "
                "look it up with find_appointment before writing again",
                transient=True,
                status=response.status_code,
            ) from None
        logger.info("nextech appointment %s created booking=%s", appointment.emr_appointment_id, request.booking_id)
        return appointment

    def _refused(self, exc: EmrError, request: AppointmentRequest) -> EmrError:
        """What a 409 to POST /Appointment means. Nextech answers 409 to any failed create, "the reason ... in the
        AppointmentResponse Comment field" (_appointment.md), and publishes no list of reasons. So the time is asked
        for again: no longer offered (or a reason that says so) is SlotTakenError, offer other times; still offered
        is an EmrError with Nextech's reason, for staff (not transient: the same request would fail the same way).
        The prospect a failed create was making is deleted by Nextech, so nothing is left behind either way."""
        reason = str(exc)
        try:
            offered = self._offered(request.slot)
        except EmrError:
            logger.warning("nextech 409 to POST /Appointment, re-check failed booking=%s", request.booking_id)
            unknown = f"{reason}; whether the time is still free could not be checked"
            return EmrError(unknown, transient=True, status=409)
        if offered is None or TIME_TAKEN.search(reason.partition(": ")[2]):
            logger.info("nextech slot taken booking=%s", request.booking_id)
            return SlotTakenError(reason, transient=False, status=409)
        logger.warning("nextech refused the appointment (409, the time still free) booking=%s", request.booking_id)
        refused = f"Nextech refused the appointment, the time is still free: {reason}"
        return EmrError(refused, transient=False, status=409)

    @staticmethod
    def _appointment(body) -> Appointment:
        """Our Appointment from Nextech's answer (read as ``NextechAppointment``: see there)."""
        if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
            raise EmrError("Nextech answered something other than an Appointment", transient=False)
        return NextechClient._from_fhir(_parse(NextechAppointment, body, "Appointment", loose=True))

    @staticmethod
    def _from_fhir(resource: FhirAppointment) -> Appointment:
        if not resource.id:
            raise EmrError("Nextech answered an Appointment without an id", transient=False)
        return Appointment(
            emr_appointment_id=str(resource.id), status=resource.status or "", start=_aware(resource.start)
        )

    def find_appointment(self, *, booking_id: int, patient_id: str, start: datetime) -> Appointment | None:
        """The live appointment whose comment carries booking:<booking_id>. Cancelled ones are ignored: they hold
        no time, so writing again is right; one without a status (a Select status FHIR has no word for) is live.
        Searched by the patient's id as _appointment.md writes it (``patient=12345``); without one (a new patient,
        created with the appointment) by the practice's location that day, the marker telling ours apart."""
        _require_aware(start, "start")
        who = ("patient", str(patient_id)) if patient_id else ("location.id", self.location_id)
        params = [who, ("date", f"eq{start.date().isoformat()}")]
        for resource in self._search(NextechAppointment, params):
            if resource.status in CLOSED_STATUSES or not _has_marker(resource.comment, booking_id):
                continue
            appointment = self._from_fhir(resource)
            logger.info("nextech appointment %s found for booking=%s", appointment.emr_appointment_id, booking_id)
            return appointment
        return None

    def _set_status(self, emr_appointment_id: str, status: str) -> Appointment:
        if not emr_appointment_id:
            raise ValueError("emr_appointment_id is required")
        body = {"resourceType": "Appointment", "id": str(emr_appointment_id), "status": status}
        response = self._api("PUT", f"/Appointment/{emr_appointment_id}", json=body)
        logger.info("nextech appointment %s set %s", emr_appointment_id, status)
        try:
            return self._appointment(response.json())
        except (ValueError, EmrError):
            return Appointment(emr_appointment_id=str(emr_appointment_id), status=status)

    def confirm_appointment(self, emr_appointment_id: str) -> Appointment:
        return self._set_status(emr_appointment_id, "booked")

    def cancel_appointment(self, emr_appointment_id: str) -> None:
        self._set_status(emr_appointment_id, "cancelled")

    # --- Reading one appointment (the lifecycle's checks before a reminder and its periodic sync) ---

    def appointment_status(self, emr_appointment_id: str) -> Appointment:
        """FHIR read ``GET /Appointment/{id}``: its status (booked, cancelled, noshow, fulfilled...) and start."""
        if not emr_appointment_id:
            raise ValueError("emr_appointment_id is required")
        response = self._api("GET", f"/Appointment/{emr_appointment_id}")
        return self._appointment(self._json(response))
