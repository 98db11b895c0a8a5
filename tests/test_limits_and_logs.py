"""What an anonymous client can make the app read and log: bounded bodies on the public lead endpoints, no patient
data in any log line (gunicorn's access log, tracebacks, database errors, Django's and Celery's loggers), client
errors as WARNING lines without tracebacks, and the login lockout against password spraying."""

import io
import json
import logging
import re
import shlex
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from django.db.utils import DataError
from django.test import Client

from leads.models import Lead
from medspa.logging import ClientErrorFilter, RedactPatientDataFilter, filter_celery_handlers, redact

from .conftest import make_clinic, make_staff

ROOT = Path(__file__).resolve().parents[1]
FORM_URL = "/l/demo-clinic-001/"
API_URL = "/api/leads"
NUMBER = "+16175550142"
NUMBER_DIGITS = "6175550142"
NAME = "Alice Anderson"
SMS_TEXT = "my lips are swollen after the filler"


def spellings_of_the_number(text: str) -> list[str]:
    """Any way the patient's number could appear: E.164, digits, national formats, percent-encoded."""
    return [s for s in (NUMBER_DIGITS, "555-0142", "555.0142", "555 0142", "%2B1617") if s in text]


@pytest.fixture
def console():
    """What the app's log handler (LOGGING's console, with its filters) writes, as text."""
    handler = next(
        h for h in logging.getLogger().handlers if any(isinstance(f, RedactPatientDataFilter) for f in h.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous if previous is not None else sys.stderr)


def good_form(**overrides):
    return {
        "name": "Jane Doe",
        "phone": "(617) 555-0123",
        "email": "",
        "service_of_interest": "",
        "message": "Do you have anything Thursday?",
        "website": "",
        **overrides,
    }


# --- gunicorn's access log ---------------------------------------------------------------------------------------


def _env_default(text: str) -> str:
    """``${WEB_CONCURRENCY:-3}`` -> ``3``, as the shell and compose substitute it when unset."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", text)


def dockerfile_argv() -> list[str]:
    cmd = next(line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("CMD "))
    shell = json.loads(cmd.removeprefix("CMD "))
    assert shell[:2] == ["sh", "-c"]
    return shlex.split(_env_default(shell[2]).removeprefix("exec "))


def compose_argv() -> list[str]:
    web = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["web"]
    return [_env_default(str(part)) for part in web["command"]]


def e2e_argv() -> list[str]:
    from tests.e2e.stack import Stack

    command = Stack(tmp=Path("/nonexistent"), database_url="").gunicorn_command()
    assert command[1:3] == ["-m", "gunicorn"]
    return ["gunicorn", *command[3:]]


STARTS = {"Dockerfile": dockerfile_argv, "docker-compose.yml": compose_argv, "tests/e2e/stack.py": e2e_argv}


@pytest.fixture
def gunicorn_logger(monkeypatch):
    """gunicorn's Logger, configured from a command line exactly as gunicorn does it (the config file included),
    after the worker hook ran: ``build(argv)(path, query)`` is the access-log line for one request."""
    from gunicorn.app.wsgiapp import WSGIApplication

    built = []

    def build(argv, **overrides):
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.delenv("GUNICORN_CMD_ARGS", raising=False)
        cfg = WSGIApplication("%(prog)s [OPTIONS] [APP_MODULE]").cfg
        for name, value in overrides.items():
            cfg.set(name, value)
        log = cfg.logger_class(cfg)
        built.append(log)
        cfg.post_worker_init(SimpleNamespace(log=log, cfg=cfg))
        stream = io.StringIO()
        for handler in log.access_log.handlers:
            handler.setStream(stream)

        def render(path, query, referer=""):
            environ = {
                "REQUEST_METHOD": "GET",
                "RAW_URI": f"{path}?{query}",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "203.0.113.7",
                "HTTP_REFERER": referer,
                "HTTP_USER_AGENT": "Mozilla/5.0",
            }
            headers = [("REFERER", referer), ("USER-AGENT", "Mozilla/5.0")]
            response = SimpleNamespace(status="200 OK", sent=512, headers=[("Content-Type", "text/html")])
            log.access(response, headers, environ, timedelta(milliseconds=12))
            return stream.getvalue()

        return render

    yield build
    for name in ("gunicorn.access", "gunicorn.error"):  # the loggers are the process's: leave them as found
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
            logger.removeHandler(handler)
        for f in [f for f in logger.filters if isinstance(f, ClientErrorFilter | RedactPatientDataFilter)]:
            logger.removeFilter(f)


@pytest.mark.parametrize("start", STARTS)
def test_every_gunicorn_start_reads_the_config_file_and_keeps_its_access_log_on_stdout(start):
    argv = STARTS[start]()
    assert "--config=medspa/gunicorn.conf.py" in argv or argv[argv.index("--config") + 1] == "medspa/gunicorn.conf.py"
    assert "--access-logfile=-" in argv or argv[argv.index("--access-logfile") + 1] == "-"
    assert not any(a.startswith("--access-logformat") for a in argv)  # the config file's format is the one used


@pytest.mark.parametrize("start", STARTS)
@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/admin/leads/lead/", "q=%2B16175550142"),
        ("/admin/leads/lead/", "q=Alice+Anderson"),
        ("/api/clinics/demo/leads", "search=alice.anderson%40example.com&phone=617-555-0142"),
        ("/l/demo-clinic-001/", "embed=1&src=https%3A%2F%2Fspa.example.com%2Fbook%3Fname%3DAlice%2BAnderson"),
    ],
)
def test_an_access_log_line_for_a_query_with_a_number_or_a_name_carries_neither(gunicorn_logger, start, path, query):
    render = gunicorn_logger(STARTS[start]())
    line = render(path, query, referer=f"https://spa.example.com{path}?{query}")
    assert f'"GET {path} HTTP/1.1" 200 512' in line  # the request is still there, by path
    assert "?" not in line and query not in line
    assert "Alice" not in line and "Anderson" not in line and "alice" not in line
    assert not spellings_of_the_number(line), line


def test_the_access_log_is_redacted_in_the_worker_even_with_a_format_that_has_the_query(gunicorn_logger):
    """The second line: with gunicorn's default format (%(r)s, the referer) set on the command line, the worker's
    filters still cut the query strings and mask the numbers."""
    default = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    render = gunicorn_logger(dockerfile_argv(), access_log_format=default)
    line = render("/admin/leads/lead/", "q=Alice+Anderson&phone=%2B16175550142", referer="/admin/?q=Alice+Anderson")
    assert '"GET /admin/leads/lead/?[query] HTTP/1.1" 200' in line
    assert "Alice" not in line and not spellings_of_the_number(line), line


def test_gunicorn_errors_about_a_request_lose_its_query_string_in_the_worker(gunicorn_logger):
    gunicorn_logger(dockerfile_argv())
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    error_log = logging.getLogger("gunicorn.error")
    error_log.addHandler(handler)
    try:
        error_log.error("Error handling request %s", f"/l/demo/?phone={NUMBER}&name=Alice+Anderson")
    finally:
        error_log.removeHandler(handler)
    assert stream.getvalue() == "Error handling request /l/demo/?[query]\n"


# --- Tracebacks and database errors ----------------------------------------------------------------------------

# What psycopg puts in an exception's message: PostgreSQL's whole report. LINE quotes the SQL with its literals
# (client-side binding), DETAIL and CONTEXT quote about 40 characters of the value, which may span lines.
PG_REPORT = (
    "invalid input syntax for type json\n"
    f'LINE 1: ...payload") VALUES (\'{{"text": "Hi it\'s {NAME}, {SMS_TEXT} call {NUMBER}...\n'
    "                             ^\n"
    'DETAIL:  Token "Hi" is invalid.\n'
    f"CONTEXT:  JSON data, line 1: ...{NAME}, {SMS_TEXT}\n"
    "call me at (617) 555-0142"
)


class PsycopgStyleError(Exception):
    """Like psycopg.Error: the message is the report above, ``diag.message_primary`` its first line."""

    def __init__(self, report):
        super().__init__(report)
        self.diag = SimpleNamespace(message_primary=report.partition("\n")[0], sqlstate="22P02")


def _raise_wrapped_database_error():
    try:
        raise PsycopgStyleError(PG_REPORT)
    except PsycopgStyleError as exc:
        raise DataError(*exc.args) from exc  # what django.db.utils.DatabaseErrorWrapper does


def assert_no_patient_data(text):
    assert not spellings_of_the_number(text), text
    for fragment in ("Alice", "Anderson", "swollen", "filler", "lips"):
        assert fragment not in text, text


def test_a_database_error_logged_with_its_traceback_carries_neither_the_number_nor_the_text(console):
    logger = logging.getLogger("inbox.services")
    try:
        _raise_wrapped_database_error()
    except DataError as exc:
        logger.exception("inbound event failed event=%s error=%s", 42, exc)
        logger.error("task raised unexpected: %r", exc, exc_info=True)  # Celery's failure line: the repr
    out = console.getvalue()
    assert "ERROR inbox.services inbound event failed event=42 error=invalid input syntax for type json" in out
    assert "Traceback (most recent call last)" in out and "django.db.utils.DataError" in out  # still debuggable
    assert "The above exception was the direct cause" in out and "PsycopgStyleError" in out
    assert "task raised unexpected: DataError('invalid input syntax for type json [database detail removed]')" in out
    for label in ("LINE 1:", "DETAIL:", "CONTEXT:"):
        assert label not in out
    assert_no_patient_data(out)


def test_a_formatted_record_of_a_database_error_carries_neither_the_number_nor_the_text():
    """The record itself, through the filter and any formatter: nothing can format the original exception again."""
    try:
        _raise_wrapped_database_error()
    except DataError:
        record = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    RedactPatientDataFilter().filter(record)
    assert record.exc_info is None and "invalid input syntax for type json" in record.exc_text
    assert_no_patient_data(logging.Formatter("%(levelname)s %(message)s").format(record))


def test_database_detail_lines_go_even_without_the_exception_object():
    """A message that embeds a database error's text (no exc_info to look up its first line): the DETAIL, CONTEXT
    and LINE lines go, in the text and escaped in a repr, and what is left is masked."""
    report = 'duplicate key value violates unique constraint "lead_phone"\nDETAIL:  Key (phone)=(+16175550142) exists.'
    assert (
        redact(f"save failed: {report}") == 'save failed: duplicate key value violates unique constraint "lead_phone"'
    )
    assert "0142" not in redact(f"save failed: {ValueError(report)!r}")
    assert redact(f"failed: {PG_REPORT.replace(chr(10) + 'call me', ' call me')}") == (
        "failed: invalid input syntax for type json"
    )


def test_query_strings_are_cut_from_urls_and_request_lines_in_any_log_line():
    assert redact('"GET /admin/leads/lead/?q=Alice+Anderson HTTP/1.1" 200') == (
        '"GET /admin/leads/lead/?[query] HTTP/1.1" 200'
    )
    assert redact("GET https://emr.example.com/Patient?name=Alice&phone=6175550142 502") == (
        "GET https://emr.example.com/Patient?[query] 502"
    )
    assert redact("Did we reach the patient? yes") == "Did we reach the patient? yes"  # a question is not a query


def test_percent_encoded_numbers_and_emails_are_masked_too():
    """A query string's own spelling, should one be logged as a value (gunicorn's %(q)s, a form body)."""
    assert redact("q=%2B16175550142&e=alice.anderson%40example.com") == "q=[phone]&e=[email]"


@pytest.mark.parametrize("name", ["django.request", "django.db.backends", "django.security.csrf", "celery.app.trace"])
def test_djangos_and_celerys_loggers_reach_the_filtered_console(console, name):
    logging.getLogger(name).warning("problem for %s at %s", NUMBER, "/admin/?q=Alice")
    out = console.getvalue()
    assert f"WARNING {name} problem for [phone] at /admin/?[query]" in out
    assert_no_patient_data(out)


def test_django_keeps_no_handler_of_its_own_that_would_skip_the_filters():
    assert logging.getLogger("django").handlers == []
    assert logging.getLogger("django.server").propagate  # runserver's request lines go to the console too


def test_celerys_own_handlers_in_a_worker_get_the_filters():
    """Celery replaces the root logger's handlers in a worker or beat; its after_setup_logger signal gives them the
    console's filters (medspa/celery.py)."""
    from celery import signals

    stream = io.StringIO()
    celery_root = logging.Logger("celery-root")
    celery_root.addHandler(logging.StreamHandler(stream))
    signals.after_setup_logger.send(sender=None, logger=celery_root, loglevel=20, logfile=None, format="", colorize=0)
    filter_celery_handlers(logger=celery_root)  # twice: the filters are not stacked
    (handler,) = celery_root.handlers
    assert [type(f) for f in handler.filters] == [ClientErrorFilter, RedactPatientDataFilter]
    celery_root.warning("texted %s: %s", NUMBER, "alice.anderson@example.com")
    assert stream.getvalue() == "texted [phone]: [email]\n"


# --- What any client can make the app log ---------------------------------------------------------------------


def _no_traceback(out):
    assert "Traceback" not in out and " ERROR " not in out, out


@pytest.mark.django_db
def test_too_many_fields_anywhere_is_a_400_logged_at_warning_without_a_traceback(client, console):
    """Django's own limit (DATA_UPLOAD_MAX_NUMBER_FIELDS, for the admin): TooManyFieldsSent."""
    body = "&".join(f"f{i}=x" for i in range(1100))
    response = client.post("/admin/login/", body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    out = console.getvalue()
    assert "WARNING django.security.TooManyFieldsSent The number of GET/POST parameters exceeded" in out
    _no_traceback(out)


@pytest.mark.django_db
def test_a_disallowed_host_is_a_400_logged_at_warning_without_a_traceback(console):
    response = Client(HTTP_HOST="evil.example").get("/healthz")
    assert response.status_code == 400
    out = console.getvalue()
    assert "WARNING django.security.DisallowedHost Invalid HTTP_HOST header: 'evil.example'" in out
    _no_traceback(out)


@pytest.mark.django_db
def test_a_body_too_big_for_django_is_a_400_logged_at_warning_without_a_traceback(client, console, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = client.post("/admin/login/", "x=" + "y" * 4096, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    out = console.getvalue()
    assert "WARNING django.security.RequestDataTooBig" in out
    _no_traceback(out)


# --- The public endpoints' limits ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_lead_form_post_over_the_limit_is_413_before_the_body_is_read_and_stores_nothing(client, demo, console):
    # 50 MB declared, nothing sent: the test client's input raises if anything tries to read what is not there.
    response = client.generic(
        "POST", FORM_URL, b"", content_type="application/x-www-form-urlencoded", CONTENT_LENGTH=str(50 * 1024 * 1024)
    )
    assert response.status_code == 413
    body = response.content.decode()
    assert "Your request was too large to send." in body and 'name="name"' in body  # the form, to send again
    assert not Lead.objects.exists()
    assert "WARNING leads.limits public body refused endpoint=lead_form status=413" in console.getvalue()
    _no_traceback(console.getvalue())


@pytest.mark.django_db
def test_a_real_body_over_the_limit_is_413_on_the_form_and_on_the_api_alike(client, api_client, demo, settings):
    message = "x" * (settings.LEAD_MAX_BODY_BYTES + 1)
    assert client.post(FORM_URL, good_form(message=message)).status_code == 413
    response = api_client.post(API_URL, {"clinic": demo.slug, "name": "Jane", "message": message}, format="json")
    assert response.status_code == 413 and "too large" in response.json()["detail"]
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_too_many_fields_on_the_lead_form_is_400_logged_at_warning_and_stores_nothing(client, demo, console, settings):
    data = good_form(**{f"extra{i}": "x" for i in range(settings.LEAD_MAX_FIELDS)})
    response = client.post(FORM_URL, data)
    assert response.status_code == 400
    assert "Your request could not be read." in response.content.decode()
    assert not Lead.objects.exists()
    out = console.getvalue()
    assert "WARNING leads.limits public body refused endpoint=lead_form status=400 reason=Too many fields" in out
    _no_traceback(out)


@pytest.mark.django_db
def test_too_many_fields_on_the_api_is_400_in_a_form_and_in_json(api_client, demo, settings):
    data = {"clinic": demo.slug, "name": "Jane", "phone": "6175550123"}
    data.update({f"extra{i}": "x" for i in range(settings.LEAD_MAX_FIELDS)})
    assert api_client.post(API_URL, data).status_code == 400  # multipart, counted before parsing
    response = api_client.post(API_URL, data, format="json")
    assert response.status_code == 400 and "Too many fields" in str(response.json())
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_a_file_is_refused_by_the_public_form(client, demo):
    upload = io.BytesIO(b"%PDF-1.4 not a lead")
    upload.name = "records.pdf"
    response = client.post(FORM_URL, {**good_form(), "attachment": upload})
    assert response.status_code == 400 and not Lead.objects.exists()


@pytest.mark.django_db
def test_json_nested_deeper_than_python_parses_is_a_400_not_a_server_error(api_client, demo, console):
    response = api_client.post(API_URL, data="[" * 5000, content_type="application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]
    _no_traceback(console.getvalue())


@pytest.mark.django_db
def test_a_message_over_1600_characters_is_refused_with_a_field_error_and_the_form_keeps_it(client, demo):
    """Refused, not cut: the end of a message may be what mattered, and the person can shorten it themselves."""
    response = client.post(FORM_URL, good_form(message="m" * 1601))
    assert response.status_code == 400
    body = response.content.decode()
    assert "Keep the message to 1600 characters or fewer." in body
    assert 'value="Jane Doe"' in body and "m" * 1601 in body  # what was typed is kept
    assert 'maxlength="1600"' in body  # a browser stops at it anyway
    assert not Lead.objects.exists()


@pytest.mark.django_db
def test_a_1600_character_message_of_emoji_fits_the_body_limit(client, demo):
    response = client.post(FORM_URL, good_form(message="\U0001f600" * 1600))
    assert response.status_code == 200
    assert Lead.objects.get().message == "\U0001f600" * 1600


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["message", "consent_text"])
def test_the_api_refuses_any_text_over_1600_characters(api_client, demo, field):
    data = {"clinic": demo.slug, "name": "Jane", "phone": "6175550123", field: "m" * 1601}
    response = api_client.post(API_URL, data, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not Lead.objects.exists()


# --- Login lockout: password spraying -----------------------------------------------------------------------------


def _login(client, username, password, ip):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.mark.django_db
def test_spraying_one_password_over_30_usernames_from_one_ip_is_locked_out_after_the_ip_limit(client, settings):
    make_staff("desk", make_clinic("spa"))
    limit = settings.AXES_IP_FAILURE_LIMIT
    assert settings.AXES_FAILURE_LIMIT < limit < 30
    statuses = [_login(client, f"user{i}", "Spring2026!", "198.51.100.9").status_code for i in range(30)]
    assert statuses == [200] * (limit - 1) + [429] * (30 - limit + 1)  # locked at the limit-th failure
    # The address is locked for every username, the right password included, with axes's usual answer.
    locked = _login(client, "desk", "a-long-test-password-1", "198.51.100.9")
    assert locked.status_code == 429
    # The same lockout answer as for one username (the message is axes's, unchanged).
    for _ in range(settings.AXES_FAILURE_LIMIT):
        by_username = _login(Client(), "someone", "wrong", "198.51.100.77")
    assert (by_username.status_code, by_username.content) == (429, locked.content)
    # Staff elsewhere are not affected.
    elsewhere = _login(Client(), "desk", "a-long-test-password-1", "203.0.113.50")
    assert elsewhere.status_code == 302 and elsewhere.url == "/admin/"


@pytest.mark.django_db
def test_a_successful_login_does_not_reset_the_ip_count_for_other_usernames(client, settings):
    make_staff("desk", make_clinic("spa"))
    limit = settings.AXES_IP_FAILURE_LIMIT
    for i in range(limit - 1):
        assert _login(client, f"user{i}", "Spring2026!", "198.51.100.9").status_code == 200
    assert _login(Client(), "desk", "a-long-test-password-1", "198.51.100.9").status_code == 302
    assert _login(client, "one-more", "Spring2026!", "198.51.100.9").status_code == 429


@pytest.mark.django_db
def test_one_username_is_still_locked_after_five_failures_from_one_ip(client, settings):
    make_staff("desk", make_clinic("spa"))
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _login(client, "desk", "wrong-password", "198.51.100.9").status_code == 200
    assert _login(client, "desk", "wrong-password", "198.51.100.9").status_code == 429
    assert _login(client, "desk", "a-long-test-password-1", "203.0.113.50").status_code == 302  # not by IP
