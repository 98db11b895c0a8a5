"""After every scenario of the run: no patient's number, name, e-mail or text in any app process's log (gunicorn's
access and error lines, Django, the Celery workers, beat), from the first line of the run to the last.

What the run used is collected from the database at the end of each scenario (tests/e2e/logscan.py, the plugin
loaded below), so scenarios added in any file are covered without being listed here; this test runs last. First it
plays the requests that used to leak (the outside probe's): admin searches by number and by name, the lead form's
``src=``, an API query string, oversized and overstuffed bodies, a foreign Host header.
"""

import time

import httpx
import pytest
from django.contrib.auth.models import Permission, User

from leads.models import Lead
from messaging.models import Message

pytest.register_assert_rewrite("tests.e2e.logscan")

from .flow import Expected, FrontDesk, wait_for  # noqa: E402
from .logscan import USED, PatientData, app_log_hits, harvest, runs_last  # noqa: E402

pytest_plugins = ["tests.e2e.logscan"]  # its hooks: harvest each scenario's data, run the test below last
pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

NAME = "Alice Anderson"
EMAIL = "alice.anderson@example.com"
TEXT = "Hi, it's Alice Anderson again: my lips are still swollen after the filler, is that normal?"


def _settled(stack, seconds=15):
    """The workers have done what was queued (and written their log lines)."""
    wait_for(lambda: stack.queued() == 0, "the queues to empty", seconds)
    time.sleep(1.0)


@runs_last
def test_no_patient_number_name_or_text_reaches_any_process_log(
    clinic_factory, patient_factory, e2e, transcript, request
):
    """No patient data in the app's logs over the whole run

    After every other scenario: the lines the outside probe found (admin searches by number and name, the form's
    src=, an API query string, oversized and overstuffed bodies, a foreign Host) are played once more, then every
    app process's log, from the start of the run, is searched for every number, name, e-mail and text that any
    scenario's patients used."""
    setup = clinic_factory("builtin", label="Logs")
    patient = patient_factory(setup, name=NAME)
    phone = patient.phone
    national = phone[2:]
    web = httpx.Client(base_url=e2e.base_url, timeout=15)
    try:
        # The patient texts (their name and a second number in it), and gets an answer.
        assert patient.miss_call() == [Expected(setup).intro()]
        patient.say(f"{TEXT} Call me at {national[:3]}-{national[3:6]}-{national[6:]}")
        # The hosted form: from an embedding page whose address carries the patient's e-mail, then sent.
        slug = setup.clinic.slug
        assert web.get(f"/l/{slug}/", params={"embed": "1", "src": f"https://spa.example.com/?e={EMAIL}"}).is_success
        form = {"name": NAME, "phone": phone, "email": EMAIL, "message": TEXT, "website": ""}
        assert web.post(f"/l/{slug}/", data=form).status_code == 200
        # The API, with a query string of its own.
        body = {"clinic": slug, "name": NAME, "phone": phone, "email": EMAIL, "message": TEXT}
        response = web.post("/api/leads", params={"search": NAME, "phone": phone}, json=body)
        assert response.status_code in (200, 201), response.text[:300]
        # Too large, too many fields, a foreign Host: refused cleanly, no traceback.
        assert web.post(f"/l/{slug}/", data={**form, "message": TEXT * 400}).status_code == 413
        assert web.post(f"/l/{slug}/", data={**form, **{f"f{i}": NAME for i in range(40)}}).status_code == 400
        assert web.post("/api/leads", json={**body, "message": "x" * 1601}).status_code == 400
        assert web.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
        # Staff search the admin by the patient's number and name (the query string is in the request line).
        desk = FrontDesk(e2e, setup, transcript)
        User.objects.get(username=desk.username).user_permissions.add(Permission.objects.get(codename="view_lead"))
        try:
            desk.log_in()
            for q in (phone, NAME, EMAIL):
                assert desk.http.get("/admin/leads/lead/", params={"q": q}).status_code == 200
        finally:
            desk.close()
    finally:
        web.close()
    _settled(e2e)
    assert Message.objects.filter(direction=Message.Direction.INBOUND, from_number=phone).exists()
    assert Lead.objects.filter(clinic=setup.clinic).count() == 1  # the form and the API: one person, one lead

    data = request.config.stash.setdefault(USED, PatientData())
    harvest(data, request.node.nodeid)
    assert not data.problems, data.problems
    assert phone in data.numbers and NAME in data.names and EMAIL in data.emails and TEXT in data.texts

    hits = app_log_hits(e2e, data)
    assert not hits, f"patient data in the logs ({len(hits)} lines):\n" + "\n".join(hits[:30])
    # The refusals above were WARNING lines, never tracebacks or ERROR lines.
    e2e.assert_no_errors()
    transcript.check(
        f"{len(data.scenarios)} scenario(s) of this run: {len(data.numbers)} patient numbers, {len(data.names)} "
        f"names, {len(data.emails)} e-mails and {len(data.texts)} texts, none of them in any line of "
        f"{', '.join(n for n in e2e.processes if n not in ('redis', 'telnyx', 'square', 'nextech', 'openai'))}."
    )
