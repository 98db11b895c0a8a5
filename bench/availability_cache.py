"""Benchmark: 100 conversations asking one clinic for open times on the same day, at once.

Without the cache every conversation makes its own EMR availability call; with it, concurrent and later requests
for the same (service, provider, day) share one. The EMR is the built-in calendar on PostgreSQL (default database
``medspa_bench_availability``) wrapped to count calls and to take as long as a remote EMR (``--emr-ms``, default 300 ms).

Usage: ``.venv/bin/python bench/availability_cache.py [--conversations 100] [--emr-ms 300]``.
Target (issue 5): at most one EMR availability call per (service, provider, day).
"""

import argparse
import os
import random
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--emr-ms", type=int, default=300)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/medspa_bench_availability")
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="medspa.settings", LOG_LEVEL="WARNING")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/6")
    from bench.webhooks import ensure_database

    ensure_database(url)
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    call_command("seed_knowledge", verbosity=0)
    from emr.availability import availability_for_day
    from emr.calendar import BuiltinCalendarClient
    from emr.models import EmrConfig, Provider
    from medspa.models import Clinic, Service

    clinic = Clinic.objects.get(slug="demo-clinic-001")
    services = list(Service.objects.filter(clinic=clinic, name__in=["Botox", "Lip Filler", "Consultation"]))
    providers = [None, *Provider.objects.filter(clinic=clinic)]
    calls = Counter()

    class CountingEmr(BuiltinCalendarClient):
        def availability(self, **kwargs):
            calls[(kwargs["service_ref"], kwargs["provider_ref"])] += 1
            time.sleep(args.emr_ms / 1000)
            return super().availability(**kwargs)

    emr = CountingEmr(clinic=clinic, config=EmrConfig.objects.get(clinic=clinic))
    day = date(2026, 12, 1)
    rng = random.Random(3)
    asks = [(rng.choice(services), rng.choice(providers)) for _ in range(args.conversations)]

    def run(use_cache):
        cache.clear()
        calls.clear()

        def conversation(service, provider):
            try:
                if use_cache:
                    availability_for_day(client=emr, clinic=clinic, service=service, day=day, provider=provider)
                else:
                    from emr.availability import _fetch

                    _fetch(emr, clinic, service, day, emr.provider_ref(provider) if provider else "")
            finally:
                connection.close()

        started = time.perf_counter()
        # A burst (say, after a promotion text), served by 40 concurrent workers: PostgreSQL's default of 100
        # connections bounds how many can run at once on this machine.
        with ThreadPoolExecutor(max_workers=40) as pool:
            list(pool.map(lambda ask: conversation(*ask), asks))
        return time.perf_counter() - started, sum(calls.values()), max(calls.values())

    keys = len({(s.pk, p.pk if p else None) for s, p in asks})
    plain = run(False)
    cached = run(True)
    # A second burst within 5 minutes, without clearing the cache:
    calls.clear()
    started = time.perf_counter()
    for service, provider in asks:
        availability_for_day(client=emr, clinic=clinic, service=service, day=day, provider=provider)
    second = time.perf_counter() - started, sum(calls.values())

    print(
        f"\n{args.conversations} conversations, {keys} distinct (service, provider, day) keys, EMR call {args.emr_ms} ms,"
        f" cache: Redis\n"
    )
    print(f"- no cache:   {plain[1]} EMR calls (at most {plain[2]} per key), {plain[0] * 1000:.0f} ms for the burst")
    print(f"- with cache: {cached[1]} EMR calls (at most {cached[2]} per key), {cached[0] * 1000:.0f} ms for the burst")
    print(f"- second burst within 5 minutes: {second[1]} EMR calls, {second[0] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
