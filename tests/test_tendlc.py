"""10DLC as a state machine that follows Telnyx (issue 18, mismatch 8), walked on the rebuilt fake Telnyx
(tests/fakes/telnyx_numbers.py; the shapes and refusals and their sources: tests/data/providers/SOURCES.md,
"Telnyx 10DLC fake"). Each walk goes from nothing to an active campaign with its number assigned, one
``tendlc_advance`` (what the periodic task runs) per wait at Telnyx."""

import contextlib
from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from medspa.models import Clinic, StaffAlert
from messaging import provisioning
from messaging.models import ClinicMessaging, PhoneNumber
from messaging.provisioning import ProvisioningError
from messaging.tasks import tendlc_refresh

pytest_plugins = ["tests.fakes.telnyx_numbers"]  # the fake_telnyx fixture
pytestmark = pytest.mark.django_db

NOON = datetime(2026, 3, 10, 17, 0, tzinfo=UTC)  # noon in Miami


@pytest.fixture
def clinic():
    return Clinic.objects.create(
        slug="glow-305",
        name="Glow Med Spa",
        timezone="America/New_York",
        street="100 Ocean Dr",
        city="Miami",
        state="FL",
        postal_code="33139",
        front_desk_phone="+13055550199",
        website="https://glow.example.com",
        help_message="{clinic}: call us at (305) 555-0199 or visit {website}. Reply STOP to opt out.",
    )


COMPANY = {"legal_name": "Glow Aesthetics LLC", "ein": "12-3456789", "contact_email": "owner@glow.example.com"}
PUBLIC = {
    **COMPANY,
    "entity_type": ClinicMessaging.EntityType.PUBLIC_PROFIT,
    "stock_symbol": "GLOW",
    "stock_exchange": "NASDAQ",
    "business_contact_email": "ir@glow.example.com",
}
SOLE = {
    "entity_type": ClinicMessaging.EntityType.SOLE_PROPRIETOR,
    "first_name": "Jane",
    "last_name": "Doe",
    "mobile_phone": "+13055550177",
    "contact_email": "jane@glow.example.com",
}


def _number(clinic, fake, number="+13055550101"):
    """A number ordered at the fake, its order complete (active)."""
    fake.number_order_status = "success"
    return provisioning.number_order(clinic=clinic, phone_number=number)


def _walk_to_active(clinic, fake, *, sole=False):
    messaging = provisioning.tendlc_advance(clinic=clinic)  # brand registered, pending at TCR
    assert messaging.brand_status == "REGISTRATION_PENDING"
    assert not messaging.campaign_id  # never submitted on a pending brand
    assert fake.calls("POST", "/10dlc/campaignBuilder") == []

    fake.brand_verify(messaging.brand_id)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    if sole:  # brand OK, identity waits for the owner's PIN: the PIN is texted, once
        assert messaging.brand_identity_status == "UNVERIFIED"
        assert not messaging.campaign_id
        assert len(fake.calls("POST", f"/10dlc/brand/{messaging.brand_id}/smsOtp")) == 1
        assert provisioning.tendlc_advance(clinic=clinic).otp_reference_id == messaging.otp_reference_id
        assert len(fake.calls("POST", f"/10dlc/brand/{messaging.brand_id}/smsOtp")) == 1
        messaging = provisioning.brand_otp_verify(clinic=clinic, pin=fake.otp_pin)
        assert messaging.brand_identity_status == "VERIFIED"
        messaging = provisioning.tendlc_advance(clinic=clinic)
    assert messaging.campaign_id
    assert messaging.campaign_status == "TCR_PENDING"
    [phone] = PhoneNumber.objects.filter(clinic=clinic, campaign_status=PhoneNumber.CampaignStatus.PENDING)

    fake.campaign_provision(messaging.campaign_id)
    fake.assignment_settle(phone.number)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    phone.refresh_from_db()
    assert messaging.campaign_status == "MNO_PROVISIONED"
    assert phone.campaign_status == PhoneNumber.CampaignStatus.ASSIGNED
    assert provisioning.tendlc_done(messaging)
    assert messaging.last_error == ""
    assert len(fake.calls("POST", "/10dlc/brand")) == 1
    assert len(fake.calls("POST", "/10dlc/campaignBuilder")) == 1
    return messaging, phone


def test_private_company_walk(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    _number(clinic, fake_telnyx)
    _walk_to_active(clinic, fake_telnyx)
    sent = fake_telnyx.calls("POST", "/10dlc/brand")[0].json
    assert sent["entityType"] == "PRIVATE_PROFIT"
    for key in ("companyName", "ein", "phone", "street", "city", "state", "postalCode", "website"):
        assert sent[key]
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder")[0].json["usecase"] == "CUSTOMER_CARE"


def test_public_company_walk(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **PUBLIC)
    _number(clinic, fake_telnyx)
    _walk_to_active(clinic, fake_telnyx)
    sent = fake_telnyx.calls("POST", "/10dlc/brand")[0].json
    assert (sent["stockSymbol"], sent["stockExchange"], sent["businessContactEmail"]) == (
        "GLOW",
        "NASDAQ",
        "ir@glow.example.com",
    )


def test_sole_proprietor_walk_with_otp_and_one_number(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **SOLE)
    _number(clinic, fake_telnyx, "+13055550101")
    _number(clinic, fake_telnyx, "+13055550102")
    messaging, phone = _walk_to_active(clinic, fake_telnyx, sole=True)

    sent = fake_telnyx.calls("POST", "/10dlc/brand")[0].json
    assert (sent["firstName"], sent["lastName"], sent["mobilePhone"]) == ("Jane", "Doe", "+13055550177")
    assert "ein" not in sent and "companyName" not in sent
    otp = fake_telnyx.calls("POST", f"/10dlc/brand/{messaging.brand_id}/smsOtp")[0].json
    assert "@OTP_PIN@" in otp["pinSms"] and otp["successSms"]
    assert fake_telnyx.calls("PUT", f"/10dlc/brand/{messaging.brand_id}/smsOtp")[0].json == {"otpPin": "123456"}
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder")[0].json["usecase"] == "SOLE_PROPRIETOR"
    # One number on a sole proprietor's campaign: the second is never sent.
    assert [c.json["phoneNumber"] for c in fake_telnyx.calls("POST", "/10dlc/phone_number_campaigns")] == [phone.number]
    other = PhoneNumber.objects.get(number="+13055550102")
    with pytest.raises(ProvisioningError, match="one number"):
        provisioning.number_assign_campaign(phone_number=other)


def test_a_wrong_pin_is_refused_and_nothing_moves(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **SOLE)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    provisioning.tendlc_advance(clinic=clinic)
    with pytest.raises(ProvisioningError, match="OTP pin is invalid"):
        provisioning.brand_otp_verify(clinic=clinic, pin="000000")
    with pytest.raises(ValueError):
        provisioning.brand_otp_verify(clinic=clinic, pin="12a")
    assert ClinicMessaging.objects.get(clinic=clinic).brand_identity_status == "UNVERIFIED"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (
            {"legal_name": "Glow Aesthetics LLC", "ein": "12-3456789", "contact_email": "o@glow.example.com"},
            ["website", "street", "postal code"],
        ),
        ({**PUBLIC, "stock_symbol": "", "business_contact_email": ""}, ["stock symbol", "business contact email"]),
        ({**SOLE, "first_name": "", "mobile_phone": ""}, ["owner's first name", "owner's mobile phone"]),
    ],
    ids=["private", "public", "sole-proprietor"],
)
def test_short_data_is_refused_early_naming_the_fields(data, named, fake_telnyx):
    bare = Clinic.objects.create(slug="bare", name="Bare Spa", timezone="America/New_York")
    if data.get("entity_type") != ClinicMessaging.EntityType.PRIVATE_PROFIT and "entity_type" in data:
        Clinic.objects.filter(pk=bare.pk).update(
            street="1 Main St", city="Miami", state="FL", postal_code="33139", front_desk_phone="+13055550100"
        )
        bare.refresh_from_db()
    messaging = ClinicMessaging.objects.create(clinic=bare, **data)
    with pytest.raises(ProvisioningError) as error:
        provisioning.tendlc_advance(clinic=bare)
    for label in named:
        assert label in error.value.message
    assert provisioning.brand_missing_fields(messaging) and fake_telnyx.requests == []


def test_the_fake_refuses_a_campaign_on_a_pending_brand(clinic, fake_telnyx):
    """Telnyx's refusal, which the old code met by submitting at once: the service now waits instead."""
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    with pytest.raises(ProvisioningError, match="waiting for The Campaign Registry"):
        provisioning.campaign_register(clinic=clinic)
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder") == []
    # Told it is verified when Telnyx still says pending (stale row): Telnyx's own words come back.
    ClinicMessaging.objects.filter(pk=messaging.pk).update(brand_status="OK", brand_identity_status="VERIFIED")
    with pytest.raises(ProvisioningError, match="Cannot associate campaign with brand in pending or failed status"):
        provisioning.campaign_register(clinic=clinic)
    assert ClinicMessaging.objects.get(pk=messaging.pk).campaign_id == ""


def test_a_pending_number_is_not_assigned(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    phone = provisioning.number_order(clinic=clinic, phone_number="+13055550101")  # order pending
    messaging = provisioning.tendlc_advance(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    assert messaging.campaign_id
    assert fake_telnyx.calls("POST", "/10dlc/phone_number_campaigns") == []
    with pytest.raises(ProvisioningError, match="assigned once the number is active"):
        provisioning.number_assign_campaign(phone_number=phone)

    fake_telnyx.orders[phone.order_id]["status"] = "success"  # the order completes
    provisioning.tendlc_advance(clinic=clinic)
    phone.refresh_from_db()
    assert (phone.status, phone.campaign_status) == (PhoneNumber.Status.ACTIVE, PhoneNumber.CampaignStatus.PENDING)


def test_embedded_phone_follows_the_help_text(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    assert provisioning.campaign_builder_fields(clinic)["embedded_phone"] is True
    clinic.help_message = "{clinic}: reply with your question and we will answer. Reply STOP to opt out."
    assert provisioning.campaign_builder_fields(clinic)["embedded_phone"] is False

    clinic.help_message = "{clinic}: call {phone}. Reply STOP to opt out."
    clinic.save()
    _number(clinic, fake_telnyx)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    provisioning.tendlc_advance(clinic=clinic)
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder")[0].json["embeddedPhone"] is True


def test_wrapped_answers_are_read(clinic, fake_telnyx):
    """Telnyx's guides read ``["data"]["brandId"]``: a wrapped answer is a brand, not "no brandId"."""
    fake_telnyx.wrap_10dlc = True
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    _number(clinic, fake_telnyx)
    _walk_to_active(clinic, fake_telnyx)


def test_a_retry_after_a_lost_answer_adopts_the_brand(clinic, fake_telnyx):
    """The brand was created but its answer never arrived (timeout): the retry finds it, and pays for no second."""
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    status, brand = fake_telnyx._brand_create(
        {
            "country": "US", "displayName": clinic.name, "email": COMPANY["contact_email"],
            "entityType": "PRIVATE_PROFIT", "vertical": "HEALTHCARE", "companyName": "Glow Aesthetics LLC",
            "ein": "12-3456789", "phone": "+13055550199", "street": "100 Ocean Dr", "city": "Miami", "state": "FL",
            "postalCode": "33139", "website": "https://glow.example.com",
        }
    )  # fmt: skip
    assert status == 200
    messaging = provisioning.brand_register(clinic=clinic)
    assert messaging.brand_id == brand["brandId"]
    assert fake_telnyx.calls("POST", "/10dlc/brand") == []
    assert len(fake_telnyx.brands) == 1


def test_the_brand_id_is_kept_when_a_later_step_fails(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    fake_telnyx.fail("GET", f"/10dlc/brand/{messaging.brand_id}", status=503, code="10007", title="Unavailable")
    with pytest.raises(ProvisioningError, match="HTTP 503") as error:
        provisioning.tendlc_advance(clinic=clinic)
    assert error.value.transient
    assert ClinicMessaging.objects.get(clinic=clinic).brand_id == messaging.brand_id
    provisioning.tendlc_advance(clinic=clinic)
    assert len(fake_telnyx.calls("POST", "/10dlc/brand")) == 1


def test_periodic_refresh_backs_off_and_tells_staff(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    _number(clinic, fake_telnyx)
    with time_machine.travel(NOON, tick=False):
        messaging = provisioning.brand_register(clinic=clinic)
        fake_telnyx.brand_verify(messaging.brand_id)
        fake_telnyx.fail("GET", f"/10dlc/brand/{messaging.brand_id}", status=503, title="Unavailable", times=3)
        assert tendlc_refresh() == {"advanced": 0, "done": 0, "failed": 1}
        messaging.refresh_from_db()
        assert (messaging.tendlc_failures, messaging.tendlc_retry_at) == (1, NOON + timedelta(minutes=5))
        assert not StaffAlert.objects.exists()  # one outage try: retried, not yet a person's problem
        assert tendlc_refresh() == {"advanced": 0, "done": 0, "failed": 0}  # not due yet
    for minutes, failures in ((5, 2), (15, 3)):
        with time_machine.travel(NOON + timedelta(minutes=minutes), tick=False):
            tendlc_refresh()
            messaging.refresh_from_db()
            assert messaging.tendlc_failures == failures
    [alert] = StaffAlert.objects.all()
    assert alert.clinic == clinic and "HTTP 503" in alert.text and alert.object_id == str(messaging.pk)
    assert messaging.tendlc_retry_at == NOON + timedelta(minutes=35)
    with time_machine.travel(NOON + timedelta(minutes=35), tick=False):
        assert tendlc_refresh()["advanced"] == 1
    messaging.refresh_from_db()
    assert (messaging.tendlc_failures, messaging.tendlc_retry_at, bool(messaging.campaign_id)) == (0, None, True)


def test_periodic_refresh_alerts_a_refusal_at_once(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    fake_telnyx.fail("POST", "/10dlc/campaignBuilder", status=400, title="Invalid campaign", detail="bad sample")
    with time_machine.travel(NOON, tick=False):
        assert tendlc_refresh()["failed"] == 1
    [alert] = StaffAlert.objects.all()
    assert "bad sample" in alert.text


def test_a_failed_brand_is_surfaced_and_left_alone(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id, status="REGISTRATION_FAILED", identity="UNVERIFIED", reasons="EIN")
    with time_machine.travel(NOON, tick=False):
        tendlc_refresh()
        assert "Brand registration failed: EIN" in StaffAlert.objects.get().text
        fake_telnyx.requests.clear()
        tendlc_refresh()  # no longer in progress: nothing asked again
    assert fake_telnyx.requests == []
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder") == []


# --- Mismatch 8, one test per part, through the functions that existed before the fix (each failed on that code) --


def _verified_brand(clinic, fake, **data):
    ClinicMessaging.objects.create(clinic=clinic, **data)
    messaging = provisioning.brand_register(clinic=clinic)
    fake.brand_verify(messaging.brand_id)
    if data.get("entity_type") == ClinicMessaging.EntityType.SOLE_PROPRIETOR:
        fake.brands[messaging.brand_id]["identityStatus"] = "VERIFIED"  # OTP done
    return provisioning.provisioning_refresh(clinic=clinic)


def test_mismatch_standard_brand_needs_address_phone_and_website(fake_telnyx):
    bare = Clinic.objects.create(slug="bare", name="Bare Spa", timezone="America/New_York")
    ClinicMessaging.objects.create(clinic=bare, **COMPANY)
    with pytest.raises(ProvisioningError, match="clinic phone, street, city, state, postal code, website"):
        provisioning.brand_register(clinic=bare)
    assert fake_telnyx.requests == []


def test_mismatch_public_company_sends_its_stock_fields(clinic, fake_telnyx):
    messaging = provisioning.brand_register(clinic=ClinicMessaging.objects.create(clinic=clinic, **PUBLIC).clinic)
    assert messaging.brand_id
    assert fake_telnyx.calls("POST", "/10dlc/brand")[0].json["stockExchange"] == "NASDAQ"


def test_mismatch_sole_proprietor_sends_owner_and_mobile(clinic, fake_telnyx):
    messaging = provisioning.brand_register(clinic=ClinicMessaging.objects.create(clinic=clinic, **SOLE).clinic)
    assert messaging.brand_id
    assert fake_telnyx.calls("POST", "/10dlc/brand")[0].json["mobilePhone"] == "+13055550177"


def test_mismatch_sole_proprietor_campaign_uses_its_usecase(clinic, fake_telnyx):
    _verified_brand(clinic, fake_telnyx, **SOLE)
    assert provisioning.campaign_register(clinic=clinic).campaign_id
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder")[0].json["usecase"] == "SOLE_PROPRIETOR"


def test_mismatch_no_campaign_while_the_brand_is_pending(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    provisioning.brand_register(clinic=clinic)
    with pytest.raises(ProvisioningError, match="waiting for"):
        provisioning.campaign_register(clinic=clinic)
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder") == []


def test_mismatch_no_assignment_while_the_order_is_pending(clinic, fake_telnyx):
    _verified_brand(clinic, fake_telnyx, **COMPANY)
    provisioning.campaign_register(clinic=clinic)
    phone = provisioning.number_order(clinic=clinic, phone_number="+13055550101")
    with pytest.raises(ProvisioningError, match="once the number is active"):
        provisioning.number_assign_campaign(phone_number=phone)
    assert fake_telnyx.calls("POST", "/10dlc/phone_number_campaigns") == []


def test_mismatch_embedded_phone_declared(clinic, fake_telnyx):
    _verified_brand(clinic, fake_telnyx, **COMPANY)
    assert provisioning.campaign_register(clinic=clinic).campaign_id
    assert fake_telnyx.calls("POST", "/10dlc/campaignBuilder")[0].json["embeddedPhone"] is True


def test_mismatch_wrapped_brand_answer(clinic, fake_telnyx):
    fake_telnyx.wrap_10dlc = True
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    assert messaging.brand_id in fake_telnyx.brands


def test_mismatch_a_retry_never_registers_a_second_brand(clinic, fake_telnyx):
    fake_telnyx.wrap_10dlc = True  # the answer the old code could not read: it stored nothing
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    with contextlib.suppress(ProvisioningError):
        provisioning.brand_register(clinic=clinic)
    ClinicMessaging.objects.filter(clinic=clinic).update(brand_id="")  # as if the answer had been lost
    provisioning.brand_register(clinic=clinic)
    assert len(fake_telnyx.brands) == 1


# --- The admin's brand form --------------------------------------------------------------------------------------


def _form_data(messaging, **changes):
    data = {
        "clinic": messaging.clinic_id,
        "entity_type": messaging.entity_type,
        "legal_name": messaging.legal_name,
        "ein": messaging.ein,
        "contact_email": messaging.contact_email,
        "stock_symbol": messaging.stock_symbol,
        "stock_exchange": messaging.stock_exchange,
        "business_contact_email": messaging.business_contact_email,
        "first_name": messaging.first_name,
        "last_name": messaging.last_name,
        "mobile_phone": messaging.mobile_phone,
        "otp_pin": "",
        "_continue": "Save",
    }
    return data | changes


def test_the_brand_form_says_what_is_missing(admin_client, clinic):
    messaging = ClinicMessaging.objects.create(clinic=clinic, entity_type=ClinicMessaging.EntityType.PUBLIC_PROFIT)
    url = f"/admin/messaging/clinicmessaging/{messaging.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "legal name, contact email, EIN, stock symbol, stock exchange, business contact email" in page
    assert 'name="stock_exchange"' in page and 'name="otp_pin"' not in page  # what a public company needs
    assert admin_client.get("/admin/messaging/clinicmessaging/add/").status_code == 200
    assert admin_client.get("/admin/messaging/clinicmessaging/").status_code == 200

    answer = admin_client.post(url, _form_data(messaging, legal_name="Glow Inc"), follow=True)
    assert "Still needed for the 10DLC brand" in answer.content.decode()
    assert ClinicMessaging.objects.get(pk=messaging.pk).legal_name == "Glow Inc"


def test_the_pin_entered_in_the_form_verifies_the_brand(admin_client, clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **SOLE)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    messaging = provisioning.tendlc_advance(clinic=clinic)  # PIN texted
    url = f"/admin/messaging/clinicmessaging/{messaging.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert "Verification PIN" in page and 'name="stock_exchange"' not in page and 'name="ein"' not in page

    answer = admin_client.post(url, _form_data(messaging, otp_pin="12x"))
    assert answer.status_code == 200 and "digits" in answer.content.decode()  # the form shows the error
    answer = admin_client.post(url, _form_data(messaging, otp_pin="123456"), follow=True)
    assert "PIN accepted" in answer.content.decode()
    assert ClinicMessaging.objects.get(pk=messaging.pk).brand_identity_status == "VERIFIED"


def test_the_refresh_is_on_beat_and_off_the_sending_queue(settings):
    from medspa.celery import app

    assert {"task": "messaging.tendlc_refresh", "schedule": 600.0} in settings.CELERY_BEAT_SCHEDULE.values()
    assert app.amqp.router.route({}, "messaging.tendlc_refresh")["queue"].name == "periodic"
    assert app.amqp.router.route({}, "messaging.send_message")["queue"].name == "sms"


def test_a_rejected_campaign_is_surfaced_and_left_alone(clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    messaging = provisioning.brand_register(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    messaging = provisioning.tendlc_advance(clinic=clinic)
    fake_telnyx.campaigns[messaging.campaign_id].update(campaignStatus="MNO_REJECTED", failureReasons="samples")
    with time_machine.travel(NOON, tick=False):
        tendlc_refresh()
        assert "is MNO_REJECTED: samples" in StaffAlert.objects.get().text
        fake_telnyx.requests.clear()
        tendlc_refresh()
    assert fake_telnyx.requests == []


@pytest.mark.parametrize(("status", "transient"), [(429, True), (500, True), (503, True), (400, False), (422, False)])
def test_outages_are_transient_refusals_are_not(status, transient, clinic, fake_telnyx):
    ClinicMessaging.objects.create(clinic=clinic, **COMPANY)
    fake_telnyx.fail("GET", "/10dlc/brand", status=status)
    with pytest.raises(ProvisioningError) as error:
        provisioning.brand_register(clinic=clinic)
    assert error.value.transient is transient
    assert fake_telnyx.calls("POST", "/10dlc/brand") == []


def test_the_state_says_what_the_registration_waits_for(admin_client, clinic, fake_telnyx):
    messaging = ClinicMessaging.objects.create(clinic=clinic, **SOLE)
    changelist = "/admin/messaging/clinicmessaging/"

    def advance():
        answer = admin_client.post(changelist, {"action": "advance", "_selected_action": [messaging.pk]}, follow=True)
        return answer.content.decode()

    assert "Waiting for The Campaign Registry to verify the brand." in advance()
    fake_telnyx.brand_verify(ClinicMessaging.objects.get(pk=messaging.pk).brand_id)
    assert "Waiting for the owner&#x27;s verification PIN" in advance()
    provisioning.brand_otp_verify(clinic=clinic, pin=fake_telnyx.otp_pin)
    _number(clinic, fake_telnyx)
    assert "Campaign TCR_PENDING; 0 of 1 active number(s) assigned." in advance()
    messaging.refresh_from_db()
    fake_telnyx.campaign_provision(messaging.campaign_id)
    fake_telnyx.assignment_settle("+13055550101")
    assert "Active: the campaign is provisioned and its numbers are assigned." in advance()
    messaging.entity_type = ClinicMessaging.EntityType.PRIVATE_PROFIT
    messaging.brand_id = ""
    assert provisioning.tendlc_state(messaging).startswith("Needs: legal name, EIN")
