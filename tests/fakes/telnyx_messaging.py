"""A local fake of Telnyx's Messaging API (POST /v2/messages, GET /v2/messages/{id}), speaking the documented wire
format.

It records every send request (and the answer it gave) and answers from a queue of programmed responses (default:
200 with a message id), so tests can make it fail with a 503 or an opt-out error 40300 and see what our sender did.
``GET /v2/messages/{id}`` answers from what it accepted (``to[0].status`` "sent", or what ``set_status`` said), 404
for an id it never gave; those requests go to ``lookups``, and ``respond_get`` programs their answers.
"""

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler

import pytest

from .server import start_server, stop_server


class FakeTelnyx:
    def __init__(self):
        self.requests = []
        self.responses = []  # (status, body) pairs used in order; empty: success
        self.messages = {}  # message id -> the message it accepted (as answered), for GET /v2/messages/{id}
        self.lookups = []  # GET requests, apart from the sends in ``requests``
        self.get_responses = []  # (status, body) pairs for the coming GETs; empty: answered from ``messages``
        self.lock = threading.Lock()

    def respond(self, status, body):
        self.responses.append((status, body))

    def respond_get(self, status, body):
        self.get_responses.append((status, body))

    def set_status(self, message_id, status):
        """What became of an accepted message at the carrier (e.g. delivered)."""
        with self.lock:
            self.messages[message_id]["to"][0]["status"] = status

    def handle(self, handler):
        if handler.command == "GET":
            return self.handle_get(handler)
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length) or b"{}")
        record = {"path": handler.path, "headers": dict(handler.headers), "json": body}
        with self.lock:
            self.requests.append(record)
            programmed = self.responses.pop(0) if self.responses else None
        if programmed is None:
            message_id = str(uuid.uuid4())
            programmed = (
                200,
                {
                    "data": {
                        "record_type": "message",
                        "id": message_id,
                        "direction": "outbound",
                        "type": "SMS",
                        "from": {"phone_number": body.get("from")},
                        "to": [{"phone_number": body.get("to"), "status": "queued"}],
                        "text": body.get("text"),
                        "messaging_profile_id": body.get("messaging_profile_id"),
                        "errors": [],
                    }
                },
            )
        status, payload = programmed
        record["status"], record["response"] = status, payload  # what was answered (e.g. the message id)
        if status == 200 and isinstance(payload.get("data"), dict) and payload["data"].get("id"):
            accepted = json.loads(json.dumps(payload["data"]))
            for recipient in accepted.get("to") or []:
                recipient["status"] = "sent"  # what Telnyx says of it by the time anyone asks
            with self.lock:
                self.messages[accepted["id"]] = accepted
        self._answer(handler, status, payload)

    def handle_get(self, handler):
        path = handler.path.split("?", 1)[0]
        with self.lock:
            self.lookups.append({"path": path, "headers": dict(handler.headers)})
            programmed = self.get_responses.pop(0) if self.get_responses else None
            prefix = "/v2/messages/"
            message = self.messages.get(path[len(prefix) :]) if path.startswith(prefix) else None
            if programmed is None and message is not None:
                programmed = (200, {"data": json.loads(json.dumps(message))})
        if programmed is None:
            programmed = (404, {"errors": [{"code": "10005", "title": "Resource not found"}]})
        self._answer(handler, *programmed)

    @staticmethod
    def _answer(handler, status, payload):
        raw = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(raw)))
        handler.end_headers()
        handler.wfile.write(raw)


def serve(fake):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            fake.handle(self)

        do_GET = do_POST

        def log_message(self, *args):
            pass

    return start_server(Handler)


@pytest.fixture
def fake_telnyx(settings):
    fake = FakeTelnyx()
    server = serve(fake)
    settings.SMS_BACKEND = ""  # each number's provider: telnyx
    settings.TELNYX_API_KEY = "KEY_test"
    settings.TELNYX_BASE_URL = f"http://127.0.0.1:{server.server_port}/v2"
    yield fake
    stop_server(server)
