"""Number provisioning and 10DLC registration at Telnyx.

One messaging profile per clinic (a STOP blocks every number on a profile), numbers ordered or hosted onto it, and
the clinic's 10DLC brand and campaign with its numbers assigned. Plain service functions for the admin, management
commands and tasks to call. Each one stores what Telnyx answered; on any failure it stores a readable message in
``ClinicMessaging.last_error`` (where there is a clinic) and raises ``ProvisioningError`` with that message.

Calls go through the official SDK (``telnyx`` 4.x) with retries off: an order or a registration repeated after a
timeout could be placed twice, so a failed call is reported and a person decides. The number search is the one
call made through the SDK client's generic ``get``: the SDK's ``available_phone_numbers.list`` encodes the
features filter as ``filter[features]=sms`` while the documented form is ``filter[features][]=sms``.

Logs carry clinic slugs, ids and Telnyx messages only; provisioning touches no patient data.
"""

import logging
import re
from collections.abc import Callable
from typing import Any

import telnyx
from django.conf import settings

from medspa.models import Clinic

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

# Telnyx brand statuses (TCR): OK, REGISTRATION_PENDING, REGISTRATION_FAILED.
BRAND_FAILED = "REGISTRATION_FAILED"

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

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


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


def _fail(messaging: ClinicMessaging | None, message: str) -> ProvisioningError:
    """Store ``message`` as the clinic's last provisioning error and return the exception to raise."""
    if messaging is not None:
        messaging.last_error = message
        messaging.save(update_fields=["last_error", "updated_at"])
        logger.warning("telnyx provisioning failed clinic=%s: %s", messaging.clinic.slug, message)
    else:
        logger.warning("telnyx provisioning failed: %s", message)
    return ProvisioningError(message)


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


def _call(messaging: ClinicMessaging | None, what: str, method: Callable[..., Any], *args, **kwargs) -> dict:
    """Call the SDK; return its answer as the JSON object Telnyx sent (API field names) or raise ProvisioningError."""
    try:
        result = method(*args, **kwargs)
    except telnyx.APIError as exc:
        raise _fail(messaging, _error_message(exc, what)) from exc
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


def brand_register(*, clinic: Clinic) -> ClinicMessaging:
    """Register the clinic as a 10DLC brand (vertical HEALTHCARE) from its ClinicMessaging and address fields.

    Needs the legal name and a contact email, and the EIN unless the clinic is a sole proprietor (The Campaign
    Registry asks companies for their tax id). Idempotent: with a ``brand_id`` stored, no call is made.
    """
    messaging = _messaging(clinic)
    if messaging.brand_id:
        return messaging
    missing = [
        label
        for label, value in (
            ("legal name", messaging.legal_name),
            ("contact email", messaging.contact_email),
            ("EIN", messaging.ein or messaging.entity_type == ClinicMessaging.EntityType.SOLE_PROPRIETOR),
        )
        if not value
    ]
    if missing:
        raise _fail(messaging, f"Cannot register the 10DLC brand: fill in {', '.join(missing)}.")
    client = _client(messaging)
    optional = {
        "company_name": messaging.legal_name,
        "ein": messaging.ein,
        "phone": clinic.front_desk_phone,
        "street": clinic.street,
        "city": clinic.city,
        "state": clinic.state,
        "postal_code": clinic.postal_code,
        "website": clinic.website,
    }
    answer = _call(
        messaging,
        "the 10DLC brand registration",
        client.messaging_10dlc.brand.create,
        country="US",
        display_name=clinic.name,
        email=messaging.contact_email,
        entity_type=messaging.entity_type,
        vertical="HEALTHCARE",
        **{key: value for key, value in optional.items() if value},
    )
    if not answer.get("brandId"):
        raise _fail(messaging, "Telnyx answered the brand registration without a brandId; check the portal.")
    messaging.brand_id = str(answer["brandId"])
    messaging.brand_status = str(answer.get("status") or "")[:40]
    logger.info("10dlc brand registered clinic=%s brand=%s", clinic.slug, messaging.brand_id)
    return _saved(messaging, "brand_id", "brand_status")


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


def campaign_builder_fields(clinic: Clinic) -> dict:
    """The campaignBuilder fields (SDK keyword names) describing how this clinic texts patients."""

    name = clinic.name
    form = f"the appointment request form on {clinic.website}" if clinic.website else "its website request form"
    sample1, sample2, sample3 = campaign_samples(clinic)
    return {
        "usecase": CAMPAIGN_USECASE,
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
        "help_message": clinic.render_help(),
        # Deposit requests carry a payment link (Square), so the campaign declares embedded links.
        "embedded_link": True,
        "number_pool": False,
        "age_gated": False,
    }


def campaign_register(*, clinic: Clinic) -> ClinicMessaging:
    """Submit the clinic's 10DLC campaign (use case CUSTOMER_CARE) on its registered brand.

    Needs a brand that has not failed registration. Idempotent: with a ``campaign_id`` stored, no call is made.
    """
    messaging = _messaging(clinic)
    if messaging.campaign_id:
        return messaging
    if not messaging.brand_id:
        raise _fail(messaging, "Cannot register the 10DLC campaign: register the brand first.")
    if messaging.brand_status == BRAND_FAILED:
        raise _fail(messaging, "Cannot register the 10DLC campaign: the brand's registration failed at Telnyx.")
    client = _client(messaging)
    answer = _call(
        messaging,
        "the 10DLC campaign registration",
        client.messaging_10dlc.campaign_builder.submit,
        brand_id=messaging.brand_id,
        **campaign_builder_fields(clinic),
    )
    if not answer.get("campaignId"):
        raise _fail(messaging, "Telnyx answered the campaign registration without a campaignId; check the portal.")
    messaging.campaign_id = str(answer["campaignId"])
    messaging.campaign_status = str(answer.get("campaignStatus") or answer.get("submissionStatus") or "")[:40]
    logger.info("10dlc campaign submitted clinic=%s campaign=%s", clinic.slug, messaging.campaign_id)
    return _saved(messaging, "campaign_id", "campaign_status")


def number_assign_campaign(*, phone_number: PhoneNumber) -> PhoneNumber:
    """Put ``phone_number`` on its clinic's 10DLC campaign (PENDING until the carriers accept it, then ASSIGNED).

    Idempotent: a number already pending or assigned is returned unchanged without a call.
    """
    messaging = _messaging(phone_number.clinic)
    if phone_number.campaign_status in (PhoneNumber.CampaignStatus.PENDING, PhoneNumber.CampaignStatus.ASSIGNED):
        return phone_number
    if not messaging.campaign_id:
        raise _fail(messaging, f"Cannot assign {phone_number.number}: register the 10DLC campaign first.")
    if phone_number.status == PhoneNumber.Status.RELEASED:
        raise _fail(messaging, f"Cannot assign {phone_number.number}: the number was released.")
    client = _client(messaging)
    answer = _call(
        messaging,
        f"the campaign assignment of {phone_number.number}",
        client.messaging_10dlc.phone_number_campaigns.create,
        phone_number=phone_number.number,
        campaign_id=messaging.campaign_id,
    )
    status = ASSIGNMENT_STATUSES.get(str(answer.get("assignmentStatus") or ""), PhoneNumber.CampaignStatus.PENDING)
    if status == PhoneNumber.CampaignStatus.FAILED:
        phone_number.campaign_status = status
        phone_number.save(update_fields=["campaign_status", "updated_at"])
        reason = answer.get("failureReasons") or "no reason given"
        raise _fail(messaging, f"Telnyx could not assign {phone_number.number} to the campaign: {reason}")
    phone_number.campaign_status = status
    phone_number.save(update_fields=["campaign_status", "updated_at"])
    _saved(messaging)
    logger.info("10dlc number assignment clinic=%s number_id=%s", phone_number.clinic.slug, phone_number.pk)
    return phone_number


# --- Refresh -----------------------------------------------------------------------------------------------------


def provisioning_refresh(*, clinic: Clinic) -> ClinicMessaging:
    """Ask Telnyx for the current statuses and store them: the brand, the campaign, each pending number order and
    each number's campaign assignment. Failures Telnyx reports (a failed brand or assignment) become ``last_error``;
    a failed call stores what was already learned, then raises."""
    messaging = _messaging(clinic)
    client = _client(messaging)
    problems = []
    if messaging.brand_id:
        brand = _call(messaging, "the brand status", client.messaging_10dlc.brand.retrieve, messaging.brand_id)
        messaging.brand_status = str(brand.get("status") or messaging.brand_status)[:40]
        messaging.save(update_fields=["brand_status", "updated_at"])
        if messaging.brand_status == BRAND_FAILED:
            problems.append(f"Brand registration failed: {brand.get('failureReasons') or 'no reason given'}")
    if messaging.campaign_id:
        campaign = _call(
            messaging, "the campaign status", client.messaging_10dlc.campaign.retrieve, messaging.campaign_id
        )
        messaging.campaign_status = str(campaign.get("campaignStatus") or messaging.campaign_status)[:40]
        messaging.save(update_fields=["campaign_status", "updated_at"])
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
    answer = _call(
        messaging,
        f"the campaign assignment of {phone.number}",
        client.messaging_10dlc.phone_number_campaigns.retrieve,
        phone.number,
    )
    status = ASSIGNMENT_STATUSES.get(str(answer.get("assignmentStatus") or ""))
    if status is None:
        return ""
    phone.campaign_status = status
    phone.save(update_fields=["campaign_status", "updated_at"])
    if status == PhoneNumber.CampaignStatus.FAILED:
        return f"{phone.number} could not be assigned to the campaign: {answer.get('failureReasons') or 'no reason'}"
    return ""
