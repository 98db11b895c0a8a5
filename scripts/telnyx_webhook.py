"""Build and sign Telnyx webhooks the way Telnyx does, for scripts/test-webhook.sh (which sends them with curl).

Telnyx signs ``TIMESTAMP + "|" + RAW_BODY`` with Ed25519 and sends the base64 signature in
``telnyx-signature-ed25519`` and the Unix time in ``telnyx-timestamp``; the server verifies with the base64 public
key(s) in TELNYX_PUBLIC_KEY (messaging/webhooks.py). Only Telnyx holds Telnyx's private key, so these events are
signed with a key the operator generates (``keygen``) and whose public half a staging deployment trusts.

    python scripts/telnyx_webhook.py keygen
    TELNYX_SIGNING_KEY=... python scripts/telnyx_webhook.py pubkey
    python scripts/telnyx_webhook.py new-id
    TELNYX_SIGNING_KEY=... python scripts/telnyx_webhook.py event --type message.received \\
        --from +16175550123 --to +15555550100 --text "hi" --out body.json     # prints "TIMESTAMP SIGNATURE"

The signing key is read from the environment only, never from the command line (which other users can see).
Needs PyNaCl only (a dependency of the project); Django is not imported.
"""

import argparse
import base64
import binascii
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

from nacl.signing import SigningKey

MESSAGE_TYPES = {"message.received"}
CALL_TYPES = {"call.initiated", "call.answered", "call.hangup"}


class UsageError(Exception):
    pass


def signing_key_from_env() -> SigningKey:
    """TELNYX_SIGNING_KEY: base64 of the 32-byte Ed25519 seed (``keygen`` prints one). A 64-byte libsodium secret key
    (seed followed by the public key) is accepted too."""
    value = os.environ.get("TELNYX_SIGNING_KEY", "").strip()
    if not value:
        raise UsageError("TELNYX_SIGNING_KEY is not set (run `scripts/test-webhook.sh keygen` to make one)")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError("TELNYX_SIGNING_KEY is not base64") from None
    if len(raw) not in (32, 64):
        raise UsageError(f"TELNYX_SIGNING_KEY must decode to 32 bytes (an Ed25519 seed), not {len(raw)}")
    return SigningKey(raw[:32])


def public_key(key: SigningKey) -> str:
    return base64.b64encode(bytes(key.verify_key)).decode()


def sign(raw: bytes, key: SigningKey, timestamp: int) -> str:
    return base64.b64encode(key.sign(str(timestamp).encode() + b"|" + raw).signature).decode()


def envelope(event_type: str, payload: dict, *, url: str = "") -> dict:
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "data": {
            "record_type": "event",
            "id": str(uuid.uuid4()),
            "event_type": event_type,
            "occurred_at": now,
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": url},
    }


def message_payload(*, from_: str, to: str, text: str) -> dict:
    """An inbound SMS as Telnyx's message.received carries it (the fields the server reads: id, from, to, text)."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return {
        "id": str(uuid.uuid4()),
        "record_type": "message",
        "direction": "inbound",
        "type": "SMS",
        "from": {"phone_number": from_, "carrier": "", "line_type": "Wireless"},
        "to": [{"phone_number": to, "status": "webhook_delivered"}],
        "text": text,
        "media": [],
        "messaging_profile_id": "",
        "received_at": now,
        "encoding": "GSM-7",
        "parts": 1,
        "errors": [],
    }


def call_payload(event_type: str, *, from_: str, to: str, session: str, cause: str = "") -> dict:
    """A Call Control call.* event of one incoming call leg (the fields the server reads: direction, from, to,
    call_session_id and, on call.hangup, hangup_cause)."""
    payload = {
        "call_control_id": f"v3:test-{session}",
        "call_session_id": session,
        "call_leg_id": f"leg-{session}",
        "connection_id": "",
        "direction": "incoming",
        "from": from_,
        "to": to,
        "state": {"call.initiated": "parked", "call.answered": "answered", "call.hangup": "hangup"}[event_type],
        "start_time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if event_type == "call.hangup":
        payload["hangup_cause"] = cause
        payload["hangup_source"] = "callee" if cause != "originator_cancel" else "caller"
    return payload


def build_event(args) -> dict:
    if args.type in MESSAGE_TYPES:
        payload = message_payload(from_=args.from_, to=args.to, text=args.text)
    elif args.type in CALL_TYPES:
        if not args.session:
            raise UsageError("--session is required for call events")
        payload = call_payload(args.type, from_=args.from_, to=args.to, session=args.session, cause=args.cause)
    else:
        raise UsageError(f"unsupported --type {args.type}")
    return envelope(args.type, payload, url=args.url)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("keygen", help="print a new signing seed and its public key")
    commands.add_parser("pubkey", help="print the public key of TELNYX_SIGNING_KEY")
    commands.add_parser("new-id", help="print a random id (a call_session_id)")
    event = commands.add_parser("event", help="write a signed event body to --out; print TIMESTAMP SIGNATURE")
    event.add_argument("--type", required=True, choices=sorted(MESSAGE_TYPES | CALL_TYPES))
    event.add_argument("--from", dest="from_", required=True)
    event.add_argument("--to", required=True)
    event.add_argument("--text", default="")
    event.add_argument("--session", default="")
    event.add_argument("--cause", default="no_answer")
    event.add_argument("--url", default="", help="the URL it is sent to (goes in meta.delivered_to)")
    event.add_argument("--timestamp", type=int, default=None, help="Unix seconds to sign (default: now)")
    event.add_argument("--out", required=True, help="file to write the raw body to")
    args = parser.parse_args(argv)

    try:
        if args.command == "keygen":
            key = SigningKey.generate()
            print(f"TELNYX_SIGNING_KEY={base64.b64encode(bytes(key)).decode()}")
            print(f"TELNYX_PUBLIC_KEY={public_key(key)}")
        elif args.command == "pubkey":
            print(public_key(signing_key_from_env()))
        elif args.command == "new-id":
            print(uuid.uuid4())
        else:
            key = signing_key_from_env()
            # Compact separators: the bytes written are the bytes signed and sent, never re-serialised.
            raw = json.dumps(build_event(args), separators=(",", ":")).encode()
            timestamp = int(time.time()) if args.timestamp is None else args.timestamp
            with open(args.out, "wb") as out:
                out.write(raw)
            print(timestamp, sign(raw, key, timestamp))
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
