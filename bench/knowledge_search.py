"""Benchmark: knowledge search latency at 100 clinics x 100 documents (10,000 documents) on PostgreSQL.

Builds the corpus in its own database (``medspa_bench_knowledge`` by default, or DATABASE_URL): each clinic gets
the demo clinic's documents and services plus generated ones (other treatments, FAQ variants) to reach 100
documents. Then runs the demo evaluation questions against random clinics and reports per-query latency:
- first query of a clinic in a process (builds that clinic's in-memory index),
- later queries (index warm; the result cache bypassed, so every query is really searched),
- repeated queries (served from the result cache),
against a baseline in the same process: one indexed ORM lookup (a service by clinic and name).

Usage: ``.venv/bin/python bench/knowledge_search.py [--clinics 100] [--docs 100] [--queries 2000]``.
Target (issue 4): p95 under 20 ms per query.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = [
    "botox",
    "filler",
    "laser",
    "peel",
    "facial",
    "microneedling",
    "deposit",
    "parking",
    "hours",
    "financing",
    "aftercare",
    "consultation",
    "gift cards",
    "pregnancy",
    "age",
    "providers",
    "payment",
    "cancellation",
]
WORDS = (
    "treatment results session skin appointment patient provider clinic price visit week month care area "
    "face lines volume smooth texture tone redness swelling bruising numbing cream booking time"
).split()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def stats(values):
    ms = [v * 1000 for v in values]
    return f"p50 {statistics.median(ms):.2f} ms, p95 {percentile(ms, 95):.2f} ms, p99 {percentile(ms, 99):.2f} ms"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--clinics", type=int, default=100)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--queries", type=int, default=2000)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medspa_bench_knowledge")
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="medspa.settings", LOG_LEVEL="WARNING")
    from bench.webhooks import ensure_database

    ensure_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import knowledge.services as ks
    from knowledge.evaluation import DEMO_QUESTIONS
    from medspa.clinic_file import DEMO_CLINIC_FILE, clinic_file_load, clinic_file_read
    from medspa.models import Clinic, Service

    rng = random.Random(7)
    data = clinic_file_read(DEMO_CLINIC_FILE)
    started = time.perf_counter()
    for n in range(args.clinics):
        slug = f"bench-{n:03d}"
        if Clinic.objects.filter(slug=slug).exists():
            continue
        extra = [
            {
                "title": f"{rng.choice(TOPICS).title()} note {i}",
                "content": " ".join(rng.choice(WORDS + TOPICS) for _ in range(rng.randint(60, 200))) + ".",
            }
            for i in range(args.docs - len(data["documents"]))
        ]
        clinic_file_load({**data, "phone_numbers": [], "documents": data["documents"] + extra}, slug=slug)
    print(
        f"corpus ready in {time.perf_counter() - started:.0f} s: {Clinic.objects.count()} clinics, "
        f"{ks.KnowledgeDocument.objects.count()} documents, {ks.KnowledgeChunk.objects.count()} passages"
    )

    questions = [q["question"] for q in json.loads(Path(DEMO_QUESTIONS).read_text())]
    clinics = list(Clinic.objects.filter(slug__startswith="bench-"))
    baseline, first, warm, cached = [], [], [], []
    for clinic in clinics:  # first query per clinic: builds its index in this process
        t = time.perf_counter()
        ks.knowledge_search(clinic=clinic, query=rng.choice(questions))
        first.append(time.perf_counter() - t)
    ks.RESULT_CACHE_SECONDS = 0.000001  # effectively no result cache: every query below is searched
    for _ in range(args.queries):
        clinic, question = rng.choice(clinics), rng.choice(questions)
        t = time.perf_counter()
        Service.objects.filter(clinic=clinic, name="Botox").first()
        baseline.append(time.perf_counter() - t)
        t = time.perf_counter()
        ks.knowledge_search(clinic=clinic, query=question)
        warm.append(time.perf_counter() - t)
    ks.RESULT_CACHE_SECONDS = 600
    for _ in range(args.queries):
        clinic, question = rng.choice(clinics[:10]), rng.choice(questions[:10])
        t = time.perf_counter()
        ks.knowledge_search(clinic=clinic, query=question)
        cached.append(time.perf_counter() - t)

    print(
        f"\n{args.queries} queries over {len(clinics)} clinics x {args.docs} documents, PostgreSQL, {os.cpu_count()} CPUs\n"
    )
    print(f"- baseline (one indexed ORM lookup): {stats(baseline)}")
    print(
        f"- search, index warm, no result cache: {stats(warm)}  "
        f"(p95 = {percentile(warm, 95) / percentile(baseline, 95):.1f}x baseline)"
    )
    print(f"- search, first query of a clinic (builds its index): {stats(first)}")
    print(f"- search, repeated query (result cache): {stats(cached)}")


if __name__ == "__main__":
    main()
