"""SMS compliance rules (COMPLIANCE.md): opt-out, opt-in and HELP keywords; quiet hours; the opt-out ledger."""

from datetime import UTC, datetime, time

import pytest

from messaging.compliance import Intent, classify, next_send_time, phone_state, recipient_timezone, send_window
from messaging.models import OptOut
from messaging.services import is_opted_out, optout_clear, optout_record, optout_record_from_text

from .conftest import make_clinic, make_staff

OPT_OUTS = [
    "STOP", "stop", "Stop.", "STOP!!!", " stop ", "stop 🛑", "🛑 STOP", "STOPALL", "STOP ALL", "stop all",
    "UNSUBSCRIBE", "Unsubscribe", "END", "QUIT", "REVOKE", "OPTOUT", "OPT OUT", "OPT-OUT", "opt-out", "REMOVE",
    "please stop texting me", "Stop texting me!", "stop sending me messages", "no more texts", "No more messages pls",
    "please remove me", "Remove me from your list", "take me off your list", "do not text me again",
    "don't contact me", "unsubscribe me", "no más", "No mas mensajes", "leave me alone", "wrong number",
    # Spanish keywords and plain words, and ARRET (carriers list it beside STOP)
    "Alto", "PARAR", "Baja", "arrêt", "no me envíen más textos", "dejen de mandarme cosas", "quiero darme de baja",
    "delete my number please", "i never subscribed to this",
]  # fmt: skip
NOT_OPT_OUTS = [
    "I want Botox", "how much is botox?", "Cancel my appointment tomorrow", "can I cancel my appointment?",
    "can I stop by at 3?", "Thursday at 2 works", "2", "yes", "What's your address?", "the end of the week",
    "I'd like to reschedule", "do you have parking?", "which bus stop is nearest?", "nearest T stop",
    "para el jueves", "alto precio?",
]  # fmt: skip


@pytest.mark.parametrize("text", OPT_OUTS)
def test_opt_out_spellings(text):
    assert classify(text).intent == Intent.OPT_OUT


@pytest.mark.parametrize("text", NOT_OPT_OUTS)
def test_ordinary_texts_are_not_opt_outs(text):
    assert classify(text).intent == Intent.NONE


def test_cancel_alone_is_an_opt_out_that_alerts_staff():
    result = classify("Cancel")
    assert result.intent == Intent.OPT_OUT and result.alert_staff and "appointment" in result.reason


def test_cancelar_alone_is_an_opt_out_that_alerts_staff_too():
    result = classify("CANCELAR")
    assert result.intent == Intent.OPT_OUT and result.alert_staff


def test_unclear_short_text_fails_closed_and_alerts_staff():
    result = classify("stop it")
    assert result.intent == Intent.OPT_OUT and result.alert_staff


@pytest.mark.parametrize("text", ["START", "start", "Unstop", "UNSTOP."])
def test_opt_in_keywords(text):
    assert classify(text).intent == Intent.OPT_IN


def test_yes_opts_in_only_right_after_an_opt_out():
    assert classify("YES", opted_out=True).intent == Intent.OPT_IN
    assert classify("YES", opted_out=False).intent == Intent.NONE


@pytest.mark.parametrize("text", ["HELP", "help", "Info", "INFO?"])
def test_help_keywords(text):
    assert classify(text).intent == Intent.HELP


def test_help_in_a_sentence_is_a_question_not_the_keyword():
    assert classify("can you help me book botox").intent == Intent.NONE


# --- Quiet hours ------------------------------------------------------------------------------------------------


@pytest.fixture
def clinic(db):
    return make_clinic("c", timezone="America/New_York")


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def test_states_and_zones_from_area_codes():
    assert phone_state("+13055550123") == "FL" and phone_state("+12125550199") == "NY"
    assert phone_state("+12065550123") == "WA" and phone_state("+18005550123") is None
    assert str(recipient_timezone("+14155550123", clinic_timezone="America/New_York")) == "America/Los_Angeles"
    # Toll-free: no single zone, so the clinic's.
    assert str(recipient_timezone("+18005550123", clinic_timezone="America/New_York")) == "America/New_York"
    assert (
        str(recipient_timezone("+14155550123", clinic_timezone="X", patient_timezone="Europe/Paris")) == "Europe/Paris"
    )


def test_strictest_window_wins():
    assert send_window(phone="+16175550123") == (time(8), time(21))  # Massachusetts: federal
    assert send_window(phone="+13055550123") == (time(8), time(20))  # Florida
    assert send_window(phone="+12035550123") == (time(9), time(20))  # Connecticut
    assert send_window(phone="+16175550123", clinic_window=(time(10), time(19))) == (time(10), time(19))


def test_lead_at_22_local_waits_for_next_opening(clinic):
    # 22:00 in Los Angeles (a 415 number) is 06:00 UTC the next day.
    now = utc(2026, 11, 25, 6, 0)
    assert next_send_time(now, phone="+14155550123", clinic=clinic) == utc(2026, 11, 25, 16, 0)  # 08:00 PST


def test_inside_the_window_sends_now(clinic):
    now = utc(2026, 11, 24, 18, 0)  # 13:00 Eastern
    assert next_send_time(now, phone="+16175550123", clinic=clinic) == now


def test_early_morning_waits_until_the_same_day_opening(clinic):
    now = utc(2026, 11, 24, 11, 30)  # 06:30 Eastern
    assert next_send_time(now, phone="+16175550123", clinic=clinic) == utc(2026, 11, 24, 13, 0)  # 08:00 EST


def test_florida_number_at_2030_eastern_is_deferred(clinic):
    now = utc(2026, 11, 25, 1, 30)  # 20:30 EST on the 24th
    assert next_send_time(now, phone="+13055550123", clinic=clinic) == utc(2026, 11, 25, 13, 0)
    # A Massachusetts number at the same moment is still inside the federal window.
    assert next_send_time(now, phone="+16175550123", clinic=clinic) == now


def test_dst_change_keeps_local_opening_time(clinic):
    # 2026-11-01: clocks go back in the US. 23:00 EDT on Oct 31 = 03:00 UTC Nov 1; next opening is 08:00 EST.
    now = utc(2026, 11, 1, 3, 0)
    assert next_send_time(now, phone="+16175550123", clinic=clinic) == utc(2026, 11, 1, 13, 0)
    # Spring forward (2026-03-08): 22:00 EST on Mar 7 -> 08:00 EDT = 12:00 UTC.
    assert next_send_time(utc(2026, 3, 8, 3, 0), phone="+16175550123", clinic=clinic) == utc(2026, 3, 8, 12, 0)


# --- The opt-out ledger -----------------------------------------------------------------------------------------


def test_ledger_records_once_and_opt_in_keeps_history(clinic):
    phone = "+16175550123"
    assert not is_opted_out(clinic=clinic, phone=phone)
    row, newly = optout_record_from_text(clinic=clinic, phone=phone, classification=classify("STOP"))
    assert newly and row.source == OptOut.Source.KEYWORD and is_opted_out(clinic=clinic, phone=phone)
    # A second STOP: no second confirmation is owed.
    assert optout_record(clinic=clinic, phone=phone, source=OptOut.Source.KEYWORD) == (row, False)
    assert optout_clear(clinic=clinic, phone=phone) and not is_opted_out(clinic=clinic, phone=phone)
    assert not optout_clear(clinic=clinic, phone=phone)
    row, newly = optout_record_from_text(clinic=clinic, phone=phone, classification=classify("Cancel"))
    assert newly and row.needs_review and row.source == OptOut.Source.UNCLEAR and row.times_opted_out == 2
    assert OptOut.objects.count() == 1


def test_opt_out_is_per_clinic(clinic):
    other = make_clinic("other")
    optout_record(clinic=clinic, phone="+16175550123", source=OptOut.Source.KEYWORD)
    assert not is_opted_out(clinic=other, phone="+16175550123")


def test_staff_record_an_opt_out_from_the_admin(client, clinic):
    client.force_login(make_staff("desk", clinic))
    response = client.post(
        "/admin/messaging/optout/add/", {"clinic": clinic.pk, "phone": "(617) 555-0123", "detail": "phoned"}
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    row = OptOut.objects.get()
    assert (row.phone, row.source, row.active, row.detail) == ("+16175550123", "staff", True, "phoned")
    # Recording it again updates nothing and raises no error.
    response = client.post("/admin/messaging/optout/add/", {"clinic": clinic.pk, "phone": "+16175550123"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert OptOut.objects.count() == 1
    # Never edited or deleted from the admin.
    assert client.post(f"/admin/messaging/optout/{row.pk}/delete/", {"post": "yes"}).status_code == 403
