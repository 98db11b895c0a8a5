"""Availability through a cache: 5 minutes per (clinic, service, provider, day), shared by all processes when Redis is
configured; our own holds and bookings invalidate a clinic's entries at once; concurrent misses for one key make one
EMR call (the first caller takes a short lock, the others wait for its answer)."""

import logging
import time
from datetime import datetime, timedelta

from django.core.cache import cache
from prometheus_client import Counter

logger = logging.getLogger(__name__)

TTL_SECONDS = 300
LOCK_SECONDS = 30
WAIT_SECONDS = 10

CACHE_LOOKUPS = Counter("medspa_availability_cache_total", "Availability lookups by outcome.", ["outcome"])
EMR_CALLS = Counter("medspa_emr_calls_total", "EMR availability calls by outcome.", ["outcome"])


def _generation(clinic_id) -> int:
    return cache.get_or_set(f"emr:avail:gen:{clinic_id}", 0, None)


def availability_invalidate(*, clinic_id) -> None:
    """Our own hold, booking or cancellation changed the clinic's free times: drop its cached days."""
    key = f"emr:avail:gen:{clinic_id}"
    try:
        cache.incr(key)
    except ValueError:
        cache.set(key, 1, None)


def availability_for_day(*, client, clinic, service, day, provider=None) -> list:
    """Free slots of ``service`` on the clinic-local ``day`` (a date), from the cache or one EMR call."""
    provider_ref = client.provider_ref(provider) if provider is not None else ""
    key = f"emr:avail:{clinic.pk}:{_generation(clinic.pk)}:{service.pk}:{provider_ref or 'any'}:{day.isoformat()}"
    lock, outcome = f"{key}:lock", "hit"
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        slots = cache.get(key)
        if slots is not None:
            CACHE_LOOKUPS.labels(outcome).inc()
            return slots
        if cache.add(lock, 1, LOCK_SECONDS):
            try:
                # Another caller may have stored the answer and released the lock between our miss and our lock.
                slots = cache.get(key)
                if slots is None:
                    CACHE_LOOKUPS.labels("miss").inc()
                    slots = _fetch(client, clinic, service, day, provider_ref)
                    cache.set(key, slots, TTL_SECONDS)
                else:
                    CACHE_LOOKUPS.labels("waited").inc()
                return slots
            finally:
                cache.delete(lock)
        outcome = "waited"  # another caller is asking the EMR for this very key
        time.sleep(0.02)
    CACHE_LOOKUPS.labels("timeout").inc()  # the lock holder is stuck: ask ourselves rather than fail the patient
    return _fetch(client, clinic, service, day, provider_ref)


def _fetch(client, clinic, service, day, provider_ref):
    start = datetime.combine(day, datetime.min.time(), tzinfo=clinic.tz)
    end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=clinic.tz)
    slots = _ask(client, service, start, end, provider_ref)
    if provider_ref or all(slot.provider_ref for slot in slots):
        return slots
    # An EMR whose open times for "anyone" do not say who is free (Boulevard, for a service several staff perform):
    # ask once per provider of the service, so that every time offered has the person it is with.
    refs = [
        client.provider_ref(provider)
        for provider in service.providers.filter(active=True).order_by("pk")
        if client.provider_ref(provider)
    ]
    if not refs:
        return slots
    attributed = [slot for ref in dict.fromkeys(refs) for slot in _ask(client, service, start, end, ref)]
    return sorted(attributed, key=lambda slot: (slot.start, slot.provider_ref))


def _ask(client, service, start, end, provider_ref):
    try:
        slots = client.availability(
            service_ref=client.service_ref(service), start=start, end=end, provider_ref=provider_ref
        )
    except Exception:
        EMR_CALLS.labels("error").inc()
        raise
    EMR_CALLS.labels("ok").inc()
    return slots
