"""Number provisioning and 10DLC registration at Telnyx.

One messaging profile per clinic (a STOP blocks every number on a profile), numbers ordered or hosted onto it, and
the clinic's 10DLC brand and campaign with its numbers assigned. Plain service functions for the admin, management
commands and tasks to call. Each one stores what Telnyx answered; on any failure it stores a readable message in
``ClinicMessaging.last_error`` (where there is a clinic) and raises ``ProvisioningError`` with that message.

Calls go through the official SDK (``telnyx`` 4.x) with retries off: a number order repeated after a timeout could
be placed twice, so a failed call is reported and a person decides. 10DLC is retried, by the periodic
``tendlc_refresh_due`` with backoff, because each of its steps is safe to repeat (an existing brand is looked up
before one is created; ids are stored first). The number search is the one
call made through the SDK client's generic ``get``: the SDK's ``available_phone_numbers.list`` encodes the
features filter as ``filter[features]=sms`` while the documented form is ``filter[features][]=sms``.

Logs carry clinic slugs, ids and Telnyx messages only; provisioning touches no patient data.
"""

import hashlib
import logging
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import phonenumbers
import telnyx
from django.conf import settings
from django.db import models

from medspa.alerts import staff_alert
from medspa.models import Clinic, StaffAlert

from .compliance import consent_wording
from .models import ClinicMessaging, PhoneNumber, Provider
from .services import confirmation_texts

logger = logging.getLogger(__name__)

TELNYX_DEFAULT_BASE_URL = "https://api.telnyx.com/v2"

# CUSTOMER_CARE rather than MIXED: every text answers a patient who contacted the clinic first (a call, a text, the
# web form) about their own questions and appointments; nothing is marketing. MIXED is for campaigns that combine
# use cases (it needs sub-use-cases and is vetted as the broadest, marketing-capable kind), so claiming it would
# describe traffic we do not send and invite stricter review.
CAMPAIGN_USECASE = "CUSTOMER_CARE"
OPTIN_KEYWORDS = "START"
OPTOUT_KEYWORDS = "STOP,STOPALL,UNSUBSCRIBE,CANCEL,END,QUIT,REVOKE,OPTOUT"
HELP_KEYWORDS = "HELP,INFO"

# phone_number_campaigns assignmentStatus -> PhoneNumber.campaign_status. While an unassignment is pending or has
# failed, the number is still on the campaign.
ASSIGNMENT_STATUSES = {
    "ASSIGNED": PhoneNumber.CampaignStatus.ASSIGNED,
    "PENDING_ASSIGNMENT": PhoneNumber.CampaignStatus.PENDING,
    "FAILED_ASSIGNMENT": PhoneNumber.CampaignStatus.FAILED,
    "PENDING_UNASSIGNMENT": PhoneNumber.CampaignStatus.ASSIGNED,
    "FAILED_UNASSIGNMENT": PhoneNumber.CampaignStatus.ASSIGNED,
}

ORDER_SUCCESS = "success"  # number_orders: pending, success, failure
ORDER_FAILURE = "failure"
HOSTED_ORDER_SUCCESS = "successful"  # messaging_hosted_number_orders: pending, provisioning, successful, failed, ...

AREA_CODE = re.compile(r"[2-9]\d{2}")  # a NANP area code never starts with 0 or 1
E164 = re.compile(r"\+[1-9]\d{7,14}")


class ProvisioningError(Exception):
    """A provisioning step failed; ``message`` says why in words staff can act on."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.transient = transient  # an outage (timeout, 5xx, 429) rather than a refusal: worth retrying


# --- Plumbing ---------------------------------------------------------------------------------------------------


def telnyx_client() -> telnyx.Telnyx:
    """The Telnyx SDK client from settings (TELNYX_API_KEY, TELNYX_BASE_URL), without automatic retries."""
    if not settings.TELNYX_API_KEY:
        raise ProvisioningError("Telnyx is not configured: set TELNYX_API_KEY to provision numbers and 10DLC.")
    return telnyx.Telnyx(
        api_key=settings.TELNYX_API_KEY,
        base_url=settings.TELNYX_BASE_URL or TELNYX_DEFAULT_BASE_URL,
        max_retries=0,
        timeout=10.0,
    )


def webhook_url() -> str:
    """Where Telnyx posts message events for every clinic's profile (also the failover URL)."""
    return f"{settings.PUBLIC_BASE_URL}/webhooks/telnyx/messages"


def _fail(messaging: ClinicMessaging | None, message: str, *, transient: bool = False) -> ProvisioningError:
    """Store ``message`` as the clinic's last provisioning error and return the exception to raise."""
    if messaging is not None:
        messaging.last_error = message
        messaging.save(update_fields=["last_error", "updated_at"])
        logger.warning("telnyx provisioning failed clinic=%s: %s", messaging.clinic.slug, message)
    else:
        logger.warning("telnyx provisioning failed: %s", message)
    return ProvisioningError(message, transient=transient)


def _client(messaging: ClinicMessaging | None) -> telnyx.Telnyx:
    try:
        return telnyx_client()
    except ProvisioningError as exc:
        raise _fail(messaging, exc.message) from None


def _errors_text(body: Any) -> str:
    """Telnyx error bodies: ``{"errors": [{"code", "title", "detail"}]}`` (10DLC sometimes sends the list bare)."""
    errors = body.get("errors") if isinstance(body, dict) else body
    parts = []
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        words = [str(error[key]) for key in ("title", "detail", "description", "message") if error.get(key)]
        text = ": ".join(dict.fromkeys(words))  # titles and details sometimes repeat each other
        if error.get("code") not in (None, ""):
            text = f"{text} (code {error['code']})" if text else f"code {error['code']}"
        if text:
            parts.append(text)
    return "; ".join(parts)


def _error_message(exc: Exception, what: str) -> str:
    if isinstance(exc, telnyx.APIStatusError):
        reason = _errors_text(exc.body) or exc.message
        return f"Telnyx refused {what} (HTTP {exc.status_code}): {reason}"[:1000]
    if isinstance(exc, telnyx.APITimeoutError):
        return f"Telnyx did not answer {what} in time; check at Telnyx whether it happened before trying again."
    if isinstance(exc, telnyx.APIConnectionError):
        return f"Could not reach Telnyx for {what}: {exc}"
    return f"Telnyx's answer to {what} could not be read: {exc}"


def _transient(exc: Exception) -> bool:
    if isinstance(exc, telnyx.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, telnyx.APIConnectionError)  # APITimeoutError is one


def _call(messaging: ClinicMessaging | None, what: str, method: Callable[..., Any], *args, **kwargs) -> dict:
    """Call the SDK; return its answer as the JSON object Telnyx sent (API field names) or raise ProvisioningError."""
    try:
        result = method(*args, **kwargs)
    except telnyx.APIError as exc:
        raise _fail(messaging, _error_message(exc, what), transient=_transient(exc)) from exc
    if hasattr(result, "to_dict"):
        result = result.to_dict()
    if not isinstance(result, dict):
        raise _fail(messaging, f"Telnyx's answer to {what} was not a JSON object.")
    return result


def _data(answer: dict) -> dict:
    data = answer.get("data")
    return data if isinstance(data, dict) else {}


def _e164(phone_number: str) -> str:
    number = (phone_number or "").strip()
    if not E164.fullmatch(number):
        raise ValueError(f"{phone_number!r} is not an E.164 number such as +13055550123.")
    return number


def _messaging(clinic: Clinic) -> ClinicMessaging:
    messaging, _ = ClinicMessaging.objects.get_or_create(clinic=clinic)
    return messaging


def _saved(messaging: ClinicMessaging, *fields: str) -> ClinicMessaging:
    messaging.last_error = ""
    messaging.save(update_fields=[*fields, "last_error", "updated_at"])
    return messaging


# --- Messaging profile and numbers -------------------------------------------------------------------------------


def messaging_profile_ensure(*, clinic: Clinic) -> ClinicMessaging:
    """The clinic's ClinicMessaging row with a Telnyx messaging profile, created at Telnyx the first time.

    Idempotent: once ``messaging_profile_id`` is stored, no call is made. Two concurrent first calls could create two
    profiles (Telnyx takes no idempotency key here); run it from one admin action or task at a time.
    """
    messaging = _messaging(clinic)
    if messaging.messaging_profile_id:
        return messaging
    client = _client(messaging)
    url = webhook_url()
    answer = _call(
        messaging,
        "creating the messaging profile",
        client.messaging_profiles.create,
        name=f"{clinic.name} ({clinic.slug})",
        whitelisted_destinations=["US"],
        webhook_url=url,
        webhook_failover_url=url,
    )
    profile_id = _data(answer).get("id")
    if not profile_id:
        raise _fail(messaging, "Telnyx created the messaging profile but sent back no id; check the Telnyx portal.")
    messaging.messaging_profile_id = str(profile_id)
    logger.info("telnyx messaging profile created clinic=%s profile=%s", clinic.slug, profile_id)
    return _saved(messaging, "messaging_profile_id")


def numbers_search(*, area_code: str, limit: int = 10) -> list[str]:
    """SMS-capable US numbers available to order in ``area_code`` (three digits), as E.164 strings."""
    area = str(area_code).strip()
    if not AREA_CODE.fullmatch(area):
        raise ValueError(f"{area_code!r} is not a US area code (three digits, not starting with 0 or 1).")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive whole number.")
    client = _client(None)
    params = {
        "filter[country_code]": "US",
        "filter[features][]": "sms",
        "filter[national_destination_code]": area,
        "filter[limit]": limit,
    }
    answer = _call(
        None,
        f"the number search in area code {area}",
        client.get,
        "/available_phone_numbers",
        cast_to=object,
        options={"params": params},
    )
    found = answer.get("data")
    numbers = []
    for item in found if isinstance(found, list) else []:
        number = item.get("phone_number") if isinstance(item, dict) else None
        if isinstance(number, str) and E164.fullmatch(number):
            numbers.append(number)
    return numbers[:limit]


def _refuse_known_number(messaging: ClinicMessaging, number: str) -> None:
    existing = PhoneNumber.objects.filter(number=number).select_related("clinic").first()
    if existing is not None:
        owner = "this clinic" if existing.clinic_id == messaging.clinic_id else "another clinic"
        raise _fail(messaging, f"{number} is already on file for {owner}; it was not ordered again.")


def number_order(*, clinic: Clinic, phone_number: str) -> PhoneNumber:
    """Buy ``phone_number`` (from ``numbers_search``) onto the clinic's messaging profile and record it.

    The number is ACTIVE when Telnyx answers the order with status "success", PENDING otherwise (see
    ``provisioning_refresh``). A number already on file, for any clinic, is refused before any call.
    """
    return _order_number(clinic, phone_number, hosted=False)


def hosted_number_order(*, clinic: Clinic, phone_number: str) -> PhoneNumber:
    """Start hosted SMS on the clinic's existing landline ``phone_number`` and record it as PENDING.

    Telnyx then needs the eligibility check and the verification codes (done in the Telnyx portal for now); the
    number turns ACTIVE in ``provisioning_refresh`` once the order is "successful".
    """
    return _order_number(clinic, phone_number, hosted=True)


def _order_number(clinic: Clinic, phone_number: str, *, hosted: bool) -> PhoneNumber:
    """The body of ``number_order`` (``hosted=False``) and ``hosted_number_order``: refuse a number on file, place
    the order on the clinic's messaging profile, refuse an answer without an order id (or a failed number order),
    record the number."""
    number = _e164(phone_number)
    _refuse_known_number(_messaging(clinic), number)
    messaging = messaging_profile_ensure(clinic=clinic)
    client = _client(messaging)
    answer = _call(
        messaging,
        f"the hosted SMS order for {number}" if hosted else f"the order for {number}",
        client.messaging_hosted_number_orders.create if hosted else client.number_orders.create,
        phone_numbers=[number] if hosted else [{"phone_number": number}],
        messaging_profile_id=messaging.messaging_profile_id,
    )
    order = _data(answer)
    order_status = str(order.get("status") or "")
    if not order.get("id") and hosted:
        raise _fail(messaging, f"Telnyx answered the hosted order for {number} without an order id.")
    if not order.get("id"):
        raise _fail(messaging, f"Telnyx answered the order for {number} without an order id; check the portal.")
    if hosted:
        phone = _record_ordered_number(messaging, number, order, hosted=True, status=PhoneNumber.Status.PENDING)
        logger.info("telnyx hosted order placed clinic=%s order=%s", clinic.slug, order["id"])
        return phone
    if order_status == ORDER_FAILURE:
        raise _fail(messaging, f"Telnyx could not order {number} (order {order['id']} failed); pick another number.")
    status = PhoneNumber.Status.ACTIVE if order_status == ORDER_SUCCESS else PhoneNumber.Status.PENDING
    phone = _record_ordered_number(messaging, number, order, hosted=False, status=status)
    logger.info("telnyx number ordered clinic=%s order=%s status=%s", clinic.slug, order["id"], order_status)
    return phone


def _record_ordered_number(messaging, number: str, order: dict, *, hosted: bool, status: str) -> PhoneNumber:
    """The PhoneNumber row for an order Telnyx accepted (a bought number or a hosted-SMS landline)."""
    phone = PhoneNumber.objects.create(
        clinic=messaging.clinic,
        number=number,
        provider=Provider.TELNYX,
        messaging_profile_id=messaging.messaging_profile_id,
        provider_number_id=_ordered_number_id(order, number),
        hosted=hosted,
        order_id=str(order["id"]),
        order_status=str(order.get("status") or ""),
        status=status,
    )
    _saved(messaging)
    return phone


def _ordered_number_id(order: dict, number: str) -> str:
    for item in order.get("phone_numbers") or []:
        if isinstance(item, dict) and item.get("phone_number") == number and item.get("id"):
            return str(item["id"])
    return ""


# --- 10DLC -------------------------------------------------------------------------------------------------------
#
# A state machine that follows Telnyx (``tendlc_advance`` takes the next step; the beat task calls it):
#   no brand -> brand registered (REGISTRATION_PENDING) -> brand OK and identity VERIFIED (a sole proprietor gets
#   there by the SMS one-time password) -> campaign submitted -> each ACTIVE number assigned -> ASSIGNED.
# Each step is idempotent, so a retry after any failure repeats nothing that already happened at Telnyx.

ENTITY = ClinicMessaging.EntityType

# The fields each entity type needs before the brand is sent (label, value getter). Telnyx's API reference marks only
# country/displayName/email/entityType/vertical as required; TCR refuses or fails a standard brand without the rest.
_STANDARD_FIELDS: tuple[tuple[str, Callable[[ClinicMessaging], str]], ...] = (
    ("legal name", lambda m: m.legal_name),
    ("contact email", lambda m: m.contact_email),
    ("EIN", lambda m: m.ein),
    ("clinic phone", lambda m: m.clinic.front_desk_phone),
    ("street", lambda m: m.clinic.street),
    ("city", lambda m: m.clinic.city),
    ("state", lambda m: m.clinic.state),
    ("postal code", lambda m: m.clinic.postal_code),
    ("website", lambda m: m.clinic.website),
)
_PUBLIC_FIELDS = (
    ("stock symbol", lambda m: m.stock_symbol),
    ("stock exchange", lambda m: m.stock_exchange),
    ("business contact email", lambda m: m.business_contact_email),
)
_SOLE_PROPRIETOR_FIELDS = (
    ("owner's first name", lambda m: m.first_name),
    ("owner's last name", lambda m: m.last_name),
    ("owner's mobile phone", lambda m: m.mobile_phone),
    ("contact email", lambda m: m.contact_email),
    ("clinic phone", lambda m: m.clinic.front_desk_phone),
    ("street", lambda m: m.clinic.street),
    ("city", lambda m: m.clinic.city),
    ("state", lambda m: m.clinic.state),
    ("postal code", lambda m: m.clinic.postal_code),
)

# Telnyx brand ``status`` (TCR): OK, REGISTRATION_PENDING, REGISTRATION_FAILED; ``identityStatus``: VERIFIED,
# UNVERIFIED, SELF_DECLARED, VETTED_VERIFIED. A campaign is accepted only on an OK, verified brand.
BRAND_OK = "OK"
BRAND_FAILED = "REGISTRATION_FAILED"
IDENTITY_VERIFIED = frozenset({"VERIFIED", "VETTED_VERIFIED"})
# campaignStatus values that end a campaign: no number is assigned to one of these.
CAMPAIGN_DEAD = frozenset({"TCR_FAILED", "TELNYX_FAILED", "MNO_REJECTED", "TCR_SUSPENDED", "TCR_EXPIRED"})
CAMPAIGN_ACTIVE = "MNO_PROVISIONED"
SOLE_PROPRIETOR_USECASE = "SOLE_PROPRIETOR"
OTP_PIN_SMS = "@OTP_PIN@ is your code to confirm {name}'s text messaging registration."
OTP_SUCCESS_SMS = "Thank you: {name}'s text messaging registration is confirmed."


def brand_missing_fields(messaging: ClinicMessaging) -> list[str]:
    """The fields the clinic's entity type needs for its 10DLC brand that are still empty (labels staff know)."""
    if messaging.entity_type == ENTITY.SOLE_PROPRIETOR:
        fields = _SOLE_PROPRIETOR_FIELDS
    elif messaging.entity_type == ENTITY.PUBLIC_PROFIT:
        fields = _STANDARD_FIELDS + _PUBLIC_FIELDS
    else:
        fields = _STANDARD_FIELDS
    return [label for label, value in fields if not (value(messaging) or "").strip()]


def _body(answer: dict) -> dict:
    """A 10DLC answer, bare (``{"brandId": ...}``, as the API reference shows) or wrapped (``{"data": {...}}``, as
    Telnyx's guides read it)."""
    data = answer.get("data")
    return data if isinstance(data, dict) else answer


def brand_verified(messaging: ClinicMessaging) -> bool:
    return messaging.brand_status == BRAND_OK and messaging.brand_identity_status in IDENTITY_VERIFIED


def _brand_fields(messaging: ClinicMessaging) -> dict:
    """The brand body (SDK keyword names) for the clinic's entity type; empty values left out."""
    clinic = messaging.clinic
    fields = {
        "country": "US",
        "display_name": clinic.name,
        "email": messaging.contact_email,
        "entity_type": messaging.entity_type,
        "vertical": "HEALTHCARE",
        "phone": clinic.front_desk_phone,
        "street": clinic.street,
        "city": clinic.city,
        "state": clinic.state,
        "postal_code": clinic.postal_code,
        "website": clinic.website,
    }
    if messaging.entity_type == ENTITY.SOLE_PROPRIETOR:
        fields |= {"first_name": messaging.first_name, "last_name": messaging.last_name}
        fields["mobile_phone"] = messaging.mobile_phone
    else:
        fields |= {"company_name": messaging.legal_name, "ein": messaging.ein}
    if messaging.entity_type == ENTITY.PUBLIC_PROFIT:
        fields |= {
            "stock_symbol": messaging.stock_symbol,
            "stock_exchange": messaging.stock_exchange,
            "business_contact_email": messaging.business_contact_email,
        }
    return {key: value for key, value in fields.items() if value}


def _existing_brand(messaging: ClinicMessaging, client: telnyx.Telnyx) -> dict | None:
    """A brand already at Telnyx for this clinic (same display name, entity type and contact email): the one a
    registration whose answer was lost created. Telnyx takes no idempotency key on brand creation."""
    answer = _call(
        messaging,
        "the search for an existing 10DLC brand",
        client.get,
        "/10dlc/brand",
        cast_to=object,
        options={"params": {"displayName": messaging.clinic.name, "recordsPerPage": 100}},
    )
    records = _body(answer).get("records")
    for record in records if isinstance(records, list) else []:
        if (
            isinstance(record, dict)
            and record.get("brandId")
            and record.get("entityType") == messaging.entity_type
            and str(record.get("email") or "").lower() == messaging.contact_email.lower()
            and record.get("status") != BRAND_FAILED
        ):
            return record
    return None


def _store_brand(messaging: ClinicMessaging, brand: dict) -> None:
    """Record the brand id first, on its own (a fee was charged for it), then what else the answer says."""
    messaging.brand_id = str(brand["brandId"])
    ClinicMessaging.objects.filter(pk=messaging.pk).update(brand_id=messaging.brand_id)
    messaging.brand_status = str(brand.get("status") or "")[:40]
    messaging.brand_identity_status = str(brand.get("identityStatus") or "")[:40]
    _saved(messaging, "brand_id", "brand_status", "brand_identity_status")


def brand_register(*, clinic: Clinic) -> ClinicMessaging:
    """Register the clinic as a 10DLC brand (vertical HEALTHCARE) with the fields its entity type needs.

    Refused before any call, naming the missing fields, when the clinic's data is short (``brand_missing_fields``).
    Idempotent: with a ``brand_id`` stored no call is made, and before creating a brand the clinic's existing one is
    looked up at Telnyx (a retry after a lost answer adopts it instead of paying for a second brand).
    """
    messaging = _messaging(clinic)
    if messaging.brand_id:
        return messaging
    missing = brand_missing_fields(messaging)
    if missing:
        raise _fail(messaging, f"Cannot register the 10DLC brand: fill in {', '.join(missing)}.")
    client = _client(messaging)
    existing = _existing_brand(messaging, client)
    if existing is not None:
        _store_brand(messaging, existing)
        logger.info("10dlc brand found clinic=%s brand=%s", clinic.slug, messaging.brand_id)
        return messaging
    answer = _call(
        messaging,
        "the 10DLC brand registration",
        client.messaging_10dlc.brand.create,
        **_brand_fields(messaging),
    )
    brand = _body(answer)
    if not brand.get("brandId"):
        raise _fail(messaging, "Telnyx answered the brand registration without a brandId; check the portal.")
    _store_brand(messaging, brand)
    logger.info("10dlc brand registered clinic=%s brand=%s", clinic.slug, messaging.brand_id)
    return messaging


def brand_otp_trigger(*, clinic: Clinic) -> ClinicMessaging:
    """Sole proprietor: ask Telnyx to text a one-time PIN to the owner's mobile phone (again, if asked again)."""
    messaging = _messaging(clinic)
    if messaging.entity_type != ENTITY.SOLE_PROPRIETOR:
        raise _fail(messaging, "Only a sole proprietor's brand is verified by a texted PIN.")
    if not messaging.brand_id:
        raise _fail(messaging, "Cannot send the verification PIN: register the brand first.")
    client = _client(messaging)
    answer = _call(
        messaging,
        "the verification PIN request",
        client.messaging_10dlc.brand.trigger_sms_otp,
        messaging.brand_id,
        pin_sms=OTP_PIN_SMS.format(name=clinic.name),
        success_sms=OTP_SUCCESS_SMS.format(name=clinic.name),
    )
    messaging.otp_reference_id = str(_body(answer).get("referenceId") or "")[:64]
    logger.info("10dlc otp triggered clinic=%s brand=%s", clinic.slug, messaging.brand_id)
    return _saved(messaging, "otp_reference_id")


def brand_otp_verify(*, clinic: Clinic, pin: str) -> ClinicMessaging:
    """Sole proprietor: send the PIN the owner received; then read the brand again (its identity turns VERIFIED)."""
    messaging = _messaging(clinic)
    pin = (pin or "").strip()
    if not pin.isdigit():
        raise ValueError("The verification PIN is the digits texted to the owner's mobile phone.")
    if not messaging.brand_id:
        raise _fail(messaging, "Cannot verify the PIN: register the brand first.")
    client = _client(messaging)
    _call_none(
        messaging,
        "the verification PIN",
        client.messaging_10dlc.brand.verify_sms_otp,
        messaging.brand_id,
        otp_pin=pin,
    )
    logger.info("10dlc otp verified clinic=%s brand=%s", clinic.slug, messaging.brand_id)
    _refresh_brand(messaging, client)
    return _saved(messaging)


def _call_none(messaging, what, method, *args, **kwargs) -> None:
    """Like ``_call`` for the endpoints that answer with no body (the SDK returns None)."""
    try:
        method(*args, **kwargs)
    except telnyx.APIError as exc:
        raise _fail(messaging, _error_message(exc, what), transient=_transient(exc)) from exc


def help_text_has_phone(text: str) -> bool:
    """True when ``text`` carries a phone number (``embeddedPhone`` must then be declared)."""
    return any(True for _ in phonenumbers.PhoneNumberMatcher(text or "", "US"))


def campaign_samples(clinic: Clinic) -> list[str]:
    """Three sample messages for the campaign, as the clinic's texts really read (each ends with the STOP line)."""
    name = clinic.name
    return [
        f"{name}: Hi Jordan, sorry we missed your call! We have Botox openings Tue at 2:30pm or Thu at 11am. "
        "Which works for you? Reply STOP to opt out.",
        f"{name}: Thu, May 8 at 11:00am with Dr. Smith is held for you. To confirm, pay the $50 deposit here: "
        "https://square.link/u/AbC123 Reply STOP to opt out.",
        f"{name}: Botox is $12 a unit and most visits use 20-30 units. Want us to hold a time this week? "
        "Reply STOP to opt out.",
    ]


def campaign_usecase(messaging: ClinicMessaging) -> str:
    """SOLE_PROPRIETOR for a sole proprietor's brand (the only use case TCR gives it), else CUSTOMER_CARE."""
    return SOLE_PROPRIETOR_USECASE if messaging.entity_type == ENTITY.SOLE_PROPRIETOR else CAMPAIGN_USECASE


def campaign_builder_fields(clinic: Clinic) -> dict:
    """The campaignBuilder fields (SDK keyword names) describing how this clinic texts patients."""

    name = clinic.name
    form = f"the appointment request form on {clinic.website}" if clinic.website else "its website request form"
    sample1, sample2, sample3 = campaign_samples(clinic)
    help_message = clinic.render_help()
    messaging = _messaging(clinic)
    return {
        "usecase": campaign_usecase(messaging),
        "description": (
            f"{name} is a medical spa. It texts patients who contacted the clinic first (a call, a text or the "
            "website form) to answer their questions about treatments, prices and opening hours, to schedule, "
            "confirm and remind them of appointments, and to send deposit requests for those appointments. "
            "No marketing or promotional messages."
        ),
        "message_flow": (
            f"Patients start the conversation: they text {name}'s number, call it (a caller the clinic could not "
            f"answer gets one text offering help), or submit {form}, which has an unchecked, optional checkbox "
            f'reading "{consent_wording(clinic)}" Texts go only to patients who did one of these.'
        ),
        "sample1": sample1,
        "sample2": sample2,
        "sample3": sample3,
        "subscriber_optin": True,
        "subscriber_optout": True,
        "subscriber_help": True,
        "optin_keywords": OPTIN_KEYWORDS,
        "optout_keywords": OPTOUT_KEYWORDS,
        "help_keywords": HELP_KEYWORDS,
        # The very confirmations messaging/services.py sends.
        "optin_message": confirmation_texts(clinic)["opt_in"],
        "optout_message": confirmation_texts(clinic)["opt_out"],
        "help_message": help_message,
        # Deposit requests carry a payment link (Square), so the campaign declares embedded links; the HELP answer
        # usually carries the front desk's number, and a campaign must declare a phone number in its messages.
        "embedded_link": True,
        "embedded_phone": help_text_has_phone(help_message),
        "number_pool": False,
        "age_gated": False,
    }


def campaign_register(*, clinic: Clinic) -> ClinicMessaging:
    """Submit the clinic's 10DLC campaign on its brand, once that brand is OK and VERIFIED.

    Telnyx refuses a campaign on a brand in pending or failed status, and a sole proprietor's until its PIN is
    verified, so those are refused here before any call. Idempotent: with a ``campaign_id`` stored, no call is made.
    """
    messaging = _messaging(clinic)
    if messaging.campaign_id:
        return messaging
    if not messaging.brand_id:
        raise _fail(messaging, "Cannot register the 10DLC campaign: register the brand first.")
    if messaging.brand_status == BRAND_FAILED:
        raise _fail(messaging, "Cannot register the 10DLC campaign: the brand's registration failed at Telnyx.")
    if not brand_verified(messaging):
        waiting = (
            "the owner's verification PIN"
            if messaging.entity_type == ENTITY.SOLE_PROPRIETOR and messaging.brand_status == BRAND_OK
            else "The Campaign Registry to verify the brand"
        )
        raise _fail(
            messaging,
            f"Cannot register the 10DLC campaign yet: waiting for {waiting} (brand status "
            f"{messaging.brand_status or 'unknown'}, identity {messaging.brand_identity_status or 'unknown'}).",
        )
    client = _client(messaging)
    answer = _call(
        messaging,
        "the 10DLC campaign registration",
        client.messaging_10dlc.campaign_builder.submit,
        brand_id=messaging.brand_id,
        **campaign_builder_fields(clinic),
    )
    campaign = _body(answer)
    if not campaign.get("campaignId"):
        raise _fail(messaging, "Telnyx answered the campaign registration without a campaignId; check the portal.")
    messaging.campaign_id = str(campaign["campaignId"])
    ClinicMessaging.objects.filter(pk=messaging.pk).update(campaign_id=messaging.campaign_id)
    messaging.campaign_status = str(campaign.get("campaignStatus") or campaign.get("submissionStatus") or "")[:40]
    logger.info("10dlc campaign submitted clinic=%s campaign=%s", clinic.slug, messaging.campaign_id)
    return _saved(messaging, "campaign_id", "campaign_status")


def _on_campaign(clinic: Clinic):
    return PhoneNumber.objects.for_clinic(clinic).filter(
        campaign_status__in=[PhoneNumber.CampaignStatus.PENDING, PhoneNumber.CampaignStatus.ASSIGNED]
    )


def number_assign_campaign(*, phone_number: PhoneNumber) -> PhoneNumber:
    """Put ``phone_number`` on its clinic's 10DLC campaign (PENDING until the carriers accept it, then ASSIGNED).

    Only an ACTIVE number (its order complete) is assigned; a sole proprietor's campaign takes one number.
    Idempotent: a number already pending or assigned is returned unchanged without a call.
    """
    messaging = _messaging(phone_number.clinic)
    if phone_number.campaign_status in (PhoneNumber.CampaignStatus.PENDING, PhoneNumber.CampaignStatus.ASSIGNED):
        return phone_number
    if not messaging.campaign_id:
        raise _fail(messaging, f"Cannot assign {phone_number.number}: register the 10DLC campaign first.")
    if phone_number.status == PhoneNumber.Status.RELEASED:
        raise _fail(messaging, f"Cannot assign {phone_number.number}: the number was released.")
    if phone_number.status != PhoneNumber.Status.ACTIVE:
        raise _fail(
            messaging,
            f"Cannot assign {phone_number.number} yet: its order is {phone_number.order_status or 'not complete'}; "
            "it is assigned once the number is active.",
        )
    if messaging.campaign_status in CAMPAIGN_DEAD:
        raise _fail(messaging, f"Cannot assign {phone_number.number}: the campaign is {messaging.campaign_status}.")
    if messaging.entity_type == ENTITY.SOLE_PROPRIETOR and _on_campaign(phone_number.clinic).exists():
        raise _fail(messaging, f"Cannot assign {phone_number.number}: a sole proprietor's campaign takes one number.")
    client = _client(messaging)
    answer = _body(
        _call(
            messaging,
            f"the campaign assignment of {phone_number.number}",
            client.messaging_10dlc.phone_number_campaigns.create,
            phone_number=phone_number.number,
            campaign_id=messaging.campaign_id,
        )
    )
    status = ASSIGNMENT_STATUSES.get(str(answer.get("assignmentStatus") or ""), PhoneNumber.CampaignStatus.PENDING)
    phone_number.campaign_status = status
    phone_number.save(update_fields=["campaign_status", "updated_at"])
    if status == PhoneNumber.CampaignStatus.FAILED:
        reason = answer.get("failureReasons") or "no reason given"
        raise _fail(messaging, f"Telnyx could not assign {phone_number.number} to the campaign: {reason}")
    _saved(messaging)
    logger.info("10dlc number assignment clinic=%s number_id=%s", phone_number.clinic.slug, phone_number.pk)
    return phone_number


def tendlc_done(messaging: ClinicMessaging) -> bool:
    """The campaign is active at the carriers and every active number is on it."""
    if messaging.campaign_status != CAMPAIGN_ACTIVE:
        return False
    numbers = PhoneNumber.objects.for_clinic(messaging.clinic).filter(
        provider=Provider.TELNYX, status=PhoneNumber.Status.ACTIVE
    )
    assigned = numbers.filter(campaign_status=PhoneNumber.CampaignStatus.ASSIGNED)
    if messaging.entity_type == ENTITY.SOLE_PROPRIETOR:
        return assigned.exists()
    return numbers.exists() and not numbers.exclude(campaign_status=PhoneNumber.CampaignStatus.ASSIGNED).exists()


def tendlc_state(messaging: ClinicMessaging) -> str:
    """Where the registration stands, in staff's words: what it waits for, or that it is done."""
    if not messaging.brand_id:
        missing = brand_missing_fields(messaging)
        return f"Needs: {', '.join(missing)}." if missing else "Ready to register the brand."
    if messaging.brand_status == BRAND_FAILED:
        return "The brand's registration failed; see the last error."
    if not brand_verified(messaging):
        if messaging.entity_type == ENTITY.SOLE_PROPRIETOR and messaging.brand_status == BRAND_OK:
            return "Waiting for the owner's verification PIN (texted to their mobile)."
        return "Waiting for The Campaign Registry to verify the brand."
    if not messaging.campaign_id:
        return "Brand verified; the campaign is submitted at the next step."
    if messaging.campaign_status in CAMPAIGN_DEAD:
        return f"The campaign is {messaging.campaign_status}; see the last error."
    if tendlc_done(messaging):
        return "Active: the campaign is provisioned and its numbers are assigned."
    numbers = PhoneNumber.objects.for_clinic(messaging.clinic).filter(provider=Provider.TELNYX)
    active = numbers.filter(status=PhoneNumber.Status.ACTIVE)
    on = active.filter(campaign_status=PhoneNumber.CampaignStatus.ASSIGNED).count()
    waiting = numbers.filter(status=PhoneNumber.Status.PENDING).count()
    text = f"Campaign {messaging.campaign_status or 'submitted'}; {on} of {active.count()} active number(s) assigned"
    return text + (f", {waiting} number order(s) pending." if waiting else ".")


def tendlc_advance(*, clinic: Clinic) -> ClinicMessaging:
    """Take every 10DLC step that is due now, in order; the ones that must wait for Telnyx wait for the next run.

    Register the brand (refused early when data is missing), read its status, have a sole proprietor's PIN texted
    once, submit the campaign once the brand is verified, assign each active number, and read the statuses back
    (``provisioning_refresh``). Safe to call again at any point.
    """
    messaging = brand_register(clinic=clinic)
    messaging = provisioning_refresh(clinic=clinic)
    if messaging.brand_status == BRAND_FAILED:
        return messaging
    if (
        messaging.entity_type == ENTITY.SOLE_PROPRIETOR
        and messaging.brand_status == BRAND_OK
        and not brand_verified(messaging)
        and not messaging.otp_reference_id
    ):
        return brand_otp_trigger(clinic=clinic)
    if not brand_verified(messaging):
        return messaging
    messaging = campaign_register(clinic=clinic)
    if messaging.campaign_status in CAMPAIGN_DEAD:
        return messaging
    numbers = PhoneNumber.objects.for_clinic(clinic).filter(
        provider=Provider.TELNYX,
        status=PhoneNumber.Status.ACTIVE,
        campaign_status__in=[PhoneNumber.CampaignStatus.NONE, PhoneNumber.CampaignStatus.FAILED],
    )
    for phone in numbers.order_by("-is_default", "pk"):
        if messaging.entity_type == ENTITY.SOLE_PROPRIETOR and _on_campaign(clinic).exists():
            break
        number_assign_campaign(phone_number=phone)
    return provisioning_refresh(clinic=clinic)


def tendlc_in_progress():
    """The registrations the periodic refresh looks after: a brand stored, neither it nor its campaign failed."""
    return (
        ClinicMessaging.objects.exclude(brand_id="")
        .exclude(brand_status=BRAND_FAILED)
        .exclude(campaign_status__in=CAMPAIGN_DEAD)
        .select_related("clinic")
    )


def tendlc_refresh_due(*, now) -> dict:
    """Beat: advance each registration in progress whose retry time has come. A failure backs off (5 min, doubling,
    at most 6 h) and is surfaced to the clinic's staff; a success clears the count."""
    outcome = {"advanced": 0, "done": 0, "failed": 0}
    due = tendlc_in_progress().filter(models.Q(tendlc_retry_at__isnull=True) | models.Q(tendlc_retry_at__lte=now))
    for messaging in due:
        if tendlc_done(messaging):
            outcome["done"] += 1
            continue
        try:
            messaging = tendlc_advance(clinic=messaging.clinic)
        except ProvisioningError as exc:
            _back_off(messaging, exc, now=now)
            outcome["failed"] += 1
            continue
        if messaging.tendlc_failures or messaging.tendlc_retry_at:
            ClinicMessaging.objects.filter(pk=messaging.pk).update(tendlc_failures=0, tendlc_retry_at=None)
        if messaging.last_error:  # Telnyx reported a failed brand or assignment
            _alert(messaging, messaging.last_error)
        outcome["advanced"] += 1
    return outcome


RETRY_FIRST = timedelta(minutes=5)
RETRY_MAX = timedelta(hours=6)


def _back_off(messaging: ClinicMessaging, exc: ProvisioningError, *, now) -> None:
    failures = messaging.tendlc_failures + 1
    delay = min(RETRY_FIRST * 2 ** (failures - 1), RETRY_MAX)
    ClinicMessaging.objects.filter(pk=messaging.pk).update(tendlc_failures=failures, tendlc_retry_at=now + delay)
    logger.warning(
        "10dlc refresh failed clinic=%s failures=%s retry_in=%ss",
        messaging.clinic.slug,
        failures,
        int(delay.total_seconds()),
    )
    # A refusal (bad data, a step Telnyx will not take) needs a person now; an outage only once it has lasted a few
    # tries (the backoff retries it meanwhile).
    if not exc.transient or failures >= 3:
        _alert(messaging, exc.message)


def _alert(messaging: ClinicMessaging, message: str) -> None:
    digest = hashlib.sha256(message.encode()).hexdigest()[:16]
    staff_alert(
        clinic=messaging.clinic,
        kind=StaffAlert.Kind.WEBHOOK,
        text=f"10DLC registration needs attention (sender registration #{messaging.pk}): {message}"[:300],
        obj=messaging,
        dedupe_key=f"tendlc:{messaging.pk}:{digest}",
    )


# --- Refresh -----------------------------------------------------------------------------------------------------


def provisioning_refresh(*, clinic: Clinic) -> ClinicMessaging:
    """Ask Telnyx for the current statuses and store them: the brand, the campaign, each pending number order and
    each number's campaign assignment. Failures Telnyx reports (a failed brand or assignment) become ``last_error``;
    a failed call stores what was already learned, then raises."""
    messaging = _messaging(clinic)
    client = _client(messaging)
    problems = []
    if messaging.brand_id:
        brand = _refresh_brand(messaging, client)
        if messaging.brand_status == BRAND_FAILED:
            problems.append(f"Brand registration failed: {brand.get('failureReasons') or 'no reason given'}")
    if messaging.campaign_id:
        campaign = _body(
            _call(messaging, "the campaign status", client.messaging_10dlc.campaign.retrieve, messaging.campaign_id)
        )
        messaging.campaign_status = str(campaign.get("campaignStatus") or messaging.campaign_status)[:40]
        messaging.save(update_fields=["campaign_status", "updated_at"])
        if messaging.campaign_status in CAMPAIGN_DEAD:
            reason = campaign.get("failureReasons") or "no reason given"
            problems.append(f"Campaign {messaging.campaign_id} is {messaging.campaign_status}: {reason}")
    numbers = PhoneNumber.objects.for_clinic(clinic).filter(provider=Provider.TELNYX)
    for phone in numbers.exclude(status=PhoneNumber.Status.RELEASED):
        if phone.status == PhoneNumber.Status.PENDING and phone.order_id:
            _refresh_order(messaging, client, phone)
        if phone.campaign_status in (PhoneNumber.CampaignStatus.PENDING, PhoneNumber.CampaignStatus.ASSIGNED):
            problem = _refresh_assignment(messaging, client, phone)
            if problem:
                problems.append(problem)
    messaging.last_error = "\n".join(problems)
    messaging.save(update_fields=["last_error", "updated_at"])
    logger.info("telnyx provisioning refreshed clinic=%s", clinic.slug)
    return messaging


def _refresh_brand(messaging: ClinicMessaging, client: telnyx.Telnyx) -> dict:
    brand = _body(_call(messaging, "the brand status", client.messaging_10dlc.brand.retrieve, messaging.brand_id))
    messaging.brand_status = str(brand.get("status") or messaging.brand_status)[:40]
    messaging.brand_identity_status = str(brand.get("identityStatus") or messaging.brand_identity_status)[:40]
    messaging.save(update_fields=["brand_status", "brand_identity_status", "updated_at"])
    return brand


def _refresh_order(messaging: ClinicMessaging, client: telnyx.Telnyx, phone: PhoneNumber) -> None:
    if phone.hosted:
        what, method, success = "the hosted order", client.messaging_hosted_number_orders.retrieve, HOSTED_ORDER_SUCCESS
    else:
        what, method, success = "the number order", client.number_orders.retrieve, ORDER_SUCCESS
    order = _data(_call(messaging, f"{what} of {phone.number}", method, phone.order_id))
    phone.order_status = str(order.get("status") or phone.order_status)[:40]
    if phone.order_status == success:
        phone.status = PhoneNumber.Status.ACTIVE
    phone.save(update_fields=["order_status", "status", "updated_at"])


def _refresh_assignment(messaging: ClinicMessaging, client: telnyx.Telnyx, phone: PhoneNumber) -> str:
    answer = _body(
        _call(
            messaging,
            f"the campaign assignment of {phone.number}",
            client.messaging_10dlc.phone_number_campaigns.retrieve,
            phone.number,
        )
    )
    status = ASSIGNMENT_STATUSES.get(str(answer.get("assignmentStatus") or ""))
    if status is None:
        return ""
    phone.campaign_status = status
    phone.save(update_fields=["campaign_status", "updated_at"])
    if status == PhoneNumber.CampaignStatus.FAILED:
        return f"{phone.number} could not be assigned to the campaign: {answer.get('failureReasons') or 'no reason'}"
    return ""
