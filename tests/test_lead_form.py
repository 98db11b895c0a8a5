"""The hosted lead form (/l/<slug>/) and its embed script: what a patient sees, what is stored, spam and abuse
controls, framing, and the whole thing in a real browser, on its own and inside another site's page."""

import html
import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.test import Client
from playwright.sync_api import expect
from prometheus_client import REGISTRY

from leads.models import Lead
from medspa.models import Service
from messaging.compliance import consent_wording
from messaging.models import Message

from .conftest import DEAD_CACHE, log_text, make_clinic

pytest_plugins = ["tests.browser"]

NOON_IN_BOSTON = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)
PHONE = "+16175550123"
URL = "/l/demo-clinic-001/"


@pytest.fixture
def daytime(time_machine):
    """Inside every sending window, so the intro goes out at once instead of waiting for the morning."""
    time_machine.move_to(NOON_IN_BOSTON, tick=False)


def shown_consent(content: bytes) -> str:
    """The consent wording as the page shows it (the checkbox's label)."""
    match = re.search(r'<label for="id_sms_consent" id="consent-text">(.*?)</label>', content.decode(), re.S)
    assert match, "no consent label"
    return html.unescape(match.group(1)).strip()


def good(**overrides):
    return {
        "name": "Jane Doe",
        "phone": "(617) 555-0123",
        "email": "Jane@Example.com",
        "service_of_interest": "Botox",
        "message": "Do you have anything Thursday?",
        "sms_consent": "on",
        "website": "",
        **overrides,
    }


def outcome(name: str) -> float:
    return REGISTRY.get_sample_value("medspa_lead_submissions_total", {"outcome": name}) or 0.0


# --- The page --------------------------------------------------------------------------------------------------


def test_form_has_labelled_fields_services_and_the_consent_wording(client, demo):
    Service.objects.filter(clinic=demo, name="Kybella").update(active=False)
    response = client.get(URL)
    assert response.status_code == 200
    body = response.content.decode()
    for field, label in [
        ("name", "Name"),
        ("phone", "Mobile phone"),
        ("email", "Email (optional)"),
        ("service_of_interest", "Service of interest"),
        ("message", "Message (optional)"),
    ]:
        assert f'<label for="id_{field}">{label}</label>' in body
        assert f'id="id_{field}"' in body
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in body
    # The clinic's active services, and "Not sure".
    assert '<option value="" selected>Not sure</option>' in body
    assert '<option value="Botox">Botox</option>' in body and "Kybella" not in body

    consent = shown_consent(response.content)
    assert consent == consent_wording(demo)
    for needed in (
        "Glow Demo Med Spa",
        "Message frequency varies",
        "Msg & data rates may apply",
        "Reply STOP to opt out",
        "HELP for help",
        "Consent is not a condition of purchase",
    ):
        assert needed in consent
    assert 'type="checkbox" name="sms_consent"' in body and "checked" not in body  # never pre-ticked

    # The honeypot is out of sight and out of the accessibility tree; nothing is loaded from elsewhere.
    assert '<div class="hp" aria-hidden="true">' in body and 'name="website"' in body
    assert not re.search(r'(src|href)="(https?:)?//', body)


def test_both_paths_answer_without_a_redirect(client, demo, daytime):
    assert client.get(URL.rstrip("/")).status_code == 200
    response = client.post(URL.rstrip("/"), good())
    assert response.status_code == 200 and "Thank you" in response.content.decode()
    assert Lead.objects.count() == 1


@pytest.mark.parametrize("url", ["/l/no-such-clinic/", "/l/no-such-clinic", "/l/no-such-clinic/embed.js"])
def test_unknown_clinic_is_404(client, db, url):
    assert client.get(url).status_code == 404


def test_inactive_clinic_is_404(client, demo):
    demo.active = False
    demo.save()
    assert client.get(URL).status_code == 404
    assert client.post(URL, good()).status_code == 404
    assert client.get(URL + "embed.js").status_code == 404
    assert not Lead.objects.exists()


# --- Submitting ------------------------------------------------------------------------------------------------


def test_submission_stores_the_lead_with_the_consent_shown_and_texts_the_intro(client, demo, daytime, sms_outbox):
    consent = shown_consent(client.get(URL).content)
    response = client.post(URL, good(), HTTP_USER_AGENT="Mozilla/5.0 (iPhone) test", REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    body = response.content.decode()
    assert "Thank you! Your request was sent." in body and "will text you soon" in body
    lead = Lead.objects.get()
    assert (lead.clinic, lead.name, lead.phone, lead.email) == (demo, "Jane Doe", PHONE, "jane@example.com")
    assert lead.service_of_interest.name == "Botox" and lead.message == "Do you have anything Thursday?"
    assert lead.source == Lead.Source.WEB_FORM
    assert lead.source_url == "http://127.0.0.1:8000/l/demo-clinic-001/"  # the hosted page itself
    assert lead.sms_consent and lead.consent_text == consent and lead.consent_at == NOON_IN_BOSTON
    assert (lead.consent_ip, lead.consent_user_agent) == ("203.0.113.9", "Mozilla/5.0 (iPhone) test")

    # The intro from the clinic's number, as the conversation's first message.
    assert [(m.to_number, m.body) for m in sms_outbox] == [(PHONE, demo.render_intro(web_lead=True))]
    assert Message.objects.get(kind="intro").conversation.origin == "web_lead"


def test_without_consent_the_lead_is_stored_and_not_texted(client, demo, daytime, sms_outbox):
    response = client.post(URL, good(sms_consent=""))
    assert response.status_code == 200 and "will contact you soon" in response.content.decode()
    lead = Lead.objects.get()
    assert (lead.sms_consent, lead.consent_text, lead.consent_at, lead.consent_ip) == (False, "", None, None)
    assert sms_outbox == [] and not Message.objects.exists()


def test_not_sure_stores_no_service(client, demo, daytime):
    assert client.post(URL, good(service_of_interest="")).status_code == 200
    lead = Lead.objects.get()
    assert (lead.service_of_interest, lead.service_text) == (None, "")


def test_pressing_send_twice_or_reloading_the_thank_you_page_makes_one_lead(client, demo, daytime, sms_outbox):
    assert client.post(URL, good()).status_code == 200
    assert client.post(URL, good()).status_code == 200
    assert Lead.objects.count() == 1 and len(sms_outbox) == 1


def test_source_url_is_the_embedding_page_when_embed_js_passes_it(client, demo, daytime):
    page = "https://glow-demo-medspa.example.com/book?utm_source=google"
    response = client.get(URL, {"embed": "1", "src": page})
    assert f'name="source_url" value="{html.escape(page)}"' in response.content.decode()
    client.post(f"{URL}?embed=1", good(source_url=page))
    assert Lead.objects.get().source_url == page


@pytest.mark.parametrize(
    "src", ["javascript:alert(1)", "ftp://example.com/x", "not a url", "https://example.com/" + "x" * 500]
)
def test_a_bad_source_url_is_dropped(client, demo, daytime, src):
    assert f'value="{html.escape(src)}"' not in client.get(URL, {"embed": "1", "src": src}).content.decode()
    assert client.post(URL, good(source_url=src)).status_code == 200
    assert Lead.objects.get().source_url == "http://127.0.0.1:8000/l/demo-clinic-001/"


def test_invalid_phone_re_renders_with_the_error_and_what_was_typed(client, demo):
    response = client.post(URL, good(phone="12345", email="jane@example.com"))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a valid phone number, e.g. (617) 555-0123." in body
    # The error is tied to the field for screen readers, and listed at the top.
    assert '<p class="error" id="id_phone_error">' in body
    phone_input = re.search(r"<input[^>]*id=\"id_phone\"[^>]*>", body).group(0)
    assert 'aria-invalid="true"' in phone_input
    assert 'aria-describedby="id_phone_helptext id_phone_error"' in phone_input
    assert 'value="12345"' in phone_input
    assert 'href="#id_phone"' in body
    # Everything else typed is kept.
    assert 'value="Jane Doe"' in body and 'value="jane@example.com"' in body
    assert "Do you have anything Thursday?" in body
    assert '<option value="Botox" selected>Botox</option>' in body
    assert re.search(r'<input type="checkbox" name="sms_consent"[^>]*checked', body)
    name_input = re.search(r"<input[^>]*id=\"id_name\"[^>]*>", body).group(0)
    assert "aria-invalid" not in name_input
    assert not Lead.objects.exists()


def test_every_bad_field_is_reported_at_once(client, demo):
    response = client.post(URL, good(name="  ", phone="", email="not-an-email", message="x" * 1601))
    assert response.status_code == 400
    body = response.content.decode()
    for message in (
        "Enter your name.",
        "Enter a mobile phone number.",
        "Enter a valid email address.",
        "Keep the message to 1600 characters or fewer.",
    ):
        assert message in body
    assert not Lead.objects.exists()


def test_lead_create_has_the_last_word(client, demo, monkeypatch):
    """What the form lets through, lead_create still checks: its errors land on the fields."""
    monkeypatch.setattr("leads.forms.normalize_phone", lambda raw: raw)
    response = client.post(URL, good(phone="+1 555 555 0100"))
    assert response.status_code == 400
    assert "That phone number does not exist; check the digits." in response.content.decode()
    assert 'id="id_phone_error"' in response.content.decode()


def test_a_service_not_on_the_list_is_refused(client, demo):
    response = client.post(URL, good(service_of_interest="Free Botox for everyone"))
    assert response.status_code == 400
    assert "Choose a service from the list." in response.content.decode()


# --- Spam and abuse --------------------------------------------------------------------------------------------


def test_filled_honeypot_looks_like_success_and_stores_nothing(client, demo, daytime, sms_outbox):
    before = outcome("honeypot")
    response = client.post(URL, good(website="https://cheap-pills.example"))
    assert response.status_code == 200
    assert "Thank you! Your request was sent." in response.content.decode()
    assert not Lead.objects.exists() and sms_outbox == [] and not Message.objects.exists()
    assert outcome("honeypot") == before + 1


def test_rate_limit_per_ip_and_clinic(client, demo, daytime, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"leads": "2/minute"}}
    other = make_clinic("other-clinic")
    before = outcome("throttled")
    for n in range(2):
        response = client.post(URL, good(phone=f"+1617555{n:04d}"), REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 200
    response = client.post(URL, good(phone="+16175559999", name="Sam Roe"), REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 429
    assert 0 < int(response.headers["Retry-After"]) <= 60
    body = response.content.decode()
    assert "Too many requests were sent from your network" in body and "wait 1 minute" in body
    assert "or call us at (617) 555-0142." in body  # the clinic's phone, to call instead
    assert 'value="Sam Roe"' in body  # what was typed is still there
    assert outcome("throttled") == before + 1
    # Another address, or the same address on another clinic's form, is not affected.
    assert client.post(URL, good(phone="+16175559998"), REMOTE_ADDR="198.51.100.8").status_code == 200
    other_url = f"/l/{other.slug}/"
    response = client.post(other_url, good(phone="+16175559997", service_of_interest=""), REMOTE_ADDR="198.51.100.7")
    assert response.status_code == 200
    assert Lead.objects.count() == 4
    # Showing the form is not a submission.
    assert client.get(URL, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_rate_limit_window_passes(client, demo, settings, time_machine):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"leads": "1/minute"}}
    time_machine.move_to(NOON_IN_BOSTON, tick=False)
    assert client.post(URL, good()).status_code == 200
    assert client.post(URL, good(phone="+16175550124")).status_code == 429
    time_machine.move_to(datetime(2026, 11, 24, 17, 1, 1, tzinfo=UTC), tick=False)
    assert client.post(URL, good(phone="+16175550124")).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "cross-site"},
        {"HTTP_SEC_FETCH_SITE": "same-site"},
        {"HTTP_ORIGIN": "https://evil.example.net"},
        {"HTTP_ORIGIN": "null"},
    ],
)
def test_a_post_from_another_sites_page_is_refused(client, demo, daytime, headers):
    response = client.post(URL, good(), **headers)
    assert response.status_code == 403
    assert "can only be sent from its own page" in response.content.decode()
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [
        {"HTTP_SEC_FETCH_SITE": "same-origin", "HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "http://testserver"},
        {"HTTP_ORIGIN": "http://127.0.0.1:8000"},  # PUBLIC_BASE_URL
        {},  # no browser headers at all: not a forged browser request
    ],
)
def test_a_post_from_the_form_itself_is_accepted(client, demo, daytime, headers):
    assert client.post(URL, good(), **headers).status_code == 200
    assert Lead.objects.count() == 1


def test_no_patient_data_in_logs(client, demo, daytime, caplog):
    caplog.set_level("DEBUG")
    client.post(URL, good())
    client.post(URL, good(phone="12345"))
    client.post(URL, good(website="spam"))
    text = log_text(caplog)
    assert "lead created" in text
    for secret in ("Jane", "617", "5550123", "example.com", "Thursday"):
        assert secret not in text


# --- Framing and the embed script ------------------------------------------------------------------------------


def test_the_form_is_frameable_and_the_admin_is_not(client, demo, daytime):
    assert "X-Frame-Options" not in client.get(URL).headers
    assert "X-Frame-Options" not in client.get(URL + "?embed=1").headers
    assert "X-Frame-Options" not in client.post(URL + "?embed=1", good()).headers
    assert "X-Frame-Options" not in client.post(URL, good(phone="1")).headers
    assert client.get("/admin/login/").headers["X-Frame-Options"] == "DENY"
    assert client.get("/api/docs").headers["X-Frame-Options"] == "DENY"


def test_embedded_page_has_no_chrome_and_reports_its_height(client, demo):
    standalone = client.get(URL).content.decode()
    embedded = client.get(URL, {"embed": "1"}).content.decode()
    assert "<h1>Request an appointment</h1>" in standalone and "postMessage" not in standalone
    assert "<h1>" not in embedded and '<body class="embed">' in embedded
    assert "medspa-lead-form:height" in embedded
    # It posts back to itself, still embedded.
    assert '<form method="post"' in embedded and "action=" not in embedded


def test_embed_script(client, demo, settings):
    settings.PUBLIC_BASE_URL = "https://frontdesk.example.com"
    response = client.get(URL + "embed.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/javascript; charset=utf-8"
    assert set(response.headers["Cache-Control"].split(", ")) == {"public", "max-age=3600"}
    script = response.content.decode()
    assert 'var FORM_URL = "https://frontdesk.example.com/l/demo-clinic-001/";' in script
    assert 'var FORM_ORIGIN = "https://frontdesk.example.com";' in script
    assert '"/l/demo-clinic-001/embed.js"' in script
    assert 'FORM_URL + "?embed=1"' in script and '"&src=" + encodeURIComponent(page)' in script
    assert "insertBefore(frame, script)" in script
    assert client.post(URL + "embed.js").status_code == 405


def test_clinic_name_cannot_break_out_of_the_embed_script(client, db):
    make_clinic("tricky", name='Tricky"; alert(1); //</script>')
    script = client.get("/l/tricky/embed.js").content.decode()
    assert "</script>" not in script
    assert 'var TITLE = "Appointment request form: Tricky\\"; alert(1); //\\u003c/script\\u003e";' in script


# --- In a real browser -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_form_in_headless_chromium_on_a_phone(live_server, page, demo, settings, sms_outbox):
    settings.PUBLIC_BASE_URL = live_server.url
    page.set_viewport_size({"width": 375, "height": 740})
    with time_machine.travel(NOON_IN_BOSTON, tick=True):
        page.goto(f"{live_server.url}{URL}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375  # nothing wider than the phone

        # A bad number first: the error is announced and tied to the field.
        page.get_by_label("Name", exact=True).fill("Jane Doe")
        page.get_by_label("Mobile phone").fill("555")
        page.get_by_role("button", name="Send request").click()
        expect(page.locator("#error-summary")).to_be_focused()
        expect(page.get_by_label("Mobile phone")).to_have_attribute("aria-invalid", "true")
        expect(page.get_by_label("Name", exact=True)).to_have_value("Jane Doe")

        phone = page.get_by_label("Mobile phone")
        phone.fill("(617) 555-0123")
        phone.focus()
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") == "solid"  # visible focus
        page.get_by_label("Email (optional)").fill("jane@example.com")
        page.get_by_label("Service of interest").select_option("Botox")
        page.get_by_label("Message (optional)").fill("Thursday afternoon?")
        page.get_by_label("I agree to receive appointment texts from Glow Demo Med Spa").check()
        page.get_by_role("button", name="Send request").click()
        expect(page.locator("#thanks")).to_contain_text("Thank you! Your request was sent.")

    lead = Lead.objects.get()
    assert (lead.name, lead.phone, lead.service_of_interest.name) == ("Jane Doe", PHONE, "Botox")
    assert lead.sms_consent and lead.consent_text == consent_wording(demo)
    assert lead.consent_ip == "127.0.0.1" and "Chrome" in lead.consent_user_agent
    assert [(m.to_number, m.body) for m in sms_outbox] == [(PHONE, demo.render_intro(web_lead=True))]


@pytest.fixture
def clinic_site(other_site):
    """A clinic's own website: a static page on 127.0.0.1 (its own port), while the form is on live_server's
    localhost. Another site, so the frame gets no first-party cookies; a real server rather than a Playwright
    route, because Chromium refuses a page it thinks is public access to the loopback address the form is on."""
    return other_site


def test_embed_script_on_another_sites_page(live_server, page, demo, settings, sms_outbox, clinic_site):
    """The clinic pastes the script tag into its page; the form appears there and works."""
    settings.PUBLIC_BASE_URL = live_server.url
    pages, site = clinic_site
    demo.allowed_origins = [site]  # the form's frame-ancestors: our origin and the clinic's sites only
    demo.save()
    pages["/book"] = (
        '<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>Glow</title></head><body><h1>Glow: book a visit</h1>"
        f'<script src="{live_server.url}{URL}embed.js" async></script>'
        "<footer>Glow Demo Med Spa, Boston</footer></body></html>"
    )
    page.set_viewport_size({"width": 375, "height": 740})
    with time_machine.travel(NOON_IN_BOSTON, tick=True):
        page.goto(f"{site}/book?utm_source=google")
        frame = page.locator("iframe[title='Appointment request form: Glow Demo Med Spa']")
        expect(frame).to_be_visible()
        # Where the script tag is: after the heading, before the footer.
        assert page.evaluate("document.querySelector('iframe').previousElementSibling.tagName") == "H1"
        assert page.evaluate("document.querySelector('iframe').nextElementSibling.tagName") == "SCRIPT"
        form = page.frame_locator("iframe")
        expect(form.get_by_label("Name", exact=True)).to_be_visible()
        # The frame reports its height and the page sizes it to fit.
        page.wait_for_function("document.querySelector('iframe').style.height !== '760px'")
        inner = frame.content_frame.locator("html").evaluate("e => e.getBoundingClientRect().height")
        assert abs(frame.bounding_box()["height"] - inner) <= 2
        assert frame.bounding_box()["width"] <= 375

        form.get_by_label("Name", exact=True).fill("Jane Doe")
        form.get_by_label("Mobile phone").fill("617-555-0123")
        form.get_by_label("I agree to receive appointment texts").check()
        form.get_by_role("button", name="Send request").click()
        expect(form.locator("#thanks")).to_contain_text("Thank you! Your request was sent.")

    lead = Lead.objects.get()
    assert lead.source_url == f"{site}/book?utm_source=google"
    assert lead.sms_consent and lead.consent_text == consent_wording(demo)
    assert [(m.to_number, m.body) for m in sms_outbox] == [(PHONE, demo.render_intro(web_lead=True))]


def test_the_form_sets_no_cookie(demo):
    """The form sets no cookie: nothing for a browser to withhold from a third-party frame."""
    client = Client(enforce_csrf_checks=True)
    response = client.get(URL + "?embed=1")
    assert not response.cookies
    assert client.post(URL + "?embed=1", good(phone="1")).status_code == 400  # reaches validation, not a 403


def test_the_form_takes_a_lead_while_the_cache_is_down(client, demo, daytime, settings, caplog):
    """Redis down (nothing listens on port 1): the form's rate limit is skipped and the patient's lead is stored."""
    settings.CACHES = DEAD_CACHE
    response = client.post(URL, good())
    assert response.status_code == 200
    assert Lead.objects.count() == 1
    assert "lead form rate limit skipped: the cache is unavailable (ConnectionError)" in caplog.text
