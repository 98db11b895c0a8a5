"""One local fake provider served in its own process, for the end-to-end tests.

    python -m tests.e2e.fakeproc {telnyx,square,nextech,openai,boulevard,zenoti,square_appointments} --port 0 \
        --ready-file FILE

serves the fake class of ``tests/fakes/`` (the same classes the unit tests use in-process) on 127.0.0.1 and writes
``{"port": N, "pid": P}`` to FILE once it listens. The provider's own paths answer exactly as the fake does; paths
under ``/_fake/`` let the test process read and steer it over HTTP:

- ``GET /_fake/calls``: every request the fake received (and, for Telnyx, what it answered), as JSON;
- ``GET /_fake/state``: what it holds (Square: links, orders, payments, refunds; Nextech: patients, appointments,
  token grants);
- ``POST /_fake/reset``: forget the recorded calls and state (a new scenario);
- ``POST /_fake/fail {"status", "times"}``: the next ``times`` provider requests fail with ``status``;
- ``POST /_fake/config {name: value}``: set a documented knob (Nextech ``utc_offset_minutes``, ``first_hour``,
  ``prospect_email_required``, ``taken``: the slot starts booked by someone else; Square ``refund_status``; Telnyx
  ``send_delay``: seconds a send waits, once it has arrived, before the fake takes it and answers: a slow provider,
  so a test can kill the sender mid-request; the fake still takes and answers it);
- ``GET /_fake/state`` (Telnyx): ``in_flight``, the sends that arrived while ``send_delay`` held them (to, text,
  arrival time, ``done`` once taken); ``lookups``, the ``GET /v2/messages/{id}`` requests; ``messages``, what
  each id would answer;
- ``POST /_fake/status {"id", "status"}`` (Telnyx): what became of an accepted text at the carrier (``delivered``);
- ``POST /_fake/patient {"first", "last", "phone"}`` (Nextech): a patient already on file;
- ``POST /_fake/pay {"url"}`` (Square): the buyer pays the link with that URL; answers the payment and Square's
  ``payment.created`` / ``payment.updated`` webhook bodies for it (the test process signs and posts them);
- ``POST /_fake/script {"items": [...]}`` (OpenAI): what the next completions answer;
- ``POST /_fake/schedule {"times": [ISO 8601, ...]}`` (Boulevard, Zenoti, Square Appointments): the EMR's open
  times (Zenoti's read on the center's clock, the offset dropped).

Zenoti's and Square Appointments' fakes are ``httpx.MockTransport`` handlers (the unit tests hand them to the client
as its transport); here each HTTP request is turned into an ``httpx.Request`` for them and their answer written back.

The process exits when its parent (the test run) goes away, so a killed test run leaves nothing behind.
"""

import argparse
import copy
import dataclasses
import io
import json
import os
import sys
import threading
import time
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.fakes import boulevard as boulevard_fake
from tests.fakes import nextech as nextech_fake
from tests.fakes import openai as openai_fake
from tests.fakes import square as square_fake
from tests.fakes import square_appointments as square_appointments_fake
from tests.fakes import zenoti as zenoti_fake
from tests.fakes.telnyx_messaging import FakeTelnyx

CONTROL = "/_fake/"
KINDS = ("telnyx", "square", "nextech", "openai", "boulevard", "zenoti", "square_appointments")


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, date):  # datetimes too
        return value.isoformat()
    return value


def _aware_times(body) -> list[datetime]:
    """``body["times"]``, ISO 8601 date-times that must carry their offset (a 400 otherwise)."""
    times = [datetime.fromisoformat(value) for value in body.get("times") or []]
    if any(t.tzinfo is None for t in times):
        raise ValueError("times need an offset")
    return times


class Control:
    """The /_fake/ endpoints of one fake; a subclass per provider."""

    def __init__(self, fake):
        self.fake = fake

    def handle(self, method, path, body):
        """(status, answer)"""
        name = path[len(CONTROL) :].strip("/")
        route = getattr(self, f"{method.lower()}_{name}", None)
        if route is None:
            return 404, {"error": f"no control route {method} {path}"}
        return 200, route(body or {})

    def get_calls(self, body):
        with self.fake.lock:
            return _jsonable(self.fake.requests)

    def get_state(self, body):
        return {}

    def post_config(self, body):
        unknown = set(body) - set(self.knobs)
        if unknown:
            raise ValueError(f"unknown knobs {sorted(unknown)}")
        with self.fake.lock:
            for name, value in body.items():
                setattr(self.fake, name, value)
        return {"ok": True}

    knobs = ()


class TelnyxControl(Control):
    knobs = ("send_delay",)

    def __init__(self, fake):
        super().__init__(fake)
        fake.send_delay = 0
        self.in_flight = []

    def post_reset(self, body):
        with self.fake.lock:
            self.fake.requests.clear()
            self.fake.responses.clear()
            self.fake.messages.clear()
            self.fake.lookups.clear()
            self.fake.get_responses.clear()
            self.fake.send_delay = 0
            self.in_flight.clear()
        return {"ok": True}

    def get_state(self, body):
        with self.fake.lock:
            return _jsonable(
                {"in_flight": self.in_flight, "lookups": self.fake.lookups, "messages": self.fake.messages}
            )

    def post_status(self, body):
        self.fake.set_status(body["id"], body["status"])  # takes the lock itself
        return {"ok": True}

    def hold(self, handler):
        """``send_delay``: the request has arrived (its body is read and noted in ``in_flight``), then waits before
        the fake takes it, records it and answers, whether or not the sender is still there to read the answer."""
        with self.fake.lock:
            delay = float(self.fake.send_delay or 0)
        if handler.command != "POST" or delay <= 0:
            return None
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        handler.rfile = io.BytesIO(raw)  # the fake reads the body from here
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        entry = {"to": body.get("to"), "text": body.get("text"), "arrived": time.time(), "done": False}
        with self.fake.lock:
            self.in_flight.append(entry)
        time.sleep(delay)
        return entry

    def done(self, entry):
        if entry is not None:
            with self.fake.lock:
                entry["done"] = True

    def post_fail(self, body):
        status, times = int(body.get("status", 503)), int(body.get("times", 1))
        code = str(body.get("code") or status)
        error = {"errors": [{"code": code, "title": body.get("title") or "Fake failure", "detail": "fake"}]}
        with self.fake.lock:
            self.fake.responses.extend((status, error) for _ in range(times))
        return {"ok": True}


class SquareControl(Control):
    knobs = ("refund_status",)

    def post_reset(self, body):
        fake = self.fake
        with fake.lock:
            for collection in (fake.requests, fake.links, fake.orders, fake.payments, fake.refunds, fake._keys):
                collection.clear()
            fake._failures.clear()
        return {"ok": True}

    def post_fail(self, body):
        self.fake.fail_next(int(body.get("status", 500)), times=int(body.get("times", 1)))
        return {"ok": True}

    def get_state(self, body):
        fake = self.fake
        with fake.lock:
            return _jsonable(
                {"links": fake.links, "orders": fake.orders, "payments": fake.payments, "refunds": fake.refunds}
            )

    def post_pay(self, body):
        """The buyer opens the link and pays: Square's two webhook bodies for the payment (APPROVED, then
        COMPLETED), as Square would deliver them."""
        with self.fake.lock:
            link = next((link for link in self.fake.links.values() if link["url"] == body.get("url")), None)
        if link is None:
            raise ValueError("no payment link with that url")
        payment = self.fake.pay_link(link["id"])  # takes the lock itself
        created = self.fake.payment_event(payment["id"], "payment.created")
        created["data"]["object"]["payment"] = {**copy.deepcopy(payment), "status": "APPROVED"}
        updated = self.fake.payment_event(payment["id"], "payment.updated")
        return {"payment": payment, "link": link, "events": [created, updated]}


class NextechControl(Control):
    knobs = ("utc_offset_minutes", "first_hour", "refuse_cancel", "create_delay", "prospect_email_required", "taken")

    def post_config(self, body):
        if "taken" in body:  # slot starts (ISO) booked by someone else: a set at the fake
            body = {**body, "taken": set(body["taken"])}
        return super().post_config(body)

    def post_reset(self, body):
        # Tokens stay valid (the app caches them in Redis across scenarios, as it would across days).
        fake = self.fake
        with fake.lock:
            for collection in (fake.requests, fake.throttled, fake.failing, fake.patients, fake.appointments):
                collection.clear()
            fake.taken.clear()
            fake.grants.clear()
        return {"ok": True}

    def post_fail(self, body):
        with self.fake.lock:
            self.fake.fail(int(body.get("status", 503)), int(body.get("times", 1)))
        return {"ok": True}

    def get_state(self, body):
        fake = self.fake
        with fake.lock:
            return _jsonable({"patients": fake.patients, "appointments": fake.appointments, "grants": fake.grants})

    def post_patient(self, body):
        """A patient the practice already has on file."""
        with self.fake.lock:
            ident = self.fake.add_patient(body["first"], body["last"], body.get("phone", ""), body.get("email", ""))
        return {"id": ident}


class BoulevardControl(Control):
    """Boulevard's Client API (one business, the fake's API key and secret): ``schedule`` sets its bookable times."""

    def post_reset(self, body):
        fake = self.fake
        with fake.lock:
            for collection in (
                fake.requests,
                fake.carts,
                fake.appointments,
                fake.taken,
                fake.unlisted,
                fake.schedule,
                fake.http_failures,
                fake.cost_limits,
                fake.graphql_failures,
            ):
                collection.clear()
        return {"ok": True}

    def post_fail(self, body):
        with self.fake.lock:
            self.fake.fail(int(body.get("status", 503)), times=int(body.get("times", 1)))
        return {"ok": True}

    def post_schedule(self, body):
        """``{"times": [ISO 8601 with offset, ...]}``: the business's bookable times (for any service)."""
        times = _aware_times(body)
        with self.fake.lock:
            self.fake.schedule[:] = times
        return {"ok": True}

    def get_state(self, body):
        with self.fake.lock:
            appointments = {
                key: {**value, "start": value["start"].isoformat()} for key, value in self.fake.appointments.items()
            }
            return _jsonable({"appointments": appointments})


class TransportControl(Control):
    """The control of a fake written as an ``httpx.MockTransport`` handler (Zenoti, Square Appointments)."""

    def post_reset(self, body):
        fake = self.fake
        with fake.lock:
            fake.__init__()
            fake.lock = threading.Lock()  # __init__ knows nothing of it
        return {"ok": True}

    def post_fail(self, body):
        with self.fake.lock:
            self.fake.fail_next(int(body.get("status", 503)), times=int(body.get("times", 1)))
        return {"ok": True}


class ZenotiControl(TransportControl):
    """Zenoti's API (one center, the fake's API key): ``schedule`` sets its open times."""

    def post_schedule(self, body):
        """``{"times": [ISO 8601, ...]}`` on the center's clock: Zenoti's times carry no offset, so any is dropped."""
        times = {datetime.fromisoformat(value).replace(tzinfo=None) for value in body.get("times") or []}
        with self.fake.lock:
            self.fake.open_times = times
        return {"ok": True}

    def get_state(self, body):
        fake = self.fake
        with fake.lock:
            return _jsonable({"bookings": fake.bookings, "invoices": fake.invoices, "guests": fake.guests})


class SquareAppointmentsControl(TransportControl):
    """Square's Bookings API (the fake's own token and location): ``schedule`` sets its availabilities, each for
    team member A."""

    def post_schedule(self, body):
        """``{"times": [ISO 8601 with offset, ...]}``."""
        times = _aware_times(body)
        with self.fake.lock:
            self.fake.open_times = {}
            for start in times:
                self.fake.offer(start.astimezone(UTC))  # the fake writes its times with a "Z": give them in UTC
        return {"ok": True}

    def get_state(self, body):
        fake = self.fake
        with fake.lock:
            return _jsonable({"bookings": fake.bookings, "customers": fake.customers})


def _transport_handler(fake, control, name):
    """A fake written as an ``httpx.MockTransport`` handler (Zenoti, Square Appointments), served over HTTP: each
    request is handed to it as an httpx.Request, and its httpx.Response written back."""

    class TransportHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format, *args):
            pass

        def do_GET(self):
            if self.path.startswith(CONTROL):
                return _serve_control(self, control)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command, f"http://127.0.0.1{self.path}", headers=dict(self.headers.items()), content=raw
            )
            with fake.lock:
                response = fake(request)
            data = response.content
            self.send_response(response.status_code)
            self.send_header("Content-Type", response.headers.get("content-type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

        do_POST = do_PUT = do_DELETE = do_GET

    TransportHandler.__name__ = f"{name}Handler"
    return TransportHandler


class OpenAIControl(Control):
    def get_calls(self, body):
        with self.fake.lock:
            return _jsonable(self.fake.calls)

    def post_reset(self, body):
        self.fake.reset()
        return {"ok": True}

    def post_fail(self, body):
        self.fake.fail(int(body.get("status", 500)), int(body.get("times", 1)))
        return {"ok": True}

    def post_script(self, body):
        self.fake.script(*(body.get("items") or []))
        return {"ok": True}


def _serve_control(handler, control):
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    try:
        status, answer = control.handle(handler.command, handler.path.split("?", 1)[0], json.loads(raw or b"{}"))
    except (ValueError, KeyError, TypeError) as exc:
        status, answer = 400, {"error": f"{type(exc).__name__}: {exc}"}
    data = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def build(kind):
    """(fake, request handler class, control) for one provider; the handler serves both its paths and /_fake/."""
    if kind == "telnyx":
        fake = FakeTelnyx()
        control = TelnyxControl(fake)

        class TelnyxHandler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def do_POST(self):
                if self.path.startswith(CONTROL):
                    return _serve_control(self, control)
                held = control.hold(self)
                try:
                    fake.handle(self)
                except (BrokenPipeError, ConnectionResetError):  # the sender died while the send was held
                    self.close_connection = True
                finally:
                    control.done(held)

            do_GET = do_POST

        return fake, TelnyxHandler, control

    if kind == "zenoti":
        fake = zenoti_fake.FakeZenoti()
        fake.lock = threading.Lock()
        control = ZenotiControl(fake)
        return fake, _transport_handler(fake, control, "Zenoti"), control
    if kind == "square_appointments":
        fake = square_appointments_fake.FakeSquareAppointments()
        fake.lock = threading.Lock()
        control = SquareAppointmentsControl(fake)
        return fake, _transport_handler(fake, control, "SquareAppointments"), control

    base, control_class, fake = {
        "square": (square_fake._Handler, SquareControl, square_fake.FakeSquare()),
        "nextech": (nextech_fake._Handler, NextechControl, nextech_fake.FakeNextech()),
        "openai": (openai_fake._Handler, OpenAIControl, openai_fake.FakeOpenAI()),
        "boulevard": (boulevard_fake._Handler, BoulevardControl, boulevard_fake.FakeBoulevard()),
    }[kind]
    control = control_class(fake)
    attribute = {"square": "square", "nextech": "nextech", "openai": "openai", "boulevard": "boulevard"}[kind]
    provider_methods = {name: getattr(base, name, None) for name in ("do_GET", "do_POST", "do_PUT", "do_DELETE")}

    def dispatch(method_name):
        def method(self):
            if self.path.startswith(CONTROL):
                return _serve_control(self, control)
            provider = provider_methods.get(method_name)
            if provider is None:
                self.send_error(405)
                return None
            return provider(self)

        return method

    handler = type(
        f"{kind.title()}Handler",
        (base,),
        {attribute: fake, **{name: dispatch(name) for name in provider_methods}},
    )
    return fake, handler, control


def _exit_with_parent(parent_pid):
    while True:
        if os.getppid() != parent_pid:
            os._exit(0)
        time.sleep(0.5)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "kind", choices=["telnyx", "square", "nextech", "openai", "boulevard", "zenoti", "square_appointments"]
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", required=True)
    args = parser.parse_args(argv)
    fake, handler, _control = build(args.kind)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    fake.server = server  # the fakes build their own URLs (next-page links) from it
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    ready = Path(args.ready_file)
    temporary = ready.with_suffix(".tmp")
    temporary.write_text(json.dumps({"port": server.server_address[1], "pid": os.getpid()}))
    temporary.rename(ready)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
