"""The registries: EMR clients, payment backends and conversation engines picked by name, each replaceable or
extended by a dotted path in settings, with one constructor shape."""

import re

import pytest
import time_machine
from django.core.exceptions import ImproperlyConfigured

from conversation.engine import engine_for
from conversation.engines import Engine, EngineReply
from conversation.models import Turn
from emr.base import WRITE, EmrClient
from emr.models import EmrConfig
from emr.services import EmrConfigError, emr_client
from payments.backends.sandbox import SandboxBackend
from payments.services import PaymentConfigError, payment_backend

from .test_assistant import NOW, Patient

# --- EMR clients ---------------------------------------------------------------------------------------------------


class FakeEmr(EmrClient):
    capabilities = frozenset({WRITE})

    def __init__(self, clinic, config):
        self.clinic, self.config = clinic, config

    @classmethod
    def from_config(cls, clinic, config):
        return cls(clinic, config)

    availability = find_or_create_patient = create_appointment = find_appointment = cancel_appointment = None


def test_a_setting_replaces_a_kinds_emr_client(demo, settings):
    config = EmrConfig.objects.get(clinic=demo)
    EmrConfig.objects.filter(pk=config.pk).update(kind="nextech")
    settings.EMR_CLIENTS = {"nextech": "tests.test_registries.FakeEmr"}
    client = emr_client(clinic=demo)
    assert isinstance(client, FakeEmr) and client.clinic == demo and client.config.pk == config.pk


def test_a_setting_adds_an_emr_kind(demo, settings):
    EmrConfig.objects.filter(clinic=demo).update(kind="mindbody")
    with pytest.raises(EmrConfigError, match=re.escape("mindbody has no client yet.")):
        emr_client(clinic=demo)
    settings.EMR_CLIENTS = {"mindbody": "tests.test_registries.FakeEmr"}
    assert isinstance(emr_client(clinic=demo), FakeEmr)


def test_bad_emr_credentials_keep_their_messages(demo):
    EmrConfig.objects.filter(clinic=demo).update(kind="boulevard", credentials="{not json")
    with pytest.raises(EmrConfigError, match=re.escape("EMR credentials are not valid JSON.")):
        emr_client(clinic=demo)


def test_every_emr_kind_has_a_client_on_the_registry():
    from django.utils.module_loading import import_string

    from emr.services import EMR_CLIENTS

    assert set(EMR_CLIENTS) == set(EmrConfig.Kind)
    for path in EMR_CLIENTS.values():
        assert issubclass(import_string(path), EmrClient)
    assert EMR_CLIENTS[EmrConfig.Kind.SQUARE] == "emr.square_appointments.SquareAppointmentsClient"
    assert EMR_CLIENTS[EmrConfig.Kind.ZENOTI] == "emr.zenoti.ZenotiClient"


# --- Payment backends ----------------------------------------------------------------------------------------------


class FakePayments(SandboxBackend):
    name = "fake"

    @classmethod
    def from_config(cls, clinic, config, *, public_token=""):
        backend = cls(public_token=public_token)
        backend.clinic = clinic
        return backend


def test_a_setting_replaces_a_payment_backend(demo, settings):
    settings.PAYMENTS_SANDBOX_ENABLED = False  # the replacement decides for itself
    settings.PAYMENT_BACKENDS = {"sandbox": "tests.test_registries.FakePayments"}
    backend = payment_backend(clinic=demo, provider="sandbox", public_token="tok")
    assert isinstance(backend, FakePayments) and (backend.public_token, backend.clinic) == ("tok", demo)


def test_an_unknown_payment_provider_is_a_config_error(demo):
    with pytest.raises(PaymentConfigError, match=re.escape("'paypal' is not a payment provider (PAYMENT_BACKENDS).")):
        payment_backend(clinic=demo, provider="paypal")


def test_the_sandbox_is_refused_when_test_payments_are_off(demo, settings):
    settings.PAYMENTS_SANDBOX_ENABLED = False
    with pytest.raises(PaymentConfigError, match="Test payments are off in production"):
        payment_backend(clinic=demo, provider="sandbox")


# --- Conversation engines ------------------------------------------------------------------------------------------


class EchoEngine(Engine):
    """Repeats the texts, and says how many earlier texts its context holds."""

    name = "echo"

    def respond(self, *, conversation, texts, tools, context):
        return EngineReply(text=f"echo ({len(context.history)} before): {' '.join(texts)}", engine=self.name)


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    with time_machine.travel(NOW, tick=False):
        yield Patient(django_capture_on_commit_callbacks, sms_outbox)


def test_a_setting_adds_an_engine_that_answers_the_turns(patient, settings):
    settings.ENGINES = {"echo": "tests.test_registries.EchoEngine"}
    settings.CONVERSATION_ENGINE = "echo"
    assert isinstance(engine_for(None), EchoEngine)
    assert patient.reply("hello") == "echo (0 before): hello"
    assert patient.reply("still there?") == "echo (2 before): still there?"
    assert set(Turn.objects.values_list("engine", flat=True)) == {"echo"}


def test_an_unknown_engine_is_a_configuration_error(settings):
    settings.CONVERSATION_ENGINE = "gpt-9"
    with pytest.raises(ImproperlyConfigured, match="'gpt-9' is not an engine"):
        engine_for(None)


def test_auto_picks_openai_only_with_a_key(settings):
    settings.CONVERSATION_ENGINE = "auto"
    settings.OPENAI_API_KEY = ""
    assert engine_for(None).name == "rules"


def test_an_unknown_engine_fails_the_system_checks_at_start_up(settings):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    settings.CONVERSATION_ENGINE = "gpt-nine"
    with pytest.raises(SystemCheckError, match=r"conversation.E002.*CONVERSATION_ENGINE='gpt-nine' is not an engine"):
        call_command("check")
    settings.CONVERSATION_ENGINE = "auto"
    settings.ENGINES = {"mine": "nowhere.engines.Mine"}
    with pytest.raises(SystemCheckError, match=r"conversation.E001.*'nowhere.engines.Mine' cannot be imported"):
        call_command("check")
    settings.ENGINES = {"mine": "conversation.rules.RulesEngine"}
    settings.CONVERSATION_ENGINE = "mine"
    call_command("check")  # a name added in settings.ENGINES is an engine
