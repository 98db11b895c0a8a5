"""Benchmark: what the second reading of intent (conversation/intent.py) costs.

1. Training, in a fresh process's first guess (scikit-learn imported, the dev half read and fitted): seconds, once
   per worker process.
2. A guess: the model's time per text, over the corpus's texts.
3. A whole rules-engine turn with the second reading on, against the same turns with it off, in the same process on
   the same database: the corpus's first N texts through the evaluation runner (conversation/evaluation.py), each
   run twice, the faster of each kept. Reported as a ratio; target: under 1.15 (a turn at most 15% slower).

Usage: ``.venv/bin/python bench/intent.py [--texts 300]``; an SQLite file under /tmp unless DATABASE_URL says
otherwise (the runner rolls back what it writes).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=300)
    args = parser.parse_args()
    os.environ.setdefault("DATABASE_URL", "sqlite:////tmp/medspa_bench_intent.sqlite3")
    os.environ.update(DJANGO_SETTINGS_MODULE="medspa.settings", LOG_LEVEL="WARNING")
    import django

    django.setup()
    from django.core.management import call_command
    from django.test.utils import override_settings

    from conversation import intent
    from conversation.corpus import corpus
    from conversation.evaluation import evaluate

    call_command("migrate", verbosity=0)
    call_command("seed_knowledge", verbosity=0)

    started = time.perf_counter()
    intent.guess("how much is botox?", "new")
    print(f"training (first guess of a process): {time.perf_counter() - started:.2f} s")

    texts = [i for i in corpus("all") if i["_kind"] == "text"][: args.texts]
    timings = []
    for item in texts:
        started = time.perf_counter()
        intent.guess(item.get("text", "") or "?", item.get("context", "new"))
        timings.append(time.perf_counter() - started)
    print(f"a guess: p50 {statistics.median(timings) * 1000:.2f} ms over {len(timings)} texts")

    def run(on: bool) -> float:
        with override_settings(CONVERSATION_INTENT_MODEL=on):
            started = time.perf_counter()
            evaluate(items=texts)
            return time.perf_counter() - started

    off = min(run(False), run(False))
    on = min(run(True), run(True))
    print(f"{len(texts)} texts through the rules engine: off {off:.1f} s, on {on:.1f} s, ratio {on / off:.3f}")


if __name__ == "__main__":
    main()
