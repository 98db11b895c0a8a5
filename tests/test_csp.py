"""Content-Security-Policy on every page (django-csp), the guarded /metrics, and the staff-only API schema and docs.

The policy is checked twice: its header here, and in headless Chromium, where the admin, the lead form (on its own
and inside another site's page), the sandbox checkout and Swagger UI must work with no violation reported."""

import re
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.checks import run_checks
from django.urls import reverse
from playwright.sync_api import expect

from bookings.services import booking_hold
from conversation.models import Conversation
from emr.models import Provider
from leads.services import lead_create
from medspa.models import Service
from payments import services as payments

from .conftest import make_clinic, make_staff

pytest_plugins = ["tests.browser"]

URL = "/l/demo-clinic-001/"
PASSWORD = "a-long-test-password-1"
MONDAY_10AM_BOSTON = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def policy(response) -> dict[str, list[str]]:
    """The Content-Security-Policy header as {directive: [sources]}."""
    header = response.headers["Content-Security-Policy"]
    directives = [part.strip().split() for part in header.split(";") if part.strip()]
    return {name: sources for name, *sources in directives}


BASE = {
    "default-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
}


def assert_baseline(found, *, frame_ancestors=("'none'",)):
    for name, sources in BASE.items():
        assert found[name] == sources, name
    for name in ("script-src", "style-src"):
        assert found[name][0] == "'self'" and all(s.startswith("'nonce-") for s in found[name][1:]), found[name]
    assert found["frame-ancestors"] == list(frame_ancestors)
    flat = " ".join(" ".join(v) for v in found.values())
    assert "unsafe-eval" not in flat and "unsafe-inline" not in flat and "*" not in flat.split()


def a_deposit(clinic):
    booking = booking_hold(
        clinic=clinic,
        service=Service.objects.get(clinic=clinic, name="Botox"),
        provider=Provider.objects.get(clinic=clinic, name="Dr. Sarah Smith"),
        start=datetime(2026, 11, 24, 11, tzinfo=clinic.tz),
        patient_phone="+16175550123",
        patient_name="Jane Doe",
    )
    return payments.deposit_request(booking_id=booking.pk)


# --- The header ----------------------------------------------------------------------------------------------------


def test_every_page_has_the_policy_and_only_the_lead_form_may_be_framed(client, admin_user, demo):
    demo.allowed_origins = ["https://book.glow.example", "https://www.glow-demo-medspa.example.com/any/path"]
    demo.save()
    other = make_clinic("other-clinic", website="https://other.example.org")

    with time_machine.travel(MONDAY_10AM_BOSTON, tick=True):
        checkout = reverse("payments:sandbox-checkout", args=[a_deposit(demo).public_token])
    anonymous = ["/admin/login/", checkout, "/healthz", "/readyz", "/metrics", "/api/schema", "/api/docs"]
    for url in anonymous:
        assert_baseline(policy(client.get(url)))
    client.force_login(admin_user)
    for url in ["/admin/", "/admin/leads/lead/", "/api/docs", "/l/nope/"]:  # the last a 404
        assert_baseline(policy(client.get(url)))
    client.logout()

    form = policy(client.get(URL))
    ours = ["'self'", "https://book.glow.example", "https://glow-demo-medspa.example.com"]
    assert_baseline(form, frame_ancestors=[*ours, "https://www.glow-demo-medspa.example.com"])
    assert_baseline(policy(client.get(URL + "?embed=1")), frame_ancestors=form["frame-ancestors"])
    assert_baseline(policy(client.post(URL + "?embed=1", {"name": ""})), frame_ancestors=form["frame-ancestors"])
    # Each clinic's form is frameable by its own sites only.
    assert policy(client.get(f"/l/{other.slug}/"))["frame-ancestors"] == ["'self'", "https://other.example.org"]


def test_inline_style_and_script_carry_this_responses_nonce(client, demo):
    first, second = client.get(URL + "?embed=1"), client.get(URL + "?embed=1")
    nonces = []
    for response in (first, second):
        found = policy(response)
        nonce = found["script-src"][1].removeprefix("'nonce-").removesuffix("'")
        assert found["style-src"] == found["script-src"]
        body = response.content.decode()
        # Every inline <style> and <script> has it (the form's page has nothing else inline).
        inline = re.findall(r"<(?:style|script)\b[^>]*>", body)
        assert inline == [f'<style nonce="{nonce}">', f'<script nonce="{nonce}">']
        assert " style=" not in body and not re.search(r"\son[a-z]+=", body)
        nonces.append(nonce)
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 22

    # A page without inline code gets no nonce at all.
    assert policy(client.get("/admin/login/"))["script-src"] == ["'self'"]


# --- In Chromium ---------------------------------------------------------------------------------------------------


def wait_for(page, condition, timeout_ms=5000):
    for _ in range(timeout_ms // 50):
        if condition():
            return
        page.wait_for_timeout(50)
    raise AssertionError("timed out")


def sign_in(page, base, username):
    page.goto(f"{base}/admin/login/?next=/admin/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{base}/admin/")


@pytest.mark.django_db(transaction=True)
def test_admin_in_chromium_without_violations(live_server, page, csp_violations, demo, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    make_staff("desk", demo)
    lead, _ = lead_create(clinic=demo, name="Pat Doe", phone="+16175550123")
    conversation = Conversation.objects.create(clinic=demo, patient_phone="+16175550123", origin="web_lead")

    page.goto(f"{live_server.url}/admin/login/")
    expect(page.locator("#login-form")).to_be_visible()
    sign_in(page, live_server.url, "desk")
    expect(page.locator("#content")).to_contain_text("Leads")
    assert page.evaluate("getComputedStyle(document.querySelector('#header')).display") == "flex"  # base.css

    page.goto(f"{live_server.url}/admin/leads/lead/")
    expect(page.locator("#result_list")).to_contain_text("Pat Doe")
    page.locator("#action-toggle").check()  # actions.js: "select all" ticks the rows
    expect(page.locator("input.action-select").first).to_be_checked()

    page.goto(f"{live_server.url}/admin/leads/lead/{lead.pk}/change/")
    expect(page.get_by_label("Name:")).to_have_value("Pat Doe")
    page.get_by_label("Name:").fill("Pat Smith")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")

    page.goto(f"{live_server.url}/admin/conversation/conversation/{conversation.pk}/change/")
    expect(page.get_by_role("heading", name="Reply to the patient")).to_be_visible()

    assert csp_violations == []
    lead.refresh_from_db()
    assert lead.name == "Pat Smith"


@pytest.mark.django_db(transaction=True)
def test_lead_form_in_chromium_without_violations(live_server, page, csp_violations, demo, settings, sms_outbox):
    settings.PUBLIC_BASE_URL = live_server.url
    page.goto(f"{live_server.url}{URL}")
    assert page.evaluate("getComputedStyle(document.querySelector('main')).maxWidth") == "512px"  # its <style>
    page.get_by_label("Name", exact=True).fill("Jane Doe")
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#error-summary")).to_be_focused()  # the inline script that focuses the summary ran
    page.get_by_label("Mobile phone").fill("(617) 555-0123")
    page.get_by_role("button", name="Send request").click()
    expect(page.locator("#thanks")).to_contain_text("Thank you! Your request was sent.")
    assert csp_violations == []


@pytest.mark.django_db(transaction=True)
def test_lead_form_embedded_in_the_clinics_site(live_server, page, csp_violations, demo, settings, other_site):
    """On a site the clinic lists the form is framed, sized (its inline script reports its height) and sends."""
    settings.PUBLIC_BASE_URL = live_server.url
    pages, site = other_site
    demo.allowed_origins = [site]
    demo.save()
    pages["/book"] = f'<!doctype html><h1>Glow</h1><script src="{live_server.url}{URL}embed.js" async></script>'

    with time_machine.travel(MONDAY_10AM_BOSTON, tick=True):
        page.goto(f"{site}/book")
        form = page.frame_locator("iframe")
        expect(form.get_by_label("Name", exact=True)).to_be_visible()
        page.wait_for_function("document.querySelector('iframe').style.height !== '760px'")
        form.get_by_label("Name", exact=True).fill("Jane Doe")
        form.get_by_label("Mobile phone").fill("617-555-0123")
        form.get_by_role("button", name="Send request").click()
        expect(form.locator("#thanks")).to_contain_text("Thank you! Your request was sent.")
    assert csp_violations == []


@pytest.mark.django_db(transaction=True)
def test_a_site_the_clinic_does_not_list_cannot_frame_the_form(live_server, page, csp_violations, demo, other_site):
    """The other side of frame-ancestors (and of 'none' everywhere else), and proof that the collector hears it."""
    pages, site = other_site
    pages["/copy"] = (
        f'<!doctype html><iframe src="{live_server.url}{URL}?embed=1"></iframe>'
        f'<iframe src="{live_server.url}/admin/login/"></iframe>'
    )
    page.goto(f"{site}/copy")
    refused = ["chrome-error://chromewebdata/"] * 2  # Chromium's error page in both frames
    wait_for(page, lambda: [frame.url for frame in page.frames[1:]] == refused)
    wait_for(page, lambda: len([v for v in csp_violations if "frame-ancestors" in v]) == 2)
    reported = " ".join(csp_violations)
    assert "frame-ancestors 'self' https://glow-demo-medspa.example.com" in reported
    assert "frame-ancestors 'none'" in reported


@pytest.mark.django_db(transaction=True)
def test_checkout_in_chromium_without_violations(live_server, page, csp_violations, demo, settings, sms_outbox):
    settings.PUBLIC_BASE_URL = live_server.url
    with time_machine.travel(MONDAY_10AM_BOSTON, tick=True):
        payment = a_deposit(demo)
        page.goto(payment.link_url)
        assert page.evaluate("getComputedStyle(document.querySelector('#pay')).cursor") == "pointer"  # its <style>
        assert csp_violations == []

        # An injected inline script (no nonce) is refused and reported.
        page.evaluate("""() => { const s = document.createElement("script");
                                 s.textContent = "window.injected = true"; document.head.append(s); }""")
        wait_for(page, lambda: any("script-src" in v for v in csp_violations))
        assert page.evaluate("window.injected === undefined")
        csp_violations.clear()

        page.click("#pay")
        page.wait_for_url("**/thanks/")
        assert "is confirmed" in page.inner_text("#state")
    assert csp_violations == []


@pytest.mark.django_db(transaction=True)
def test_swagger_ui_in_chromium_without_violations(live_server, page, csp_violations, demo, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    make_staff("desk", demo)
    page.goto(f"{live_server.url}/api/docs")
    expect(page).to_have_url(re.compile(r"/admin/login/\?next=/api/docs$"))  # signed out: the admin's login first
    page.get_by_label("Username").fill("desk")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{live_server.url}/api/docs")

    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Medspa front desk API")
    expect(page.locator(".opblock-summary-path", has_text="/api/clinics/{slug}/leads")).to_be_visible()
    operation = page.locator(".opblock-post", has_text="/api/leads")
    operation.locator(".opblock-summary").click()
    expect(operation.get_by_role("button", name="Try it out")).to_be_visible()
    assert csp_violations == []


# --- /metrics ------------------------------------------------------------------------------------------------------

TOKEN = "prometheus-scrape-token-0123456789abcdef"


def test_metrics_open_when_neither_guard_is_set(client, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    response = client.get("/metrics")
    assert response.status_code == 200 and b"django_http_requests" in response.content
    assert client.get("/metrics/").status_code == 404  # one path, as before


def test_metrics_token(client, db, settings):
    settings.METRICS_TOKEN = TOKEN
    for headers in ({}, {"HTTP_AUTHORIZATION": "Bearer wrong"}, {"HTTP_AUTHORIZATION": f"Token {TOKEN}"},
                    {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}x"}, {"HTTP_AUTHORIZATION": "Bearer "}):  # fmt: skip
        response = client.get("/metrics", **headers)
        assert response.status_code == 401, headers
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"django_http" not in response.content
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200 and b"django_http_requests" in response.content
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"bearer  {TOKEN}").status_code == 200


def test_metrics_token_is_compared_in_constant_time(client, db, settings, monkeypatch):
    import hmac

    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append((a, b)) or real(a, b))
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401
    assert calls == [(b"nope", TOKEN.encode())]


def test_metrics_allowed_ips(client, db, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5", "192.168.10.0/24", "2001:db8::/32"]
    for ip, status in [("10.0.0.5", 200), ("192.168.10.77", 200), ("2001:db8::1", 200), ("10.0.0.6", 403),
                       ("127.0.0.1", 403)]:  # fmt: skip
        assert client.get("/metrics", REMOTE_ADDR=ip).status_code == status, ip
    # X-Forwarded-For counts only behind TRUSTED_PROXY_COUNT proxies (medspa.http.client_ip).
    assert client.get("/metrics", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR="10.0.0.5").status_code == 403
    settings.TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR="10.0.0.5").status_code == 200
    forged = "10.0.0.5, 203.0.113.9"  # the client wrote the first entry; our proxy appended the second
    assert client.get("/metrics", REMOTE_ADDR="172.16.0.2", HTTP_X_FORWARDED_FOR=forged).status_code == 403


def test_metrics_with_both_guards_needs_both(client, db, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = TOKEN, ["10.0.0.0/8"]
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", **bearer).status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9", **bearer).status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 401


def test_a_bad_allowed_ip_shuts_metrics_and_fails_the_check(client, db, settings):
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5", "10.0.0.0/33"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 403
    errors = [m for m in run_checks() if m.id == "medspa.E005"]
    assert len(errors) == 1 and "10.0.0.0/33" in errors[0].msg
    settings.METRICS_ALLOWED_IPS = ["10.0.0.5"]
    assert not [m for m in run_checks() if m.id == "medspa.E005"]


@pytest.mark.parametrize(
    ("debug", "token", "ips", "warned"),
    [
        (False, "", [], True),
        (False, TOKEN, [], False),
        (False, "", ["10.0.0.0/8"], False),
        (True, "", [], False),  # development: open, as before
    ],
)
def test_deploy_check_warns_about_an_unguarded_metrics(settings, debug, token, ips, warned):
    settings.DEBUG, settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = debug, token, ips
    found = [m for m in run_checks(include_deployment_checks=True) if m.id == "medspa.W005"]
    assert bool(found) == warned
    assert not [m for m in run_checks() if m.id == "medspa.W005"]  # a deployment check only


# --- The API schema and its page -----------------------------------------------------------------------------------

STAFF_PATHS = {"/api/clinics/{slug}/leads", "/api/clinics/{slug}/bookings", "/api/clinics/{slug}/conversations"}
OPENAPI_JSON = {"HTTP_ACCEPT": "application/vnd.oai.openapi+json"}


def schema_paths(client, **headers):
    response = client.get("/api/schema", **OPENAPI_JSON, **headers)
    assert response.status_code == 200, response.status_code
    return set(response.json()["paths"])


def test_schema_and_docs_are_for_staff(client, token_client, db, settings):
    settings.API_DOCS_PUBLIC = False
    assert client.get("/api/schema", **OPENAPI_JSON).status_code == 401
    docs = client.get("/api/docs")
    assert docs.status_code == 302 and docs["Location"] == "/admin/login/?next=/api/docs"

    clinic = make_clinic("clinic-a")
    staff = make_staff("desk", clinic)
    assert {"/api/leads", *STAFF_PATHS} <= schema_paths(token_client(staff))
    client.force_login(staff)
    assert {"/api/leads", *STAFF_PATHS} <= schema_paths(client)
    assert b"swagger-ui" in client.get("/api/docs").content

    # A signed-in user who is not staff is refused, by session or by token.
    outsider = make_staff("outsider", clinic)
    outsider.is_staff = False
    outsider.save()
    assert token_client(outsider).get("/api/schema", **OPENAPI_JSON).status_code == 403
    client.force_login(outsider)
    assert client.get("/api/schema", **OPENAPI_JSON).status_code == 403
    assert client.get("/api/docs").status_code == 403


def test_public_docs_show_others_only_what_they_may_call(client, db, settings):
    settings.API_DOCS_PUBLIC = True
    paths = schema_paths(client)
    assert "/api/leads" in paths and not paths & STAFF_PATHS
    assert not [p for p in paths if p.startswith("/api/clinics/")]
    docs = client.get("/api/docs")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content
    client.force_login(make_staff("desk"))
    assert schema_paths(client) >= STAFF_PATHS


def test_swagger_ui_asks_no_validator_and_loads_nothing_from_elsewhere(admin_client):
    body = admin_client.get("/api/docs").content.decode()
    assert '"validatorUrl": null' in body
    assert not re.search(r'(src|href)="(https?:)?//', body)
