"""A local fake of the OpenAI chat completions API (docs PROVIDERS.md), served over real HTTP.

``FakeOpenAI`` runs a ThreadingHTTPServer on 127.0.0.1 (a free port) that answers ``POST /v1/chat/completions``
the way OpenAI does: an assistant message with ``content`` or ``tool_calls`` (``function.arguments`` is JSON text),
``finish_reason``, and ``usage`` with ``prompt_tokens_details.cached_tokens``. Every request body is recorded in
``calls``; a request without ``Authorization: Bearer ...`` gets 401.

What it answers comes from ``script(...)``, first in first out, one item per request:

- ``text("...")``: a reply (or ``text(function)``: the reply is ``function(request_body)``, to quote a tool result);
- ``tool("name", {...}, ...)``: tool calls; give the arguments as a string to send them verbatim (malformed JSON);
- ``error(429)``: an HTTP error with OpenAI's error body (``retry-after: 0`` so the SDK retries at once);
- ``slow(seconds, item)``: answer ``item`` after a pause (a timeout on the client's side).

With the script empty it asks ``brain(request_body)`` for an item (default: a short text), and ``fail(status,
times)`` answers the next requests with an error first, whatever the script says.

It enforces what OpenAI's API reference (openai/openai-openapi) and structured-outputs guide say about the requests
we send (tests/data/providers/SOURCES.md, "openai/"):

- a reasoning model (o-series, gpt-5) answers 400 ``unsupported_value`` to a ``temperature`` other than 1, and a
  chat model 400 ``unsupported_parameter`` to ``reasoning_effort``; ``max_tokens`` is refused on reasoning models;
- with ``parallel_tool_calls: false`` the model calls one tool per response: a scripted item with several calls is
  answered one call at a time (the rest come in the next responses, as the model would make them);
- a reasoning model spends ``reasoning`` tokens (per item, else ``reasoning_tokens``) of ``max_completion_tokens``
  before it writes: when the cap leaves nothing for the answer it comes back empty with ``finish_reason: length``;
  usage carries ``completion_tokens_details.reasoning_tokens``;
- the first request with a new set of tool schemas waits ``schema_seconds`` (OpenAI prepares strict schemas on first
  use: "the first request you make with any schema will have additional latency").

Tokens are counted the same way for every request (about four characters per token over the messages and tools,
in order), and ``cached_tokens`` follows OpenAI's rule: the prefix shared with an earlier request counts once it
is 1024 tokens or more, in steps of 128. Benchmarks compare prompts with it; it is not a tokenizer.
"""

import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .server import start_server, stop_server

CHARS_PER_TOKEN = 4
CACHE_MIN_TOKENS = 1024
CACHE_STEP = 128


def text(content: str) -> dict:
    return {"content": content}


def tool(name: str, arguments=None, *more) -> dict:
    """One tool call, or several: ``tool("a", {...}, "b", {...})``."""
    pairs = [(name, arguments), *zip(more[::2], more[1::2], strict=True)]
    return {
        "tool_calls": [
            {"name": n, "arguments": a if isinstance(a, str) else json.dumps(a or {})} for n, a in pairs if n
        ]
    }


def error(status: int, message: str = "", code: str = "") -> dict:
    return {"status": status, "message": message or f"fake error {status}", "code": code}


def slow(seconds: float, item: dict) -> dict:
    return {**item, "delay": seconds}


def thinking(tokens: int, item: dict) -> dict:
    """``item`` from a reasoning model that first spends ``tokens`` reasoning tokens."""
    return {**item, "reasoning": tokens}


REASONING_MODEL = re.compile(r"^(o\d|gpt-5)", re.IGNORECASE)


def is_reasoning_model(model) -> bool:
    return bool(REASONING_MODEL.match(str(model or "").rsplit("/", 1)[-1]))


def refusal(body, reasoning_names=()) -> dict | None:
    """The 400 OpenAI answers to a parameter this model does not take, or None. ``reasoning_names``: more models to
    treat as reasoning models (one our code cannot know by its name)."""
    reasoning = is_reasoning_model(body.get("model")) or body.get("model") in reasoning_names
    temperature = body.get("temperature")
    if reasoning and temperature is not None and temperature != 1:
        return {
            "message": f"Unsupported value: 'temperature' does not support {temperature} with this model. Only the "
            "default (1) value is supported.",
            "type": "invalid_request_error",
            "param": "temperature",
            "code": "unsupported_value",
        }
    if reasoning and "max_tokens" in body:
        return {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    if not reasoning and "reasoning_effort" in body:
        return {
            "message": "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
            "type": "invalid_request_error",
            "param": "reasoning_effort",
            "code": "unsupported_parameter",
        }
    return None


def tools_digest(body) -> str:
    return hashlib.sha256(json.dumps(body.get("tools") or [], sort_keys=True).encode()).hexdigest()


def tool_result(body, n=-1) -> dict:
    """The ``n``-th tool result in a request (the last by default), decoded."""
    results = [m for m in body.get("messages") or [] if m.get("role") == "tool"]
    return json.loads(results[n]["content"])


def count_tokens(serialized: str) -> int:
    return max(1, len(serialized) // CHARS_PER_TOKEN)


def serialize(body: dict) -> str:
    """The prompt as the model sees it, in order: tools first, then the messages."""
    parts = [json.dumps(body.get("tools") or [], sort_keys=True)]
    for message in body.get("messages") or []:
        parts.append(f"<{message.get('role')}>{json.dumps(message.get('content'))}")
        for call in message.get("tool_calls") or []:
            parts.append(json.dumps(call.get("function"), sort_keys=True))
    return "".join(parts)


def _common_prefix(a: str, b: str) -> int:
    """Length of the shared prefix, by bisection on slice comparisons (fast on 100k-character prompts)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _default_brain(body) -> dict:
    return text("Thanks! How can I help?")


@dataclass
class FakeOpenAI:
    model: str = "gpt-4o-mini"
    brain: object = _default_brain
    calls: list = field(default_factory=list)
    usages: list = field(default_factory=list)  # the usage block answered to each call, in order
    pending: list = field(default_factory=list)
    failing: list = field(default_factory=list)  # [remaining, status]
    seen_prompts: list = field(default_factory=list)
    reasoning_tokens: int = 0  # what a reasoning model spends thinking when an item does not say
    schema_seconds: float = 0.0  # the first request with new tool schemas waits this long (their preparation)
    prepared_schemas: set = field(default_factory=set)
    refused: list = field(default_factory=list)  # the 400s answered to refused parameters, in order
    reasoning_names: set = field(default_factory=set)  # more model names that behave as reasoning models
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The ``base_url`` to give the SDK."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(_Handler):
            openai = fake

        self.server = start_server(Handler)
        return self

    def stop(self) -> None:
        stop_server(self.server)

    def script(self, *items) -> None:
        with self.lock:
            self.pending.extend(items)

    def fail(self, status=500, times=1) -> None:
        with self.lock:
            self.failing[:] = [times, status]

    def reset(self) -> None:
        with self.lock:
            self.pending.clear()
            self.failing.clear()
            self.calls.clear()
            self.usages.clear()

    # --- behaviour ---

    def next_item(self, body) -> dict:
        with self.lock:
            self.calls.append(body)
            problem = refusal(body, self.reasoning_names)
            if problem:
                self.refused.append(problem)
                return {"status": 400, "error": problem}
            if self.failing and self.failing[0] > 0:
                self.failing[0] -= 1
                return error(self.failing[1])
            item = self.pending.pop(0) if self.pending else None
        if item is None:
            item = self.brain(body)
        calls = item.get("tool_calls") or []
        if body.get("parallel_tool_calls") is False and len(calls) > 1:
            # One call per response: the others are what the model calls next.
            with self.lock:
                self.pending.insert(0, {**item, "tool_calls": calls[1:], "delay": 0})
            item = {**item, "tool_calls": calls[:1]}
        return item

    def schema_delay(self, body) -> float:
        """The preparation wait for this request's tool schemas (only the first time they are seen)."""
        digest = tools_digest(body)
        with self.lock:
            if not body.get("tools") or digest in self.prepared_schemas:
                return 0.0
            self.prepared_schemas.add(digest)
        return self.schema_seconds

    def usage(self, body, completion: str, reasoning: int = 0) -> dict:
        prompt = serialize(body)
        with self.lock:
            shared = max((_common_prefix(prompt, seen) for seen in self.seen_prompts[-50:]), default=0)
            self.seen_prompts.append(prompt)
        shared_tokens = shared // CHARS_PER_TOKEN
        cached = 0
        if shared_tokens >= CACHE_MIN_TOKENS:
            cached = CACHE_MIN_TOKENS + (shared_tokens - CACHE_MIN_TOKENS) // CACHE_STEP * CACHE_STEP
        prompt_tokens = count_tokens(prompt)
        completion_tokens = (count_tokens(completion) if completion else 0) + reasoning
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": min(cached, prompt_tokens)},
            "completion_tokens_details": {"reasoning_tokens": reasoning},
        }
        with self.lock:
            self.usages.append(usage)
        return usage

    def completion(self, body, item) -> dict:
        if callable(item.get("content")):
            item = {**item, "content": item["content"](body)}
        calls = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            }
            for c in item.get("tool_calls") or []
        ]
        message = {"role": "assistant", "content": item.get("content"), "refusal": None}
        if calls:
            message["tool_calls"] = calls
        completion = (item.get("content") or "") + "".join(c["function"]["arguments"] for c in calls)
        finish_reason = "tool_calls" if calls else "stop"
        reasoning = 0
        if is_reasoning_model(body.get("model")) or body.get("model") in self.reasoning_names:
            reasoning = item.get("reasoning", self.reasoning_tokens)
            cap = body.get("max_completion_tokens")
            if cap is not None and reasoning + count_tokens(completion) > cap:
                # The cap counts reasoning tokens: spent thinking, nothing left to write the answer with.
                reasoning, completion, finish_reason = min(reasoning, cap), "", "length"
                message = {"role": "assistant", "content": "", "refusal": None}
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}],
            "usage": self.usage(body, completion, reasoning),
        }


class _Handler(BaseHTTPRequestHandler):
    openai: FakeOpenAI
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet test output
        pass

    def _send(self, status, body, headers=None):
        data = json.dumps(body).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting (a timeout)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": "Unknown path", "type": "invalid_request_error"}})
        if not (self.headers.get("Authorization") or "").startswith("Bearer "):
            return self._send(401, {"error": {"message": "No API key", "type": "invalid_request_error"}})
        try:
            body = json.loads(raw)
        except ValueError:
            return self._send(400, {"error": {"message": "Invalid JSON", "type": "invalid_request_error"}})
        item = self.openai.next_item(body)
        if item.get("status") == 400 and item.get("error"):
            return self._send(400, {"error": item["error"]})
        delay = (item.get("delay") or 0) + self.openai.schema_delay(body)
        if delay:
            time.sleep(delay)
        if item.get("status"):
            kind = "rate_limit_error" if item["status"] == 429 else "server_error"
            error_body = {"error": {"message": item["message"], "type": kind, "code": item.get("code") or None}}
            return self._send(item["status"], error_body, {"retry-after": "0"})
        return self._send(200, self.openai.completion(body, item))


@pytest.fixture
def fake_openai():
    """A running FakeOpenAI; stopped after the test."""
    fake = FakeOpenAI().start()
    try:
        yield fake
    finally:
        fake.stop()
