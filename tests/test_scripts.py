"""scripts/test-webhook.sh, run as an operator runs it (bash, curl) against a live server that trusts the key it
generated: an inbound text and a missed call are accepted and recorded; a key the server does not trust is 403."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conversation.models import Conversation
from inbox.models import WebhookEvent, WebhookRejection
from messaging.models import Message

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "test-webhook.sh"
CLINIC_NUMBER = "+15555550100"  # the demo clinic's number (fixtures/demo-clinic.json)

pytestmark = [
    pytest.mark.skipif(not shutil.which("curl") or not shutil.which("bash"), reason="needs bash and curl"),
    pytest.mark.real_clock,  # the script signs with the machine's clock, so the server must keep it too
]


def run(*args, signing_key=None):
    env = {**os.environ, "PYTHON": sys.executable}
    env.pop("TELNYX_SIGNING_KEY", None)
    if signing_key is not None:
        env["TELNYX_SIGNING_KEY"] = signing_key
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def keygen():
    result = run("keygen")
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return values["TELNYX_SIGNING_KEY"], values["TELNYX_PUBLIC_KEY"]


@pytest.fixture
def server(live_server, demo, settings):
    """The live server (a thread of this process, so settings apply) trusting a freshly generated key."""
    seed, public = keygen()
    settings.TELNYX_PUBLIC_KEY = public
    return live_server.url, seed


def test_help_explains_and_bad_usage_exits_2():
    result = run("--help")
    assert result.returncode == 0
    assert "TELNYX_SIGNING_KEY" in result.stdout and "telnyx-signature-ed25519" in result.stdout
    assert run("sms", "--url", "http://127.0.0.1:9").returncode == 2  # no --from/--to
    assert run("fax").returncode == 2


def test_inbound_sms_is_accepted_and_recorded(server):
    url, seed = server
    result = run(
        "sms", "--url", url, "--from", "+16175550123", "--to", CLINIC_NUMBER, "--text", "What are your hours?",
        signing_key=seed,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "HTTP 200" in result.stdout
    event = WebhookEvent.objects.get(provider="telnyx", event_type="message.received")
    assert event.status == WebhookEvent.Status.PROCESSED and event.clinic.slug == "demo-clinic-001"
    message = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (message.from_number, message.to_number, message.body) == (
        "+16175550123",
        CLINIC_NUMBER,
        "What are your hours?",
    )


def test_missed_call_is_accepted_and_starts_a_conversation(server):
    url, seed = server
    result = run("call", "--url", url + "/", "--from", "+16175550124", "--to", CLINIC_NUMBER, signing_key=seed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("HTTP 200") == 2  # call.initiated, call.hangup
    hangup = WebhookEvent.objects.get(event_type="call.hangup")
    assert hangup.status == WebhookEvent.Status.PROCESSED
    assert hangup.payload["payload"]["hangup_cause"] == "no_answer"
    conversation = Conversation.objects.get(patient_phone="+16175550124")
    assert conversation.origin == Conversation.Origin.MISSED_CALL
    # The intro is written at once; quiet hours may hold it (scheduled) until the sending window opens.
    assert conversation.messages.get().kind == Message.Kind.INTRO


def test_answered_call_sends_no_text(server):
    url, seed = server
    result = run("call", "--url", url, "--from", "+16175550125", "--to", CLINIC_NUMBER, "--answered", signing_key=seed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("HTTP 200") == 3  # call.initiated, call.answered, call.hangup
    hangup = WebhookEvent.objects.get(event_type="call.hangup")
    assert hangup.status == WebhookEvent.Status.IGNORED  # normal_clearing after call.answered: not a missed call
    assert not Message.objects.filter(to_number="+16175550125").exists()


def test_a_key_the_server_does_not_trust_is_403(server):
    url, _ = server
    other_seed, _ = keygen()
    result = run("sms", "--url", url, "--from", "+16175550123", "--to", CLINIC_NUMBER, signing_key=other_seed)
    assert result.returncode == 1
    assert "HTTP 403" in result.stdout and "signature does not match" in result.stdout
    assert WebhookRejection.objects.get().reason == "signature does not match"
    assert not WebhookEvent.objects.exists() and not Message.objects.exists()


def test_a_stale_timestamp_is_403(server):
    url, seed = server
    result = run(
        "sms", "--url", url, "--from", "+16175550123", "--to", CLINIC_NUMBER, "--timestamp", "1000000000",
        signing_key=seed,
    )  # fmt: skip
    assert result.returncode == 1 and "HTTP 403" in result.stdout
    assert WebhookRejection.objects.get().reason == "timestamp outside the allowed window"


def test_no_server_is_curls_exit_code():
    seed, _ = keygen()
    result = run(
        "sms", "--url", "http://127.0.0.1:9", "--from", "+16175550123", "--to", CLINIC_NUMBER, signing_key=seed
    )
    assert result.returncode not in (0, 1, 2)  # curl's own code (7: could not connect)
