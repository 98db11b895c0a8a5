#!/usr/bin/env bash
# Send a signed Telnyx webhook (an inbound SMS or a missed call) to a running server, to check a deployment by
# hand. `scripts/test-webhook.sh --help` explains; docs/DEPLOYMENT.md ("Checking a deployment by hand") shows it
# in use.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(dirname "$SCRIPT_DIR")"
HELPER="$SCRIPT_DIR/telnyx_webhook.py"

usage() {
  cat <<'EOF'
Usage:
  scripts/test-webhook.sh keygen
  scripts/test-webhook.sh pubkey
  scripts/test-webhook.sh sms  --url URL --from PHONE --to CLINIC_NUMBER [--text TEXT] [options]
  scripts/test-webhook.sh call --url URL --from PHONE --to CLINIC_NUMBER [--cause CAUSE | --answered] [options]

Signs a Telnyx webhook exactly as Telnyx does (Ed25519 over "TIMESTAMP|RAW_BODY", headers
telnyx-signature-ed25519 and telnyx-timestamp) and POSTs it with curl, then prints the HTTP status and the
server's answer. Exits 0 on a 2xx answer, 1 on any other answer, 2 on a usage error, and curl's code when the
server could not be reached.

Only Telnyx holds Telnyx's private key, so the events are signed with a key you make:
  1. scripts/test-webhook.sh keygen
       prints TELNYX_SIGNING_KEY=... (keep it to yourself) and TELNYX_PUBLIC_KEY=...
  2. On the deployment under test, add that public key to TELNYX_PUBLIC_KEY. It takes a comma-separated list,
     so "REAL_TELNYX_KEY,YOUR_TEST_KEY" keeps real Telnyx webhooks working. Restart web. Remove the test key
     when you are done: whoever holds the seed can send webhooks that the server trusts.
  3. export TELNYX_SIGNING_KEY=... and send events. (`pubkey` prints the public key of TELNYX_SIGNING_KEY
     again.)

  sms    an inbound text (message.received) to POST URL/webhooks/telnyx/messages.
           --text TEXT    the message (default "Hi, what are your hours?"). "HELP" or "STOP" exercise the
                          compliance replies; STOP really opts PHONE out of that clinic (START opts back in).
  call   a missed call to POST URL/webhooks/telnyx/voice: call.initiated, then call.hangup of an incoming
         call with the same call_session_id. The server treats a hangup with cause timeout, no_answer,
         user_busy, call_rejected or originator_cancel as missed when no call.answered was seen for the
         session; the caller then gets the clinic's intro text (once a day, deferred by quiet hours).
           --cause CAUSE  hangup_cause (default no_answer)
           --answered     send call.answered before the hangup (cause normal_clearing unless --cause is
                          given): an answered call, which must NOT produce a text

Options:
  --url URL          the server's public base URL, e.g. https://frontdesk.example.com (a URL that already
                     contains /webhooks/ is used as it is)
  --from PHONE       the patient's number, E.164 (+16175550123)
  --to NUMBER        the clinic's number exactly as in the admin (Messaging > Phone numbers), E.164. A number
                     that is not a clinic's is answered 200 and ignored.
  --timestamp SECS   Unix time to sign instead of now (older than TELNYX_WEBHOOK_TOLERANCE, 300 s: refused)
  --insecure, -k     do not verify the server's TLS certificate (staging with a self-signed certificate)
  --dry-run          print the headers and body instead of sending
  -h, --help         this text

Environment:
  TELNYX_SIGNING_KEY base64 Ed25519 seed from `keygen` (required by sms and call; never passed as an argument)
  PYTHON             Python with PyNaCl (default: the project's .venv/bin/python, else python3)

What a 2xx means: the signature was accepted and the event recorded (Messaging > Webhook events in the
admin). Whether it did what you expected shows there (status processed, its clinic) and under Messages and
Conversations. A 403 {"error": "..."} is a signature refusal, recorded under Messaging > Webhook rejections.

Examples:
  scripts/test-webhook.sh keygen                # set its TELNYX_PUBLIC_KEY on the server
  export TELNYX_SIGNING_KEY='...'               # the seed it printed
  scripts/test-webhook.sh sms  --url https://staging.example.com --from +16175550123 --to +15555550100 --text "hi"
  scripts/test-webhook.sh call --url https://staging.example.com --from +16175550123 --to +15555550100
EOF
}

die_usage() {
  echo "error: $*" >&2
  echo "Try: scripts/test-webhook.sh --help" >&2
  exit 2
}

find_python() {
  if [ -n "${PYTHON:-}" ]; then
    echo "$PYTHON"
  elif [ -x "$REPO_DIR/.venv/bin/python" ]; then
    echo "$REPO_DIR/.venv/bin/python"
  else
    command -v python3 || true
  fi
}

PY="$(find_python)"
run_helper() {
  if [ -z "$PY" ] || ! "$PY" -c 'import nacl.signing' >/dev/null 2>&1; then
    echo "error: no Python with PyNaCl found (run \`make install\`, or set PYTHON to one that has it)" >&2
    exit 2
  fi
  "$PY" "$HELPER" "$@"
}

[ $# -gt 0 ] || { usage; exit 2; }
COMMAND="$1"
shift

case "$COMMAND" in
  -h | --help | help)
    usage
    exit 0
    ;;
  keygen)
    run_helper keygen
    echo "# Add TELNYX_PUBLIC_KEY's value to the server's TELNYX_PUBLIC_KEY (comma-separated after the real one);" >&2
    echo "# export TELNYX_SIGNING_KEY here. Keep the signing key secret and remove the public key when done." >&2
    exit 0
    ;;
  pubkey)
    run_helper pubkey
    exit 0
    ;;
  sms | call) ;;
  *) die_usage "unknown command '$COMMAND'" ;;
esac

URL="" FROM="" TO="" TEXT="Hi, what are your hours?" CAUSE="" ANSWERED=0 TIMESTAMP="" DRY_RUN=0
CURL_OPTS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL="${2:-}"; shift 2 || die_usage "--url needs a value" ;;
    --from) FROM="${2:-}"; shift 2 || die_usage "--from needs a value" ;;
    --to) TO="${2:-}"; shift 2 || die_usage "--to needs a value" ;;
    --text) TEXT="${2-}"; shift 2 || die_usage "--text needs a value" ;;
    --cause) CAUSE="${2:-}"; shift 2 || die_usage "--cause needs a value" ;;
    --answered) ANSWERED=1; shift ;;
    --timestamp) TIMESTAMP="${2:-}"; shift 2 || die_usage "--timestamp needs a value" ;;
    -k | --insecure) CURL_OPTS+=(--insecure); shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown option '$1'" ;;
  esac
done

[ -n "$URL" ] || die_usage "--url is required"
[ -n "$FROM" ] || die_usage "--from is required"
[ -n "$TO" ] || die_usage "--to is required"
[[ "$TO" =~ ^\+[1-9][0-9]{6,14}$ ]] || die_usage "--to must be the clinic's number in E.164 (+15555550100), as in the admin"
[ -z "$TIMESTAMP" ] || [[ "$TIMESTAMP" =~ ^[0-9]+$ ]] || die_usage "--timestamp must be Unix seconds"
[ "$COMMAND" = call ] || { [ -z "$CAUSE" ] && [ "$ANSWERED" = 0 ]; } || die_usage "--cause and --answered are for call"
[ -n "${TELNYX_SIGNING_KEY:-}" ] || die_usage "TELNYX_SIGNING_KEY is not set (scripts/test-webhook.sh keygen makes one)"
command -v curl >/dev/null 2>&1 || { echo "error: curl is not installed" >&2; exit 2; }

URL="${URL%/}"
endpoint() {  # endpoint PATH
  case "$URL" in
    */webhooks/*) echo "$URL" ;;
    *) echo "$URL$1" ;;
  esac
}

MAX_BODY=2000  # an error page (DEBUG on) can be large: show its start
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# send TYPE ENDPOINT [event options...]: build, sign and POST one event and print the outcome. Returns 1 on a
# non-2xx answer, curl's exit code when there was no answer.
send() {
  local type="$1" target="$2"
  shift 2
  local signed timestamp signature status rc size
  local helper_args=(event --type "$type" --from "$FROM" --to "$TO" --url "$target" --out "$WORK/body.json" "$@")
  [ -z "$TIMESTAMP" ] || helper_args+=(--timestamp "$TIMESTAMP")
  signed="$(run_helper "${helper_args[@]}")" || return $?
  read -r timestamp signature <<<"$signed"
  if [ "$DRY_RUN" = 1 ]; then
    echo "POST $target ($type)"
    echo "Content-Type: application/json"
    echo "telnyx-timestamp: $timestamp"
    echo "telnyx-signature-ed25519: $signature"
    echo
    cat "$WORK/body.json"
    echo
    return 0
  fi
  echo "POST $target ($type)"
  rc=0
  status="$(curl -sS ${CURL_OPTS[@]+"${CURL_OPTS[@]}"} --max-time 30 -o "$WORK/response" -w '%{http_code}' -X POST \
    -H 'Content-Type: application/json' \
    -H "telnyx-timestamp: $timestamp" \
    -H "telnyx-signature-ed25519: $signature" \
    --data-binary "@$WORK/body.json" "$target")" || rc=$?
  if [ "$rc" != 0 ]; then
    echo "error: curl exited $rc: no answer from $target" >&2
    return "$rc"
  fi
  echo "HTTP $status"
  size="$(wc -c <"$WORK/response" | tr -d ' ')"
  head -c "$MAX_BODY" "$WORK/response"
  echo
  [ "$size" -le "$MAX_BODY" ] || echo "... ($size bytes, cut at $MAX_BODY)"
  case "$status" in
    2??) return 0 ;;
    *) return 1 ;;
  esac
}

if [ "$COMMAND" = sms ]; then
  send message.received "$(endpoint /webhooks/telnyx/messages)" --text "$TEXT" || exit $?
else
  target="$(endpoint /webhooks/telnyx/voice)"
  session="$(run_helper new-id)"
  if [ "$ANSWERED" = 1 ]; then
    CAUSE="${CAUSE:-normal_clearing}"
  else
    CAUSE="${CAUSE:-no_answer}"
  fi
  send call.initiated "$target" --session "$session" || exit $?
  if [ "$ANSWERED" = 1 ]; then
    send call.answered "$target" --session "$session" || exit $?
  fi
  send call.hangup "$target" --session "$session" --cause "$CAUSE" || exit $?
fi
if [ "$DRY_RUN" = 0 ]; then
  echo "Accepted. See the admin: Messaging > Webhook events, Messages; Conversations." >&2
fi
