"""Spanish, end to end (issue 16 item 5): a patient who writes in Spanish is answered in Spanish through the whole
booking, from the greeting to the paid confirmation, and ALTO (Spanish for STOP) is confirmed in Spanish and
honoured. The wording is ExpectedEs's (tests/e2e/flow.py), exactly as the patient receives it."""

import pytest

from conversation.models import Conversation
from messaging.models import Message, OptOut

from .checks import assert_booked, assert_nextech, deposit_payment
from .flow import ExpectedEs

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SPANISH_TEXTS = ["hola", "cuanto cuesta el botox?", "si, mañana por la tarde", "2", "Maria Garcia"]


def test_missed_call_to_a_spanish_booking_then_alto(clinic_factory, patient_factory, e2e):
    """A Spanish booking: missed call, Spanish texts to a deposit-paid booking on Nextech, then ALTO

    The patient calls and nobody answers; the intro is English (no language is known yet). The patient answers
    "hola" and goes on in Spanish: the greeting, the catalog price, tomorrow afternoon's open times, the hold and
    the Square deposit link, and after payment the confirmation, all in Spanish, with Spanish dates ("jue 3 dic,
    1:30 PM ET"). The appointment is written to Nextech. Then the patient texts ALTO: the opt-out is confirmed in
    Spanish, once, and a later text gets no answer."""
    setup = clinic_factory("nextech")
    patient = patient_factory(setup, name="Maria Garcia")
    expect = ExpectedEs(setup)

    assert patient.miss_call() == [expect.intro()]
    assert patient.say("hola") == [expect.greeting()]
    assert patient.say("cuanto cuesta el botox?") == [expect.price()]
    assert patient.say("si, mañana por la tarde") == [expect.offer()]
    assert patient.say("2") == [expect.ask_name()]
    (link,) = patient.say("Maria Garcia")
    start = expect.times()[1]
    payment = deposit_payment(setup)
    assert link == expect.deposit_link("Maria", start, payment)
    assert patient.pay_deposit(payment.link_url) == [expect.confirmation(start)]

    texts = [
        expect.intro(),
        expect.greeting(),
        expect.price(),
        expect.offer(),
        expect.ask_name(),
        link,
        expect.confirmation(start),
    ]
    booking, conversation = assert_booked(
        patient,
        start=start,
        payment=payment,
        texts=texts,
        inbound=SPANISH_TEXTS,
        origin=Conversation.Origin.MISSED_CALL,
    )
    assert conversation.language == "es"
    patient.transcript.check(f"Conversation #{conversation.pk}: language es (entered on \u201chola\u201d).")
    assert_nextech(patient, booking)

    # ALTO: unsubscribed, confirmed in Spanish once; nothing more is sent, whatever the patient writes.
    assert patient.say("ALTO") == [expect.opted_out()]
    opt_out = OptOut.objects.get(clinic=setup.clinic, phone=setup.patient_phone, active=True)
    assert opt_out.source == OptOut.Source.KEYWORD
    patient.say("cuanto cuesta el botox?", expect=0)
    patient.say("ALTO", expect=0)
    patient.assert_no_more_texts(seconds=8)  # past the debounce and a worker's turn: no answer, no second confirmation
    patient.note("No text answers either one: the number is opted out (and ALTO is confirmed only once).")
    assert patient.received() == [*texts, expect.opted_out()]
    inbound = Message.objects.filter(conversation__clinic=setup.clinic, direction=Message.Direction.INBOUND)
    # The last two were posted a moment apart and may be filed in either order: compared as a set of texts.
    assert sorted(inbound.values_list("body", flat=True)) == sorted(
        [*SPANISH_TEXTS, "ALTO", "cuanto cuesta el botox?", "ALTO"]
    )
    patient.transcript.check(
        f"Opt-out #{opt_out.pk}: active, from the keyword ALTO; the two later texts were recorded and not answered."
    )
    e2e.assert_no_errors()
