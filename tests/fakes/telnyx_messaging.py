"""A local fake of Telnyx's Messaging API (POST /v2/messages), speaking the documented wire format.

It records every request (and the answer it gave) and answers from a queue of programmed responses (default: 200
with a message id), so tests can make it fail with a 503 or an opt-out error 40300 and see what our sender did.
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
        self.lock = threading.Lock()

    def respond(self, status, body):
        self.responses.append((status, body))

    def handle(self, handler):
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
