"""Benchmark: what the openai engine costs, against a local fake OpenAI server (tests/fakes/openai.py) that answers
at once and counts tokens the same way for every prompt (about four characters per token; cached tokens follow
OpenAI's 1024-token prefix rule).

1. Prompt tokens per booked conversation: the same scripted booking (price, times, pick, name and deposit link)
   through our prompt (stable prefix, recent texts, what the tools return) and through a naive prompt that stuffs
   every knowledge document and the whole history into each call. Target (issue 7): half or less.
2. The answer cache on repeated questions: patients asking the clinic's common questions in their own words, each as
   the first text of a new conversation; the hit rate and the model calls saved, against the same run with the
   cache off.
3. The engine's own overhead per turn: ``conversation_respond`` wall time minus the time inside the model call,
   over booking conversations on PostgreSQL and Redis, next to the rules engine's whole turn as a baseline.
   Target: p95 under 150 ms.

Usage: ``.venv/bin/python bench/assistant.py [--conversations 20] [--questions 300]``; PostgreSQL database
``medspa_bench_assistant`` and Redis db 6 unless DATABASE_URL / REDIS_URL say otherwise.
"""

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fakes.openai import FakeOpenAI, text, tool, tool_result  # noqa: E402

WHENS = [
    f"next {day} {part}"
    for day in ("monday", "tuesday", "wednesday", "thursday", "friday")
    for part in ("morning", "afternoon")
]
QUESTIONS = {  # topic -> how patients ask it
    "parking": ["do you have parking?", "where do i park", "is there parking", "parking?", "where can I park"],
    "hours": ["what are your hours", "when are you open", "what time do you open", "hours?", "are you open saturday"],
    "botox price": ["how much is botox", "botox price?", "how much for botox", "what does botox cost", "botox cost"],
    "financing": ["do you offer financing", "can i pay monthly", "do you take carecredit", "financing options?"],
    "pain": ["does botox hurt", "is botox painful", "does filler hurt", "how painful is microneedling"],
    "deposit": ["do i need a deposit", "is there a deposit", "how much is the deposit"],
    "gift cards": ["do you sell gift cards", "gift cards?", "can i buy a gift card"],
    "location": ["where are you located", "whats your address", "address?"],
    "insurance": ["do you take insurance", "can i use my hsa", "do you accept fsa"],
    "providers": ["who does the injections", "who are your providers", "is there a nurse injector"],
}


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--questions", type=int, default=300)
    args = parser.parse_args()

    fake = FakeOpenAI().start()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medspa_bench_assistant")
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="medspa.settings",
        LOG_LEVEL="ERROR",
        CONVERSATION_ENGINE="openai",
        OPENAI_API_KEY="sk-bench",
        OPENAI_BASE_URL=fake.url,
        OPENAI_MAX_RETRIES="0",
        SMS_BACKEND="console",
    )
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
    from bench.webhooks import ensure_database

    ensure_database(url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("seed_knowledge", verbosity=0)

    import conversation.engine as engine_module
    import conversation.tasks
    import messaging.tasks
    from bookings.models import Booking
    from conversation.llm import OpenAIEngine, stable_prefix
    from conversation.models import Conversation, Turn
    from knowledge.models import KnowledgeDocument
    from medspa.models import Clinic, Service
    from messaging.services import inbound_receive
    from payments.models import Payment

    # Texts are not sent (no worker here) and answers are run by hand, timed.
    conversation.tasks.respond.apply_async = lambda *a, **k: None
    messaging.tasks.send_message.delay = lambda *a, **k: None
    clinic = Clinic.objects.get(slug="demo-clinic-001")
    number = clinic.phone_numbers.first().number
    botox = Service.objects.get(clinic=clinic, name="Botox")

    def reset():
        Payment.objects.filter(clinic=clinic).delete()
        Booking.objects.filter(clinic=clinic).delete()
        Conversation.objects.filter(clinic=clinic).delete()
        cache.clear()
        fake.reset()

    def say(phone, body, timings=None):
        inbound_receive(
            provider="telnyx", provider_message_id=str(uuid.uuid4()), from_number=phone, to_number=number, body=body
        )
        conversation = Conversation.objects.get(clinic=clinic, patient_phone=phone)
        started = time.perf_counter()
        turn = engine_module.conversation_respond(conversation_id=conversation.pk)
        if timings is not None:
            timings.append(time.perf_counter() - started)
        return turn

    def booking_script(when, option):
        offer = text(
            lambda b: (
                "Here are open times:\n"
                + "\n".join(f"{o['option']}. {o['time']} with {o['provider']}" for o in tool_result(b)["options"])
                + "\nReply 1, 2 or 3."
            )
        )
        link = text(
            lambda b: f"Thanks! Please pay the {tool_result(b)['amount']} deposit here: {tool_result(b)['link']}"
        )
        return [
            (
                "how much is botox?",
                [
                    tool("lookup_service", {"service_id": botox.pk}),
                    text("Botox is $12 per unit, about $240-$360. Want me to find a time?"),
                ],
            ),
            (when, [tool("find_open_times", {"service_id": botox.pk, "when": when}), offer]),
            (str(option), [tool("hold_time", {"option": option}), text("Great! What name should I put it under?")]),
            (
                "jane doe",
                [tool("set_patient_name", {"first_name": "Jane", "last_name": "Doe"}, "request_deposit", {}), link],
            ),
        ]

    def book(phone, when, option, timings=None):
        for body, script in booking_script(when, option):
            fake.pending.clear()
            fake.script(*script)
            say(phone, body, timings)
        return Booking.objects.filter(patient_phone=phone, status="awaiting_deposit").exists()

    # --- 1. Prompt tokens per booked conversation ----------------------------------------------------------------
    documents = "\n\n".join(
        f"# {title}\n{body}"
        for title, body in KnowledgeDocument.objects.filter(clinic=clinic, active=True)
        .order_by("pk")
        .values_list("title", "body")
    )

    class NaiveEngine(OpenAIEngine):
        """Every document and the whole history in every call: what a prompt without retrieval looks like."""

        def messages(self, conversation, texts, tools, *, history):
            from messaging.models import Message

            system = stable_prefix(conversation.clinic, tools.catalog()) + "\n\nEverything we know:\n" + documents
            first_text_id = Message.objects.filter(conversation=conversation).latest("pk").pk  # the text answered
            history = Message.objects.filter(conversation=conversation, pk__lt=first_text_id).order_by("pk")
            messages = [{"role": "system", "content": system}]
            messages += [
                {"role": "user" if m.direction == "inbound" else "assistant", "content": m.body} for m in history
            ]
            messages.append({"role": "user", "content": "\n".join(texts)})
            return messages

    def tokens_for(engine_class):
        reset()
        original = engine_module.engine_for
        engine_module.engine_for = lambda clinic: engine_class()
        try:
            assert book("+16175551000", "next tuesday afternoon", 2), "the booking did not reach the deposit link"
        finally:
            engine_module.engine_for = original
        prompt = sum(u["prompt_tokens"] for u in fake.usages)
        cached = sum(u["prompt_tokens_details"]["cached_tokens"] for u in fake.usages)
        completion = sum(u["completion_tokens"] for u in fake.usages)
        cost = sum(Turn.objects.filter(clinic=clinic).values_list("cost_microdollars", flat=True))
        return prompt, cached, completion, cost, len(fake.usages)

    ours = tokens_for(OpenAIEngine)
    naive = tokens_for(NaiveEngine)

    # --- 2. The answer cache on repeated questions ---------------------------------------------------------------
    def answering_brain(body):
        last = body["messages"][-1]
        if last["role"] == "user":
            return tool("search_knowledge", {"query": last["content"]})
        results = tool_result(body)["results"]
        return text(results[0]["text"][:300] if results else "Let me ask our team and get back to you.")

    rng = random.Random(7)
    topics = list(QUESTIONS)
    weights = [1 / (i + 1) for i in range(len(topics))]  # a few questions are asked far more than the rest
    asked = [rng.choice(QUESTIONS[rng.choices(topics, weights)[0]]) for _ in range(args.questions)]

    def ask_all(use_cache):
        reset()
        fake.brain = answering_brain
        saved = settings.ASSISTANT_ANSWER_CACHE_SECONDS
        settings.ASSISTANT_ANSWER_CACHE_SECONDS = saved if use_cache else 0
        try:
            for i, question in enumerate(asked):
                say(f"+1617556{i:04d}", question)
        finally:
            settings.ASSISTANT_ANSWER_CACHE_SECONDS = saved
        engines = list(Turn.objects.filter(clinic=clinic).values_list("engine", flat=True))
        return engines.count("cache"), len(fake.calls), sum(u["prompt_tokens"] for u in fake.usages)

    plain_hits, plain_calls, plain_tokens = ask_all(False)
    hits, calls, tokens = ask_all(True)
    distinct = len(set(asked))

    # --- 3. The engine's overhead per turn --------------------------------------------------------------------------
    model_time = []
    original_complete = OpenAIEngine._complete

    def timed_complete(self, messages, usage):
        started = time.perf_counter()
        try:
            return original_complete(self, messages, usage)
        finally:
            model_time.append(time.perf_counter() - started)

    OpenAIEngine._complete = timed_complete
    settings.ASSISTANT_ANSWER_CACHE_SECONDS = 0  # every turn goes to the model: the engine's full path
    reset()
    fake.brain = lambda body: text("Thanks!")
    turn_times, overheads = [], []
    combos = [(when, option) for when in WHENS for option in (1, 2, 3)]
    rng.shuffle(combos)
    for i, (when, option) in enumerate(combos[: args.conversations]):
        for body, script in booking_script(when, option):
            fake.pending.clear()
            fake.script(*script)
            model_time.clear()
            timings = []
            say(f"+1617557{i:04d}", body, timings)
            turn_times.append(timings[0])
            overheads.append(timings[0] - sum(model_time))
    OpenAIEngine._complete = original_complete
    booked = Booking.objects.filter(clinic=clinic, status="awaiting_deposit").count()

    # The baseline in the same process: the rules engine answering the same booking texts.
    settings.CONVERSATION_ENGINE = "rules"
    reset()
    rules_times = []
    for i, (when, option) in enumerate(combos[: args.conversations]):
        for body, _ in booking_script(when, option):
            say(f"+1617558{i:04d}", body, rules_times)

    db = "PostgreSQL" if "postgres" in url else "SQLite"
    redis = "Redis" if os.environ.get("REDIS_URL") else "in-process cache"
    print(f"\nopenai engine against an instant local fake model; {db}, {redis}\n")
    print("1. Prompt tokens for one booked conversation (4 patient texts, 8 model calls each way):")
    for name, (prompt, cached, completion, cost, n) in (("ours", ours), ("naive", naive)):
        print(
            f"   - {name:5}: {prompt:6} prompt tokens ({cached} cached) in {n} calls, {completion} completion, "
            f"${cost / 1e6:.5f} at gpt-4o-mini prices"
        )
    print(f"   - ratio ours/naive: {ours[0] / naive[0]:.2f} of the prompt tokens, {ours[3] / naive[3]:.2f} of the cost")
    print(f"\n2. {len(asked)} first questions ({distinct} distinct phrasings of {len(topics)} topics):")
    print(f"   - cache off: {plain_calls} model calls, {plain_tokens} prompt tokens, {plain_hits} cache answers")
    print(
        f"   - cache on:  {calls} model calls, {tokens} prompt tokens, {hits} cache answers "
        f"(hit rate {hits / len(asked):.0%}); model calls {calls / plain_calls:.2f} of the baseline"
    )
    print(f"\n3. Per turn over {len(turn_times)} booking turns ({args.conversations} conversations, {booked} holds):")
    print(
        f"   - engine overhead (turn minus model call): p50 {percentile(overheads, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(overheads, 0.95) * 1000:.1f} ms, max {max(overheads) * 1000:.1f} ms"
    )
    print(
        f"   - whole turn with the instant model:      p50 {percentile(turn_times, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(turn_times, 0.95) * 1000:.1f} ms"
    )
    print(
        f"   - rules engine, same texts (baseline):    p50 {percentile(rules_times, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(rules_times, 0.95) * 1000:.1f} ms; openai/rules p95 ratio "
        f"{percentile(turn_times, 0.95) / percentile(rules_times, 0.95):.2f}"
    )
    print(f"   - mean model call {statistics.mean(model_time or [0]) * 1000:.1f} ms (local HTTP)")
    fake.stop()


if __name__ == "__main__":
    main()
