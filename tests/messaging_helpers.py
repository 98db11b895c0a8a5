"""Signing webhooks exactly as Telnyx (Ed25519) and Twilio (HMAC-SHA1, or HMAC-SHA256 with a shared key) sign them."""

import base64
import json
import time
import uuid
from urllib.parse import urlencode

from nacl.signing import SigningKey
from twilio.request_validator import RequestValidator

TELNYX_KEY = SigningKey.generate()
TELNYX_PUBLIC = base64.b64encode(bytes(TELNYX_KEY.verify_key)).decode()
TWILIO_TOKEN = "twilio-test-auth-token"


def telnyx_headers(raw: bytes, *, key=TELNYX_KEY, timestamp=None):
    timestamp = str(int(time.time()) if timestamp is None else timestamp)
    signature = key.sign(timestamp.encode() + b"|" + raw).signature
    return {"HTTP_TELNYX_SIGNATURE_ED25519": base64.b64encode(signature).decode(), "HTTP_TELNYX_TIMESTAMP": timestamp}


def telnyx_envelope(event_type, payload, *, event_id=None):
    return {
        "data": {
            "record_type": "event",
            "id": event_id or str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": "2026-11-24T15:00:00.000+00:00",
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": "https://frontdesk.example.com/webhooks/telnyx/messages"},
    }


def telnyx_inbound(text, *, from_="+16175550123", to="+15555550100", message_id=None, media=()):
    return telnyx_envelope(
        "message.received",
        {
            "id": message_id or str(uuid.uuid4()),
            "record_type": "message",
            "direction": "inbound",
            "type": "SMS",
            "from": {"phone_number": from_, "carrier": "T-Mobile USA", "line_type": "Wireless"},
            "to": [{"phone_number": to, "status": "webhook_delivered"}],
            "text": text,
            "media": list(media),
            "messaging_profile_id": "profile-1",
            "received_at": "2026-11-24T15:00:00.000+00:00",
            "encoding": "GSM-7",
            "parts": 1,
            "errors": [],
        },
    )


def post_telnyx(client, path, body, **header_overrides):
    raw = json.dumps(body).encode()
    headers = {**telnyx_headers(raw), **header_overrides}
    return client.post(path, data=raw, content_type="application/json", **headers)


def twilio_signature(url, params, token=TWILIO_TOKEN, algorithm=None):
    """X-Twilio-Signature: HMAC-SHA1 with the auth token, or HMAC-SHA256 with a shared key (algorithm="HMAC_SHA256")."""
    return RequestValidator(token).compute_signature(url, params, algorithm)


def post_twilio(client, path, params, *, token=TWILIO_TOKEN, base="http://127.0.0.1:8000"):
    return client.post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        HTTP_X_TWILIO_SIGNATURE=twilio_signature(base + path, params, token),
    )
