"""Spanish, end to end on the rules engine: a patient who texts in Spanish books, pays, cancels, asks for HELP and
opts out in Spanish; an English patient is answered exactly as before; a clinic can turn Spanish off. The clock is
pinned (Monday 2026-11-23 10:15 in Boston, the ``patient`` fixture of test_assistant)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine

from conversation import i18n
from lifecycle.services import texts_sweep
from medspa.models import Clinic
from medspa.spanish import gsm7
from medspa.timetext import when_es
from messaging.compliance import Intent, classify
from messaging.models import OptOut
from tests.test_assistant import NOW, Patient, booked

BOSTON = ZoneInfo("America/New_York")


@pytest.fixture
def patient(demo, django_capture_on_commit_callbacks, sms_outbox):
    with time_machine.travel(NOW, tick=False):
        yield Patient(django_capture_on_commit_callbacks, sms_outbox)


def book_in_spanish(patient):
    patient.reply("hola")
    patient.reply("quiero botox el jueves por la tarde")
    patient.reply("2")
    patient.reply("Maria Garcia")
    return patient.pay()


# --- The flow, in Spanish -----------------------------------------------------------------------------------------


def test_a_spanish_booking_from_greeting_to_confirmation(patient):
    greeting = patient.reply("hola")
    assert greeting.startswith("Hola, le escribe Glow Demo Med Spa.") and "cita" in greeting
    price = patient.reply("cuanto cuesta el botox?")
    assert "Botox cuesta $12 por unidad" in price and "$240-$360" in price and "horario" in price
    offer = patient.reply("quiero botox el jueves por la tarde")
    assert offer.startswith("Estos son los horarios disponibles para Botox:")
    assert "1. jue 26 nov, 12:00 PM ET con " in offer and "3." in offer
    assert offer.endswith("Responda 1, 2 o 3 para elegir uno.")
    assert "A nombre de quién" in patient.reply("2")
    link = patient.reply("Maria Garcia")
    assert link.startswith("Gracias, Maria. Le aparto Botox el jue 26 nov, 1:30 PM ET con ")
    assert " ET. Para confirmar, pague el deposito de $50 aqui: " in link and "/pay/" in link
    (confirmation,) = patient.pay()
    assert confirmation.startswith("Su cita esta confirmada: Botox con ") and "jue 26 nov, 1:30 PM ET" in confirmation
    assert "responda aqui al menos 24 horas antes" in confirmation
    booking = booked().get()
    assert booking.status == "confirmed" and booking.patient_name == "Maria Garcia"
    assert patient.conversation.language == "es"


def test_spanish_texts_stay_gsm7_so_a_segment_holds_160_characters(patient):
    replies = [patient.reply(t) for t in ("hola", "quiero botox el jueves por la tarde", "2", "Maria Garcia")]
    replies += patient.pay()
    gsm7_letters = set("éñüÉÑÜ")
    for reply in replies:
        assert not {ch for ch in reply if ord(ch) > 127} - gsm7_letters, reply


def test_the_soonest_times_with_the_price_in_spanish(patient):
    offer = patient.reply("quiero botox")
    assert offer.startswith("Botox cuesta $12 por unidad")
    assert "Estos son los horarios disponibles para Botox:" in offer and " ET con " in offer
    assert offer.endswith("para elegir uno, o digame un dia que le convenga.")


def test_a_spanish_cancellation_asks_for_si_first(patient):
    book_in_spanish(patient)
    ask = patient.reply("quiero cancelar mi cita")
    assert ask.startswith("Responda SI para cancelar su cita de Botox del jue 26 nov, 1:30 PM ET")
    assert "se le reembolsara su deposito de $50" in ask and "responda NO para mantenerla" in ask
    assert booked().get().status == "confirmed"
    done = patient.reply("sí")
    assert done.startswith("Listo: su cita de Botox del jue 26 nov, 1:30 PM ET esta cancelada.")
    assert "Se le reembolsara su deposito de $50." in done
    assert not booked().exists()


def test_a_spanish_no_keeps_the_appointment(patient):
    book_in_spanish(patient)
    patient.reply("cancelar mi cita por favor")
    kept = patient.reply("no")
    assert kept == "Perfecto: su cita de Botox del jue 26 nov, 1:30 PM ET sigue en pie."
    assert booked().get().status == "confirmed"


def test_a_spanish_reschedule_asks_for_the_new_day_in_spanish(patient):
    book_in_spanish(patient)
    ask = patient.reply("quiero cambiar mi cita")
    assert ask.startswith("Claro. Su cita de Botox es el jue 26 nov, 1:30 PM ET.") and "Qué dia y hora" in ask


def test_an_out_of_range_pick_says_the_valid_numbers_in_spanish(patient):
    patient.reply("quiero botox el jueves por la tarde")
    assert patient.reply("6") == "Le ofreci 3 horarios: responda 1, 2 o 3, o digame otro dia."


def test_urgent_symptoms_in_spanish_get_the_urgent_script_and_alert(patient):
    reply = patient.reply("me puse botox ayer y no puedo respirar")
    assert reply.startswith("Si es una emergencia o le cuesta respirar, llame al 911 ahora.")
    assert patient.conversation.owner == "staff" or patient.conversation.needs_staff


# --- Compliance keywords in Spanish ---------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["ALTO", "Parar", "alto."])
def test_alto_and_parar_opt_out_exactly_like_stop(patient, keyword):
    patient.reply("hola")
    (confirmation,) = patient.say(keyword)
    assert confirmation == (
        "Glow Demo Med Spa: Se ha dado de baja y no recibira mas mensajes. Responda INICIO para volver a suscribirse."
    )
    opt_out = OptOut.objects.get(phone=patient.phone, active=True)
    assert opt_out.source == OptOut.Source.KEYWORD
    assert patient.say("cuanto cuesta el botox?") == []  # nothing more goes out
    assert patient.say("ALTO") == []  # one confirmation only
    (back,) = patient.say("INICIO")
    assert back.startswith("Glow Demo Med Spa: Volvera a recibir nuestros mensajes.") and "ALTO" in back
    assert not OptOut.objects.filter(phone=patient.phone, active=True).exists()


def test_stop_in_english_is_confirmed_in_english(patient):
    (confirmation,) = patient.say("STOP")
    assert confirmation.startswith("Glow Demo Med Spa: You're unsubscribed")


def test_ayuda_gets_help_in_spanish_and_help_in_english(patient):
    (ayuda,) = patient.say("AYUDA")
    assert ayuda.startswith("Glow Demo Med Spa: mensajes sobre sus citas.") and "Responda ALTO" in ayuda
    assert "cargos por mensajes y datos" in ayuda
    (help_,) = patient.say("HELP")
    assert help_ == Clinic.objects.get(slug="demo-clinic-001").render_help()


def test_spanish_keywords_are_classified_with_their_language():
    assert classify("ALTO") == classify("alto") and classify("ALTO").language == "es"
    assert classify("PARAR").intent == Intent.OPT_OUT and classify("PARAR").reason == "keyword"
    assert classify("no me manden mas mensajes").language == "es"
    assert classify("no me manden mas mensajes").intent == Intent.OPT_OUT
    assert classify("AYUDA").intent == Intent.HELP and classify("AYUDA").language == "es"
    assert classify("STOP").language == "en" and classify("HELP").language == "en"


# --- After the booking: its texts in the language it was made in (Booking.language) -------------------------------


def test_a_booking_made_in_spanish_gets_its_confirmation_request_in_spanish_and_confirmo_confirms_it(patient):
    book_in_spanish(patient)
    booking = booked().get()
    assert booking.language == "es"
    # Thursday 1:30 PM: its confirmation request goes 48 h before, on Tuesday at 1:30 PM.
    with time_machine.travel(datetime(2026, 11, 24, 13, 30, tzinfo=BOSTON), tick=False):
        with patient.capture(execute=True):
            texts_sweep()
        (request,) = patient._new()
        assert request.startswith("Glow Demo Med Spa: su cita de Botox con ")
        assert "es el jue 26 nov, 1:30 PM ET. Responda C para confirmarla o R para cambiarla." in request
        answer = patient.reply("confirmo")
    assert answer == "Gracias, su cita esta confirmada: Botox el jue 26 nov, 1:30 PM ET. Lo esperamos."
    booking.refresh_from_db()
    assert booking.patient_confirmed_at is not None


def test_a_booking_made_in_english_is_texted_in_english(patient):
    patient.reply("hi, can i get botox thursday afternoon")
    patient.reply("2")
    patient.reply("Jane Doe")
    patient.pay()
    assert booked().get().language == "en"
    with time_machine.travel(datetime(2026, 11, 24, 13, 30, tzinfo=BOSTON), tick=False):
        with patient.capture(execute=True):
            texts_sweep()
        (request,) = patient._new()
    assert "Reply C to confirm or R to reschedule" in request


# --- English unchanged, Spanish off --------------------------------------------------------------------------


def test_an_english_patient_is_answered_as_before(patient):
    assert patient.reply("hi").startswith("Hi! This is Glow Demo Med Spa.")
    assert "Botox is $12 per unit" in patient.reply("how much is botox?")
    assert patient.reply("ok botox thursday afternoon").startswith("Here are open times for Botox:")
    assert patient.conversation.language == "en"


def test_one_spanish_word_in_an_english_conversation_flips_nothing(patient):
    patient.reply("hi, how much is botox?")
    offer = patient.reply("Botox thursday afternoon")
    assert offer.startswith("Here are open times for Botox:") and "Thu Nov 26, " in offer
    assert patient.conversation.language == "en"


def test_a_spanish_conversation_keeps_spanish_on_ok_or_a_number(patient):
    patient.reply("hola, quiero botox el jueves por la tarde")
    assert "A nombre de" in patient.reply("OK 1")
    assert patient.conversation.language == "es"


def test_a_clinic_with_spanish_off_answers_in_english(patient):
    Clinic.objects.filter(slug="demo-clinic-001").update(spanish=False)
    reply = patient.reply("cuanto cuesta el botox?")
    assert "cuesta" not in reply and "Botox" in reply
    assert patient.conversation.language == "en"
    (confirmation,) = patient.say("ALTO")  # honoured all the same, confirmed in English
    assert confirmation.startswith("Glow Demo Med Spa: You're unsubscribed")
    assert OptOut.objects.filter(phone=patient.phone, active=True).exists()


# --- The pieces ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, language",
    [
        ("si", "es"),
        ("Sí", "es"),
        ("hola", "es"),
        ("cuanto cuesta el botox?", "es"),
        ("¿tienen algo el viernes?", "es"),
        ("gracias!!", "es"),
        ("Botox", None),
        ("OK", None),
        ("ok", None),
        ("2", None),
        ("Maria Garcia", None),
        ("no", None),
        ("yes", "en"),
        ("how much is botox", "en"),
        ("can i come in friday", "en"),
    ],
)
def test_detect(text, language):
    assert i18n.detect(text) == language


def test_a_conversation_keeps_its_language_unless_a_text_is_clearly_the_other():
    assert i18n.conversation_language("en", "hola") == "es"
    assert i18n.conversation_language("en", "Botox") == "en"
    assert i18n.conversation_language("es", "OK") == "es"
    assert i18n.conversation_language("es", "yes") == "es"
    assert i18n.conversation_language("es", "Maria Garcia") == "es"
    assert i18n.conversation_language("es", "what time do you close on friday") == "en"


def test_spanish_read_in_the_parsers_words():
    assert i18n.to_parser_text("¿cuánto cuesta el botox?") == "how much is el botox?"
    assert i18n.to_parser_text("quiero botox el jueves por la tarde") == "i want botox thursday afternoon"
    assert i18n.to_parser_text("mañana por la mañana") == "tomorrow morning"
    assert i18n.to_parser_text("sí, cancélala") == "yes, cancel"
    assert i18n.to_parser_text("me llamo María García") == "my name is María García"
    assert i18n.to_parser_text("no puedo respirar") == "cant breathe"


def test_dates_in_spanish_with_the_zone():
    assert when_es(datetime(2026, 12, 3, 18, 30, tzinfo=UTC), BOSTON) == "jue 3 dic, 1:30 PM ET"
    assert when_es(datetime(2026, 7, 4, 13, 0, tzinfo=UTC), BOSTON) == "sab 4 jul, 9:00 AM ET"


def test_a_reply_without_spanish_wording_is_kept_and_documents_are_quoted_as_they_are():
    now = datetime(2026, 11, 23, 15, 15, tzinfo=UTC)
    document = "We do not inject anyone who is pregnant or breastfeeding."
    quoted = f'Esto es lo que dice la informacion de la clinica (en inglés): "{document}"'  # said to be English
    assert i18n.reply_es(document, tz=BOSTON, now=now) == quoted
    steered = i18n.reply_es(document + " Would you like me to find you a time?", tz=BOSTON, now=now)
    assert steered == quoted + " Quiere que le busque un horario?"
    assert gsm7("Qué día") == "Qué dia"


def test_the_already_booked_question_in_spanish():
    now = datetime(2026, 11, 23, 15, 15, tzinfo=UTC)
    english = (
        "You already have Botox on Thu Nov 26 at 1:30 PM. Reply MOVE to move it to Fri Nov 27 at 10:00 AM, or ANOTHER "
        "to book a second appointment."
    )
    assert i18n.reply_es(english, tz=BOSTON, now=now) == (
        "Ya tiene una cita de Botox el jue 26 nov, 1:30 PM ET. Responda CAMBIAR para moverla al vie 27 nov, 10:00 AM "
        "ET, u OTRA para hacer una segunda cita."
    )
    assert i18n.to_parser_text("Cambiarla") == "move" and i18n.to_parser_text("otra") == "another"


def test_the_clinic_admin_has_the_spanish_switch_on_by_default(db):
    from django.contrib import admin

    fields = [f for _, options in admin.site._registry[Clinic].fieldsets for f in options["fields"]]
    assert "spanish" in fields
    assert Clinic._meta.get_field("spanish").default is True


def test_times_with_an_offset_zone_label_are_said_once_in_spanish():
    """A zone zoneinfo names only by its offset is labelled "UTC-3" (medspa.timetext): the Spanish rewrite takes the
    whole label along, not "UTC" alone (which left "UTC-3-3")."""
    sao_paulo = ZoneInfo("America/Sao_Paulo")
    now = datetime(2026, 12, 1, 15, 0, tzinfo=UTC)
    offer = (
        "Here are open times for Botox:\n1. Thu Dec 3, 1:30 PM UTC-3 with Dr. Maya Chen\n"
        "2. Thu Dec 3, 3:00 PM UTC-3 with Dr. Maya Chen\nReply 1 or 2 to pick one."
    )
    assert i18n.reply_es(offer, tz=sao_paulo, now=now) == (
        "Estos son los horarios disponibles para Botox:\n1. jue 3 dic, 1:30 PM UTC-3 con Dr. Maya Chen\n"
        "2. jue 3 dic, 3:00 PM UTC-3 con Dr. Maya Chen\nResponda 1 o 2 para elegir uno."
    )
    hold = (
        "Thanks, Maria! I'm holding Botox on Thu Dec 3, 1:30 PM UTC-3 with Dr. Maya Chen until 12:15 PM UTC-3. "
        "To confirm, please pay the $50 deposit here: https://square.link/u/abc"
    )
    assert i18n.reply_es(hold, tz=sao_paulo, now=now) == (
        "Gracias, Maria. Le aparto Botox el jue 3 dic, 1:30 PM UTC-3 con Dr. Maya Chen hasta las 12:15 PM UTC-3. "
        "Para confirmar, pague el deposito de $50 aqui: https://square.link/u/abc"
    )
