"""The EMR configuration admin: what each kind automates, and "fetch services and staff" for the EMRs that list
them (Square Appointments, Zenoti), through the real clients against the HTTP-boundary fakes."""

import json

import pytest
from django.urls import reverse

from emr.admin import INTEGRATION, INTEGRATION_HELP
from emr.models import EmrConfig
from emr.square_appointments import SquareAppointmentsClient
from emr.zenoti import ZenotiClient
from payments.models import PaymentConfig
from tests.fakes import square_appointments as square_fake
from tests.fakes import zenoti as zenoti_fake

from .conftest import make_staff


class SquareOnFake(SquareAppointmentsClient):
    """The real client as the registry builds it, its HTTP exchanges answered by the fake."""

    @classmethod
    def from_config(cls, clinic, config):
        client = super().from_config(clinic, config)
        client.transport = square_fake.FakeSquareAppointments().transport()
        return client


class ZenotiOnFake(ZenotiClient):
    @classmethod
    def from_config(cls, clinic, config):
        credentials = json.loads(config.credentials)
        return cls(
            **credentials,
            center_id=config.location_ref,
            zone=clinic.tz,
            transport=zenoti_fake.FakeZenoti().transport(),
        )


def test_every_kind_says_what_is_automated():
    assert set(INTEGRATION) == set(INTEGRATION_HELP) == set(EmrConfig.Kind)
    assert "Appointments Plus or Premium" in INTEGRATION_HELP[EmrConfig.Kind.SQUARE]
    assert "reserved (Zenoti's own hold)" in INTEGRATION_HELP[EmrConfig.Kind.ZENOTI]


@pytest.fixture
def fetch(client, demo):
    client.force_login(make_staff("frontdesk", demo))

    def run():
        url = reverse("admin:emr_emrconfig_changelist")
        data = {"action": "fetch_catalog", "_selected_action": [demo.emr_config.pk]}
        return client.post(url, data, follow=True).content.decode()

    return run


def test_fetch_lists_squares_bookable_services_and_team_members(fetch, demo, settings):
    settings.EMR_CLIENTS = {"square": "tests.test_emr_admin.SquareOnFake"}
    EmrConfig.objects.filter(clinic=demo).update(kind=EmrConfig.Kind.SQUARE)
    PaymentConfig.objects.update_or_create(
        clinic=demo,
        defaults={"square_access_token": square_fake.TOKEN, "square_location_id": square_fake.LOCATION_ID},
    )
    page = fetch()
    assert f"Botox consult: 60 minutes = {square_fake.VARIATION_ID}" in page
    assert f"Sandbox Seller = {square_fake.TEAM_A}" in page and "Sunscreen" not in page


def test_fetch_lists_zenotis_services_and_therapists(fetch, demo, settings):
    settings.EMR_CLIENTS = {"zenoti": "tests.test_emr_admin.ZenotiOnFake"}
    EmrConfig.objects.filter(clinic=demo).update(
        kind=EmrConfig.Kind.ZENOTI,
        credentials=json.dumps({"api_key": zenoti_fake.API_KEY}),
        location_ref=zenoti_fake.CENTER_ID,
    )
    page = fetch()
    assert f"Botox consult = {zenoti_fake.SERVICE_ID}" in page and f"Ana Reyes = {zenoti_fake.THERAPIST_ID}" in page


def test_fetch_on_an_emr_that_cannot_list_says_so(fetch):
    assert "cannot list its services and staff here." in fetch()
