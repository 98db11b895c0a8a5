"""Number provisioning and 10DLC against a local fake Telnyx (tests/fakes/telnyx_numbers.py); never the internet."""

import pytest

from medspa.models import Clinic
from messaging import provisioning
from messaging.models import ClinicMessaging, PhoneNumber
from messaging.provisioning import ProvisioningError

pytest_plugins = ["tests.fakes.telnyx_numbers"]  # the fake_telnyx fixture
pytestmark = pytest.mark.django_db


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
    )


@pytest.fixture
def registered(clinic):
    """The clinic with the company details the brand needs."""
    ClinicMessaging.objects.create(
        clinic=clinic, legal_name="Glow Aesthetics LLC", ein="12-3456789", contact_email="owner@glow.example.com"
    )
    return clinic


def test_profile_is_created_once(clinic, fake_telnyx):
    messaging = provisioning.messaging_profile_ensure(clinic=clinic)

    [call] = fake_telnyx.requests
    assert (call.method, call.path) == ("POST", "/messaging_profiles")
    assert call.headers["authorization"] == "Bearer KEY_test"
    assert call.json == {
        "name": "Glow Med Spa (glow-305)",
        "whitelisted_destinations": ["US"],
        "webhook_url": "https://frontdesk.example.com/webhooks/telnyx/messages",
        "webhook_failover_url": "https://frontdesk.example.com/webhooks/telnyx/messages",
    }
    assert messaging.messaging_profile_id in fake_telnyx.profiles
    assert ClinicMessaging.objects.get(clinic=clinic).messaging_profile_id == messaging.messaging_profile_id

    again = provisioning.messaging_profile_ensure(clinic=clinic)
    assert again.messaging_profile_id == messaging.messaging_profile_id
    assert len(fake_telnyx.requests) == 1


def test_search_sends_the_filters_and_returns_e164(fake_telnyx):
    numbers = provisioning.numbers_search(area_code="305", limit=3)

    assert numbers == ["+13055550101", "+13055550102", "+13055550103"]
    [call] = fake_telnyx.requests
    assert (call.method, call.path) == ("GET", "/available_phone_numbers")
    assert call.query == {
        "filter[country_code]": ["US"],
        "filter[features][]": ["sms"],
        "filter[national_destination_code]": ["305"],
        "filter[limit]": ["3"],
    }


@pytest.mark.parametrize("area_code", ["30", "3055", "abc", "105", ""])
def test_search_refuses_a_bad_area_code(area_code, fake_telnyx):
    with pytest.raises(ValueError):
        provisioning.numbers_search(area_code=area_code)
    assert fake_telnyx.requests == []


def test_order_creates_a_pending_number_on_the_profile(clinic, fake_telnyx):
    phone = provisioning.number_order(clinic=clinic, phone_number="+13055550101")

    profile_call, order_call = fake_telnyx.requests
    assert profile_call.path == "/messaging_profiles"
    profile_id = ClinicMessaging.objects.get(clinic=clinic).messaging_profile_id
    assert (order_call.method, order_call.path) == ("POST", "/number_orders")
    assert order_call.json == {"phone_numbers": [{"phone_number": "+13055550101"}], "messaging_profile_id": profile_id}

    phone.refresh_from_db()
    order = fake_telnyx.orders[phone.order_id]
    assert phone.clinic == clinic
    assert phone.number == "+13055550101"
    assert phone.provider == "telnyx"
    assert phone.messaging_profile_id == profile_id
    assert phone.provider_number_id == order["phone_numbers"][0]["id"]
    assert (phone.order_status, phone.status, phone.hosted) == ("pending", PhoneNumber.Status.PENDING, False)
    assert phone.campaign_status == PhoneNumber.CampaignStatus.NONE


def test_a_successful_order_is_active(clinic, fake_telnyx):
    fake_telnyx.number_order_status = "success"
    phone = provisioning.number_order(clinic=clinic, phone_number="+13055550102")
    assert (phone.order_status, phone.status) == ("success", PhoneNumber.Status.ACTIVE)


def test_order_refuses_a_number_on_file(clinic, fake_telnyx):
    other = Clinic.objects.create(slug="other", name="Other Spa", timezone="America/New_York")
    PhoneNumber.objects.create(clinic=other, number="+13055550101")

    with pytest.raises(ProvisioningError, match="already on file for another clinic"):
        provisioning.number_order(clinic=clinic, phone_number="+13055550101")
    assert fake_telnyx.requests == []
    assert "already on file" in ClinicMessaging.objects.get(clinic=clinic).last_error


def test_order_refuses_a_malformed_number(clinic, fake_telnyx):
    with pytest.raises(ValueError):
        provisioning.number_order(clinic=clinic, phone_number="305-555-0101")
    assert fake_telnyx.requests == []


def test_hosted_order(clinic, fake_telnyx):
    phone = provisioning.hosted_number_order(clinic=clinic, phone_number="+13055550199")

    call = fake_telnyx.calls("POST", "/messaging_hosted_number_orders")[0]
    profile_id = ClinicMessaging.objects.get(clinic=clinic).messaging_profile_id
    assert call.json == {"phone_numbers": ["+13055550199"], "messaging_profile_id": profile_id}
    phone.refresh_from_db()
    assert phone.hosted is True
    assert phone.status == PhoneNumber.Status.PENDING
    assert phone.order_id in fake_telnyx.hosted_orders
    assert phone.order_status == "pending"
    assert phone.messaging_profile_id == profile_id


def test_brand_names_the_missing_fields(clinic, fake_telnyx):
    with pytest.raises(ProvisioningError) as error:
        provisioning.brand_register(clinic=clinic)

    assert "legal name" in error.value.message
    assert "contact email" in error.value.message
    assert "EIN" in error.value.message
    assert ClinicMessaging.objects.get(clinic=clinic).last_error == error.value.message
    assert fake_telnyx.requests == []


def test_a_sole_proprietor_needs_no_ein(clinic, fake_telnyx):
    ClinicMessaging.objects.create(
        clinic=clinic,
        first_name="Jane",
        last_name="Doe",
        mobile_phone="+13055550177",
        contact_email="jane@glow.example.com",
        entity_type=ClinicMessaging.EntityType.SOLE_PROPRIETOR,
    )
    messaging = provisioning.brand_register(clinic=clinic)
    assert messaging.brand_id
    [sent] = fake_telnyx.calls("POST", "/10dlc/brand")
    assert "ein" not in sent.json
    assert (sent.json["firstName"], sent.json["lastName"], sent.json["mobilePhone"]) == ("Jane", "Doe", "+13055550177")


def test_brand_campaign_and_assignment(registered, fake_telnyx):
    clinic = registered
    phone = PhoneNumber.objects.create(clinic=clinic, number="+13055550101")
    fake_telnyx.owned.add(phone.number)  # active on the account

    messaging = provisioning.brand_register(clinic=clinic)
    brand_call = fake_telnyx.calls("POST", "/10dlc/brand")[0]
    assert brand_call.headers["authorization"] == "Bearer KEY_test"
    assert brand_call.json == {
        "country": "US",
        "displayName": "Glow Med Spa",
        "companyName": "Glow Aesthetics LLC",
        "ein": "12-3456789",
        "email": "owner@glow.example.com",
        "entityType": "PRIVATE_PROFIT",
        "vertical": "HEALTHCARE",
        "phone": "+13055550199",
        "street": "100 Ocean Dr",
        "city": "Miami",
        "state": "FL",
        "postalCode": "33139",
        "website": "https://glow.example.com",
    }
    assert messaging.brand_id in fake_telnyx.brands
    assert messaging.brand_status == "REGISTRATION_PENDING"
    assert provisioning.brand_register(clinic=clinic).brand_id == messaging.brand_id  # idempotent
    assert len(fake_telnyx.calls("POST", "/10dlc/brand")) == 1

    fake_telnyx.brand_verify(messaging.brand_id)  # TCR's verdict, read by the refresh
    provisioning.provisioning_refresh(clinic=clinic)
    messaging = provisioning.campaign_register(clinic=clinic)
    [campaign_call] = fake_telnyx.calls("POST", "/10dlc/campaignBuilder")
    sent = campaign_call.json
    assert sent["brandId"] == messaging.brand_id
    assert sent["usecase"] == "CUSTOMER_CARE"
    assert "Glow Med Spa" in sent["description"]
    assert "unchecked" in sent["messageFlow"]
    for key in ("sample1", "sample2", "sample3"):
        assert "Glow Med Spa" in sent[key]
        assert "Reply STOP to opt out" in sent[key]
    assert sent["optinKeywords"] == "START"
    assert sent["optoutKeywords"] == "STOP,STOPALL,UNSUBSCRIBE,CANCEL,END,QUIT,REVOKE,OPTOUT"
    assert sent["helpKeywords"] == "HELP,INFO"
    assert sent["helpMessage"] == clinic.render_help()
    assert "START" in sent["optoutMessage"]
    assert (sent["subscriberOptin"], sent["subscriberOptout"], sent["subscriberHelp"]) == (True, True, True)
    # Deposit requests carry a payment link; the campaign says so and one sample shows it.
    assert (sent["embeddedLink"], sent["numberPool"], sent["ageGated"]) == (True, False, False)
    assert any("https://" in sent[f"sample{i}"] for i in (1, 2, 3))
    assert messaging.campaign_id in fake_telnyx.campaigns
    assert messaging.campaign_status == "TCR_PENDING"
    assert provisioning.campaign_register(clinic=clinic).campaign_id == messaging.campaign_id  # idempotent
    assert len(fake_telnyx.calls("POST", "/10dlc/campaignBuilder")) == 1

    phone = provisioning.number_assign_campaign(phone_number=phone)
    [assign_call] = fake_telnyx.calls("POST", "/10dlc/phone_number_campaigns")
    assert assign_call.json == {"phoneNumber": "+13055550101", "campaignId": messaging.campaign_id}
    phone.refresh_from_db()
    assert phone.campaign_status == PhoneNumber.CampaignStatus.PENDING
    provisioning.number_assign_campaign(phone_number=phone)  # already pending: no second request
    assert len(fake_telnyx.calls("POST", "/10dlc/phone_number_campaigns")) == 1
    assert ClinicMessaging.objects.get(clinic=clinic).last_error == ""


def test_campaign_needs_a_brand(clinic, fake_telnyx):
    with pytest.raises(ProvisioningError, match="register the brand first"):
        provisioning.campaign_register(clinic=clinic)
    assert fake_telnyx.requests == []


def test_assignment_needs_a_campaign(clinic, fake_telnyx):
    phone = PhoneNumber.objects.create(clinic=clinic, number="+13055550101")
    with pytest.raises(ProvisioningError, match="register the 10DLC campaign first"):
        provisioning.number_assign_campaign(phone_number=phone)
    assert fake_telnyx.requests == []


def test_an_immediately_assigned_number_is_assigned(registered, fake_telnyx):
    fake_telnyx.assignment_status = "ASSIGNED"
    phone = PhoneNumber.objects.create(clinic=registered, number="+13055550101")
    fake_telnyx.owned.add(phone.number)
    messaging = provisioning.brand_register(clinic=registered)
    fake_telnyx.brand_verify(messaging.brand_id)
    provisioning.provisioning_refresh(clinic=registered)
    provisioning.campaign_register(clinic=registered)
    assert provisioning.number_assign_campaign(phone_number=phone).campaign_status == "assigned"


def test_refresh_updates_statuses(registered, fake_telnyx):
    clinic = registered
    ordered = provisioning.number_order(clinic=clinic, phone_number="+13055550101")
    hosted = provisioning.hosted_number_order(clinic=clinic, phone_number="+13055550199")
    messaging = provisioning.brand_register(clinic=clinic)
    fake_telnyx.brand_verify(messaging.brand_id)
    fake_telnyx.orders[ordered.order_id]["status"] = "success"
    fake_telnyx.hosted_orders[hosted.order_id]["status"] = "successful"
    provisioning.provisioning_refresh(clinic=clinic)
    ordered.refresh_from_db()
    hosted.refresh_from_db()
    messaging = provisioning.campaign_register(clinic=clinic)
    provisioning.number_assign_campaign(phone_number=ordered)
    provisioning.number_assign_campaign(phone_number=hosted)

    # Later, at Telnyx:
    fake_telnyx.campaigns[messaging.campaign_id]["campaignStatus"] = "MNO_PROVISIONED"
    fake_telnyx.assignments["+13055550101"]["assignmentStatus"] = "ASSIGNED"
    fake_telnyx.assignments["+13055550199"].update(
        assignmentStatus="FAILED_ASSIGNMENT", failureReasons="Number is not SMS enabled"
    )
    fake_telnyx.requests.clear()

    messaging = provisioning.provisioning_refresh(clinic=clinic)

    paths = {(r.method, r.path) for r in fake_telnyx.requests}
    assert paths == {
        ("GET", f"/10dlc/brand/{messaging.brand_id}"),
        ("GET", f"/10dlc/campaign/{messaging.campaign_id}"),
        ("GET", "/10dlc/phone_number_campaigns/+13055550101"),
        ("GET", "/10dlc/phone_number_campaigns/+13055550199"),
    }
    messaging.refresh_from_db()
    assert (messaging.brand_status, messaging.campaign_status) == ("OK", "MNO_PROVISIONED")
    ordered.refresh_from_db()
    hosted.refresh_from_db()
    assert (ordered.status, ordered.order_status, ordered.campaign_status) == ("active", "success", "assigned")
    assert (hosted.status, hosted.order_status, hosted.campaign_status) == ("active", "successful", "failed")
    assert "+13055550199" in messaging.last_error
    assert "Number is not SMS enabled" in messaging.last_error


def test_telnyx_error_becomes_provisioning_error_and_last_error(registered, fake_telnyx):
    fake_telnyx.fail(
        "POST", "/10dlc/brand", status=422, code="10015", title="Invalid EIN", detail="EIN must be 9 digits"
    )

    with pytest.raises(ProvisioningError) as error:
        provisioning.brand_register(clinic=registered)

    message = error.value.message
    assert "HTTP 422" in message
    assert "EIN must be 9 digits" in message
    assert "10015" in message
    messaging = ClinicMessaging.objects.get(clinic=registered)
    assert messaging.last_error == message
    assert messaging.brand_id == ""

    # Fixed at Telnyx's end: the next try succeeds and clears the error.
    messaging = provisioning.brand_register(clinic=registered)
    assert messaging.brand_id
    assert ClinicMessaging.objects.get(clinic=registered).last_error == ""


def test_order_error_creates_no_number(clinic, fake_telnyx):
    fake_telnyx.fail("POST", "/number_orders", status=422, code="10015", title="Number unavailable")

    with pytest.raises(ProvisioningError, match="Number unavailable"):
        provisioning.number_order(clinic=clinic, phone_number="+13055550101")
    assert not PhoneNumber.objects.exists()
    assert "Number unavailable" in ClinicMessaging.objects.get(clinic=clinic).last_error


def test_search_error_raises(fake_telnyx):
    fake_telnyx.fail("GET", "/available_phone_numbers", status=500, code="10007", title="Unexpected error")
    with pytest.raises(ProvisioningError, match="HTTP 500"):
        provisioning.numbers_search(area_code="305")


def test_unreachable_telnyx(clinic, settings):
    settings.TELNYX_API_KEY = "KEY_test"
    settings.TELNYX_BASE_URL = "http://127.0.0.1:9/v2"  # discard port: nothing listens
    with pytest.raises(ProvisioningError, match="Could not reach Telnyx"):
        provisioning.messaging_profile_ensure(clinic=clinic)
    assert "Could not reach Telnyx" in ClinicMessaging.objects.get(clinic=clinic).last_error


def test_missing_api_key(clinic, settings):
    settings.TELNYX_API_KEY = ""
    with pytest.raises(ProvisioningError, match="TELNYX_API_KEY"):
        provisioning.telnyx_client()
    with pytest.raises(ProvisioningError, match="TELNYX_API_KEY"):
        provisioning.messaging_profile_ensure(clinic=clinic)
    messaging = ClinicMessaging.objects.get(clinic=clinic)
    assert "TELNYX_API_KEY" in messaging.last_error
    assert messaging.messaging_profile_id == ""


def test_default_base_url(settings):
    settings.TELNYX_API_KEY = "KEY_test"
    settings.TELNYX_BASE_URL = ""
    assert str(provisioning.telnyx_client().base_url).rstrip("/") == "https://api.telnyx.com/v2"
